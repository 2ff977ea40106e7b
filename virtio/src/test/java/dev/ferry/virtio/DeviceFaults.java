package dev.ferry.virtio;

/**
 * Device-side faults for tests: what a model or a vhost-user front-end reports through
 * {@link VirtioContext#deviceError} (a back-end lost with requests out), raised on a transport
 * from outside its loop.
 */
public final class DeviceFaults {
    private DeviceFaults() {
    }

    /** The device stops serving: NEEDS_RESET with {@code reason}, config interrupt (if DRIVER_OK). */
    public static void needsReset(VirtioMmio transport, String reason) {
        transport.deviceError(reason);
    }
}
