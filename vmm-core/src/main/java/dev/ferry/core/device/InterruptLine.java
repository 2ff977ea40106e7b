package dev.ferry.core.device;

/**
 * One interrupt input of the machine's interrupt controller, as a device drives it: a level that
 * the device raises while it has something for the driver (virtio-mmio: InterruptStatus ≠ 0) and
 * lowers when the driver acknowledged everything. Raising a raised line or lowering a low one
 * changes nothing.
 *
 * <p>Thread-safe; called from the device's event-loop thread or a vCPU thread (a register write
 * that acknowledges). While the VM is stopped devices do not call it (their event loop is paused),
 * except to re-establish a migrated level before the VM starts.
 */
public interface InterruptLine {
    /** The controller input (GSI) this line drives. */
    int gsi();

    void raise();

    void lower();

    /** The level as this line last set it. */
    boolean isRaised();
}
