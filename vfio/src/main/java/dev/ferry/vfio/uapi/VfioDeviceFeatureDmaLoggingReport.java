package dev.ferry.vfio.uapi;

/**
 * {@code struct vfio_device_feature_dma_logging_report}, payload of a GET of
 * {@code VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT} (feature 8): reads <em>and clears</em> the
 * device's DMA dirty log for one IOVA range into a caller-owned bitmap.
 * <pre>
 *  header (8) | 0 iova (u64)  8 length (u64)  16 page_size (u64)  24 bitmap (u64 pointer)
 * </pre>
 * argsz 40. Bit {@code n} of the bitmap (u64 words, little-endian) stands for page
 * {@code iova + n * page_size}. The kernel only sets bits, so the caller zeroes the bitmap
 * before each call; after any error the whole range must be taken as dirty.
 */
public final class VfioDeviceFeatureDmaLoggingReport extends VfioDeviceFeature {
    public static final int SIZE = 32;
    public static final int IOVA_OFFSET = 0;
    public static final int LENGTH_OFFSET = 8;
    public static final int PAGE_SIZE_OFFSET = 16;
    public static final int BITMAP_OFFSET = 24;
    public static final int ARGSZ = VfioDeviceFeature.SIZE + SIZE;
    /** The smallest {@code page_size} the kernel accepts for a report (SZ_4K). */
    public static final long MIN_PAGE_SIZE = 4096;

    public VfioDeviceFeatureDmaLoggingReport() {
        super(SIZE);
    }

    /**
     * GET DMA_LOGGING_REPORT for {@code [iova, iova + length)} into the bitmap at
     * {@code bitmapAddress}, which must hold {@code ceil(length / pageSize / 64)} u64 words.
     */
    public void prepareGet(long iova, long length, long pageSize, long bitmapAddress) {
        if (pageSize < MIN_PAGE_SIZE || Long.bitCount(pageSize) != 1) {
            throw new IllegalArgumentException("page_size " + pageSize + " is not a power of two >= 4096");
        }
        if (length <= 0 || bitmapAddress == 0) {
            throw new IllegalArgumentException("empty range (length " + length + ") or null bitmap");
        }
        prepare(VfioIoctls.VFIO_DEVICE_FEATURE_GET, VfioIoctls.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, SIZE);
        payloadU64(IOVA_OFFSET, iova);
        payloadU64(LENGTH_OFFSET, length);
        payloadU64(PAGE_SIZE_OFFSET, pageSize);
        payloadU64(BITMAP_OFFSET, bitmapAddress);
    }

    public long iova() {
        return payloadU64(IOVA_OFFSET);
    }

    public long length() {
        return payloadU64(LENGTH_OFFSET);
    }

    public long pageSize() {
        return payloadU64(PAGE_SIZE_OFFSET);
    }

    public long bitmapAddress() {
        return payloadU64(BITMAP_OFFSET);
    }
}
