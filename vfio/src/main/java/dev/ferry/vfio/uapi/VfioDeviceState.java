package dev.ferry.vfio.uapi;

/**
 * {@code enum vfio_device_mig_state}: the values {@code vfio_device_feature_mig_state.device_state}
 * carries, and which {@code VFIO_DEVICE_FEATURE_MIGRATION} flags a device must report before a
 * state may be requested (RUNNING exists on every migratable device; ERROR is never supported or requestable; the kernel rejects
 * a request for a state the flags do not cover).
 *
 * <pre>
 *  value state         needs (VFIO_MIGRATION_*)
 *  0     ERROR         never requestable; only VFIO_DEVICE_RESET leaves it
 *  1     STOP          STOP_COPY
 *  2     RUNNING       STOP_COPY
 *  3     STOP_COPY     STOP_COPY
 *  4     RESUMING      STOP_COPY
 *  5     RUNNING_P2P   P2P
 *  6     PRE_COPY      PRE_COPY          (kernel 6.2+)
 *  7     PRE_COPY_P2P  PRE_COPY | P2P    (kernel 6.2+)
 * </pre>
 * STOP_COPY is mandatory for any migratable device, so a device reporting only P2P or
 * PRE_COPY supports nothing; {@link #supportedBy(long)} says so.
 */
public enum VfioDeviceState {
    ERROR(0, 0),
    STOP(1, VfioIoctls.VFIO_MIGRATION_STOP_COPY),
    RUNNING(2, VfioIoctls.VFIO_MIGRATION_STOP_COPY),
    STOP_COPY(3, VfioIoctls.VFIO_MIGRATION_STOP_COPY),
    RESUMING(4, VfioIoctls.VFIO_MIGRATION_STOP_COPY),
    RUNNING_P2P(5, VfioIoctls.VFIO_MIGRATION_P2P),
    PRE_COPY(6, VfioIoctls.VFIO_MIGRATION_PRE_COPY),
    PRE_COPY_P2P(7, VfioIoctls.VFIO_MIGRATION_PRE_COPY | VfioIoctls.VFIO_MIGRATION_P2P);

    private static final VfioDeviceState[] BY_VALUE = values();

    private final int value;
    private final long requiredFlags;

    VfioDeviceState(int value, long requiredFlags) {
        this.value = value;
        this.requiredFlags = requiredFlags;
    }

    /** The number in {@code device_state}. */
    public int value() {
        return value;
    }

    /** The {@code VFIO_MIGRATION_*} flags this state needs (besides the mandatory STOP_COPY); 0 for ERROR. */
    public long requiredFlags() {
        return requiredFlags;
    }

    /** Whether the state may be requested from a device reporting {@code migrationFlags}. */
    public boolean supportedBy(long migrationFlags) {
        return this != ERROR
                && (migrationFlags & VfioIoctls.VFIO_MIGRATION_STOP_COPY) != 0
                && (migrationFlags & requiredFlags) == requiredFlags;
    }

    /** The state for a kernel value; an unknown value (a newer kernel, a broken driver) is an error. */
    public static VfioDeviceState fromValue(int value) {
        if (value < 0 || value >= BY_VALUE.length) {
            throw new IllegalArgumentException("unknown vfio_device_mig_state " + Integer.toUnsignedString(value)
                    + " (known: 0.." + (BY_VALUE.length - 1) + ")");
        }
        return BY_VALUE[value];
    }
}
