package dev.ferry.core.device;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;

import java.util.Map;

/** What the VMM gives a {@link DeviceKind} that builds a device on a machine being assembled. */
public interface DeviceContext {
    Machine machine();

    /** The device's config id. */
    String id();

    /** True on a migration destination: the device's state will arrive by migration. */
    boolean incoming();

    /** A free, 4 KiB-aligned window of {@code size} bytes on the MMIO bus for this device's registers. */
    long allocateMmio(long size);

    /** The next free interrupt line of the machine's controller, claimed for this device. */
    InterruptLine allocateInterrupt();

    /**
     * Outbound port: asks the VMM to stop the VM into {@code state} because of this device (a disk
     * error under the {@code stop} policy) and to emit QMP event {@code event} with {@code data}.
     * Returns at once; the VM stops on another thread (a device must not stop the VM from its own
     * event loop, which stopping pauses).
     */
    void requestStop(RunState state, String event, Map<String, Object> data);
}
