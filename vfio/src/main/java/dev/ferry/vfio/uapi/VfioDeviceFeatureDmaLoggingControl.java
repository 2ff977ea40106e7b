package dev.ferry.vfio.uapi;

/**
 * {@code struct vfio_device_feature_dma_logging_control}, payload of a SET of
 * {@code VFIO_DEVICE_FEATURE_DMA_LOGGING_START} (feature 6), with its array of
 * {@code struct vfio_device_feature_dma_logging_range} in the same allocation, right after it:
 * <pre>
 *   0 header (8)                 argsz = 32: the ranges are reached through the pointer
 *   8 +0  page_size  (u64)       the device's tracking granule, power of two
 *     +8  num_ranges (u32)       1..capacity (the kernel allows at most 256)
 *     +12 __reserved (u32)       0
 *     +16 ranges     (u64)       pointer = address() + 32
 *  32 ranges[capacity], 16 bytes each:
 *     +0 iova (u64)  +8 length (u64)   page-aligned, non-overlapping
 * </pre>
 * One START, then a matching STOP (a header-only SET of feature 7); a second START in between
 * is refused by the kernel.
 */
public final class VfioDeviceFeatureDmaLoggingControl extends VfioDeviceFeature {
    public static final int SIZE = 24;
    public static final int PAGE_SIZE_OFFSET = 0;
    public static final int NUM_RANGES_OFFSET = 8;
    public static final int RESERVED_OFFSET = 12;
    public static final int RANGES_OFFSET = 16;
    public static final int ARGSZ = VfioDeviceFeature.SIZE + SIZE;
    /** {@code sizeof(struct vfio_device_feature_dma_logging_range)}. */
    public static final int RANGE_SIZE = 16;
    public static final int RANGE_IOVA_OFFSET = 0;
    public static final int RANGE_LENGTH_OFFSET = 8;
    /** The kernel's LOG_MAX_RANGES (drivers/vfio/vfio_main.c): more ranges is EINVAL. */
    public static final int MAX_RANGES = 256;

    private static final int RANGE_ARRAY_AT = ARGSZ;
    private final int capacity;

    /** Room for {@code capacity} ranges (1..256). */
    public VfioDeviceFeatureDmaLoggingControl(int capacity) {
        super(SIZE + RANGE_SIZE * checkCapacity(capacity));
        this.capacity = capacity;
    }

    public int capacity() {
        return capacity;
    }

    /**
     * SET DMA_LOGGING_START for the first {@code numRanges} ranges given by {@link #setRange};
     * call after setting them (the builder zeroes only the control struct, not the ranges).
     */
    public void prepareStart(long pageSize, int numRanges) {
        if (numRanges < 1 || numRanges > capacity) {
            throw new IllegalArgumentException("num_ranges " + numRanges + " outside 1.." + capacity);
        }
        if (pageSize <= 0 || Long.bitCount(pageSize) != 1) {
            throw new IllegalArgumentException("page_size " + pageSize + " is not a power of two");
        }
        prepare(VfioIoctls.VFIO_DEVICE_FEATURE_SET, VfioIoctls.VFIO_DEVICE_FEATURE_DMA_LOGGING_START, SIZE);
        payloadU64(PAGE_SIZE_OFFSET, pageSize);
        payloadU32(NUM_RANGES_OFFSET, numRanges);
        payloadU64(RANGES_OFFSET, address() + RANGE_ARRAY_AT);
    }

    /** Range {@code i} of the array the START call points to. */
    public void setRange(int i, long iova, long length) {
        int at = range(i);
        u64(at + RANGE_IOVA_OFFSET, iova);
        u64(at + RANGE_LENGTH_OFFSET, length);
    }

    public long pageSize() {
        return payloadU64(PAGE_SIZE_OFFSET);
    }

    public int numRanges() {
        return payloadU32(NUM_RANGES_OFFSET);
    }

    /** The {@code ranges} pointer as written. */
    public long rangesAddress() {
        return payloadU64(RANGES_OFFSET);
    }

    public long rangeIova(int i) {
        return u64(range(i) + RANGE_IOVA_OFFSET);
    }

    public long rangeLength(int i) {
        return u64(range(i) + RANGE_LENGTH_OFFSET);
    }

    private int range(int i) {
        if (i < 0 || i >= capacity) {
            throw new IndexOutOfBoundsException("ranges[" + i + "] outside 0.." + (capacity - 1));
        }
        return RANGE_ARRAY_AT + RANGE_SIZE * i;
    }

    private static int checkCapacity(int capacity) {
        if (capacity < 1 || capacity > MAX_RANGES) {
            throw new IllegalArgumentException("range capacity " + capacity + " outside 1.." + MAX_RANGES);
        }
        return capacity;
    }
}
