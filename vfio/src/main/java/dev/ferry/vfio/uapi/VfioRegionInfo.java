package dev.ferry.vfio.uapi;

/**
 * {@code struct vfio_region_info} for {@code VFIO_DEVICE_GET_REGION_INFO} on a device fd: where
 * region {@code index} (a BAR, config space, ...) lives in the device fd's offset space.
 * <pre>
 *  0 argsz (u32) = 32  4 flags (u32, VFIO_REGION_INFO_FLAG_*)  8 index (u32, input)
 * 12 cap_offset (u32)  16 size (u64, 0 = not implemented)     24 offset (u64, pread/pwrite/mmap offset)
 * </pre>
 */
public final class VfioRegionInfo extends VfioStruct {
    public static final int SIZE = 32;
    public static final int ARGSZ_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int INDEX_OFFSET = 8;
    public static final int CAP_OFFSET_OFFSET = 12;
    public static final int SIZE_OFFSET = 16;
    public static final int OFFSET_OFFSET = 24;

    public VfioRegionInfo() {
        super(SIZE, SIZE);
    }

    /** Asks about region {@code index}: {@code argsz} 32, outputs zeroed. */
    public void prepare(int index) {
        setArgsz(SIZE);
        clearAfterArgsz();
        u32(INDEX_OFFSET, index);
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public int index() {
        return u32(INDEX_OFFSET);
    }

    public int capOffset() {
        return u32(CAP_OFFSET_OFFSET);
    }

    public long regionSize() {
        return u64(SIZE_OFFSET);
    }

    public long regionOffset() {
        return u64(OFFSET_OFFSET);
    }
}
