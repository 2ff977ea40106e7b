package dev.ferry.vfio.uapi;

/**
 * {@code struct iommu_ioas_unmap} for {@code IOMMU_IOAS_UNMAP} on {@code /dev/iommu}.
 * <pre>
 *  0 size (u32) = 24   4 ioas_id (u32)   8 iova (u64)   16 length (u64, in; out: bytes unmapped)
 * </pre>
 * The range must cover whole mappings: cutting one is ENOENT. {@code iova} 0 with
 * {@code length} {@code U64_MAX} unmaps everything.
 */
public final class IommuIoasUnmap extends VfioStruct {
    public static final int SIZE = 24;
    public static final int SIZE_OFFSET = 0;
    public static final int IOAS_ID_OFFSET = 4;
    public static final int IOVA_OFFSET = 8;
    public static final int LENGTH_OFFSET = 16;

    public IommuIoasUnmap() {
        super(SIZE, SIZE);
    }

    public void prepare(int ioasId, long iova, long length) {
        setArgsz(SIZE);
        clearAfterArgsz();
        u32(IOAS_ID_OFFSET, ioasId);
        u64(IOVA_OFFSET, iova);
        u64(LENGTH_OFFSET, length);
    }

    public int ioasId() {
        return u32(IOAS_ID_OFFSET);
    }

    public long iova() {
        return u64(IOVA_OFFSET);
    }

    /** Before the call the length asked for; after it the bytes the kernel unmapped. */
    public long length() {
        return u64(LENGTH_OFFSET);
    }
}
