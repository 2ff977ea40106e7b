package dev.ferry.vfio.uapi;

/**
 * {@code struct vfio_device_feature_mig_data_size}, payload of a GET of
 * {@code VFIO_DEVICE_FEATURE_MIG_DATA_SIZE} (feature 9, kernel 6.2+): the driver's estimate of how
 * many bytes STOP_COPY would stream now. Valid in RUNNING, PRE_COPY*, STOP_COPY (drivers vary).
 * <pre>
 *  header (8) | 0 stop_copy_length (u64)
 * </pre>
 * argsz 16.
 */
public final class VfioDeviceFeatureMigDataSize extends VfioDeviceFeature {
    public static final int SIZE = 8;
    public static final int STOP_COPY_LENGTH_OFFSET = 0;
    public static final int ARGSZ = VfioDeviceFeature.SIZE + SIZE;

    public VfioDeviceFeatureMigDataSize() {
        super(SIZE);
    }

    /** GET MIG_DATA_SIZE. */
    public void prepareGet() {
        prepare(VfioIoctls.VFIO_DEVICE_FEATURE_GET, VfioIoctls.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, SIZE);
    }

    /** The estimate in bytes (unsigned; treat negative as huge). */
    public long stopCopyLength() {
        return payloadU64(STOP_COPY_LENGTH_OFFSET);
    }
}
