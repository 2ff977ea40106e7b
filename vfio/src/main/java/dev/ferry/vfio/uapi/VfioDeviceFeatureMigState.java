package dev.ferry.vfio.uapi;

/**
 * {@code struct vfio_device_feature_mig_state}, payload of {@code VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE}
 * (feature 2). SET moves the device one or more arcs towards {@code device_state}; GET reads it.
 * <pre>
 *  header (8) | 0 device_state (u32, enum vfio_device_mig_state)  4 data_fd (s32)
 * </pre>
 * argsz 16. {@code data_fd} is output only: after a SET that opened a data session (into
 * STOP_COPY, PRE_COPY, PRE_COPY_P2P from outside that group, or RESUMING) it is a new fd the
 * caller owns and must close; otherwise -1. After a failed SET the buffer still holds the
 * <em>requested</em> state — GET to learn where the device is.
 */
public final class VfioDeviceFeatureMigState extends VfioDeviceFeature {
    public static final int SIZE = 8;
    public static final int DEVICE_STATE_OFFSET = 0;
    public static final int DATA_FD_OFFSET = 4;
    public static final int ARGSZ = VfioDeviceFeature.SIZE + SIZE;

    public VfioDeviceFeatureMigState() {
        super(SIZE);
    }

    /**
     * SET MIG_DEVICE_STATE to {@code target}; {@code data_fd} is preset to -1 so a call that
     * opens nothing never looks like it returned fd 0. ERROR cannot be requested (the kernel says
     * EINVAL), so it is refused here.
     */
    public void prepareSet(VfioDeviceState target) {
        if (target == VfioDeviceState.ERROR) {
            throw new IllegalArgumentException("ERROR is not a requestable vfio device state");
        }
        prepare(VfioIoctls.VFIO_DEVICE_FEATURE_SET, VfioIoctls.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, SIZE);
        payloadU32(DEVICE_STATE_OFFSET, target.value());
        payloadU32(DATA_FD_OFFSET, -1);
    }

    /** GET MIG_DEVICE_STATE. */
    public void prepareGet() {
        prepare(VfioIoctls.VFIO_DEVICE_FEATURE_GET, VfioIoctls.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, SIZE);
        payloadU32(DATA_FD_OFFSET, -1);
    }

    /** The raw {@code device_state} number. */
    public int deviceStateValue() {
        return payloadU32(DEVICE_STATE_OFFSET);
    }

    /** {@code device_state} as a state; an unknown number is an {@link IllegalArgumentException}. */
    public VfioDeviceState deviceState() {
        return VfioDeviceState.fromValue(deviceStateValue());
    }

    /** The session fd the last SET returned, or -1. */
    public int dataFd() {
        return payloadU32(DATA_FD_OFFSET);
    }
}
