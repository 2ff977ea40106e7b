package dev.ferry.core.device;

/**
 * The machine's interrupt controller, as devices see it: one {@link InterruptLine} per GSI. On
 * KVM this is the in-kernel irqchip (lines raised without a vCPU exit); on the soft engine it is
 * {@link SoftInterruptController}. Each implementation migrates its own state (which lines are
 * pending, what the guest programmed), so an interrupt pending at switchover is pending on the
 * destination.
 */
public interface InterruptController {
    /** {@code "soft"} or {@code "kvm-irqchip"}. */
    String name();

    /** GSIs a device may use: {@code [firstDeviceGsi(), gsiCount())}. */
    int firstDeviceGsi();

    int gsiCount();

    /**
     * The line of {@code gsi}, created on first use; a line has one driving device, so a second
     * claim of the same GSI is refused.
     *
     * @throws IllegalArgumentException for a GSI outside the device range or already claimed
     */
    InterruptLine claim(int gsi, String owner);
}
