package dev.ferry.vfio.uapi;

/**
 * {@code struct vfio_device_feature_migration}, payload of a GET of
 * {@code VFIO_DEVICE_FEATURE_MIGRATION} (feature 1): which optional migration states the device
 * has. ENOTTY means the device cannot migrate at all.
 * <pre>
 *  header (8) | 0 flags (u64): VFIO_MIGRATION_STOP_COPY 1&lt;&lt;0 | P2P 1&lt;&lt;1 | PRE_COPY 1&lt;&lt;2
 * </pre>
 * argsz 16.
 */
public final class VfioDeviceFeatureMigration extends VfioDeviceFeature {
    public static final int SIZE = 8;
    public static final int FLAGS_OFFSET = 0;
    public static final int ARGSZ = VfioDeviceFeature.SIZE + SIZE;

    public VfioDeviceFeatureMigration() {
        super(SIZE);
    }

    /** GET MIGRATION, payload zeroed. */
    public void prepareGet() {
        prepare(VfioIoctls.VFIO_DEVICE_FEATURE_GET, VfioIoctls.VFIO_DEVICE_FEATURE_MIGRATION, SIZE);
    }

    /** The {@code VFIO_MIGRATION_*} flags the kernel answered. */
    public long migrationFlags() {
        return payloadU64(FLAGS_OFFSET);
    }
}
