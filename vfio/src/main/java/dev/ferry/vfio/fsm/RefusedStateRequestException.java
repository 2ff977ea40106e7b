package dev.ferry.vfio.fsm;

import dev.ferry.vfio.uapi.VfioDeviceState;

/**
 * A migration state request the kernel would refuse ({@code -EINVAL}), or one Ferry must never
 * send because some kernels never answer it. Thrown before anything reaches the device, so the
 * device is still in {@link #current()}.
 */
public final class RefusedStateRequestException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    private final VfioDeviceState current;
    private final VfioDeviceState target;
    private final transient MigCapabilities capabilities;

    RefusedStateRequestException(VfioDeviceState current, VfioDeviceState target, MigCapabilities capabilities,
            String reason) {
        super("VFIO migration request " + current + "\u2192" + target + " refused on a device with "
                + capabilities + ": " + reason + "; device left in " + current);
        this.current = current;
        this.target = target;
        this.capabilities = capabilities;
    }

    /** The state the device was in, and still is. */
    public VfioDeviceState current() {
        return current;
    }

    /** The state that was asked for. */
    public VfioDeviceState target() {
        return target;
    }

    /** The device's migration flags. */
    public MigCapabilities capabilities() {
        return capabilities;
    }
}
