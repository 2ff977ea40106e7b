package dev.ferry.vfio.fsm;

import dev.ferry.vfio.uapi.VfioDeviceState;

import java.util.Objects;

/**
 * One step a VFIO migration driver takes: the device moves from {@code from} to {@code to} in a
 * single call of the driver's step function. A {@code VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE} SET
 * may make the kernel walk several arcs; see {@link VfioMigrationFsm#arcs}.
 *
 * @param from the state before the step
 * @param to   the state after the step
 */
public record VfioArc(VfioDeviceState from, VfioDeviceState to) {
    public VfioArc {
        Objects.requireNonNull(from, "from");
        Objects.requireNonNull(to, "to");
    }

    @Override
    public String toString() {
        return from + "\u2192" + to;
    }
}
