package dev.ferry.vfio.uapi;

/**
 * {@code struct iommu_ioas_alloc} for {@code IOMMU_IOAS_ALLOC} on {@code /dev/iommu}: a new, empty
 * IO address space whose id the kernel answers.
 * <pre>
 *  0 size (u32) = 12   4 flags (u32, must be 0)   8 out_ioas_id (u32, out)
 * </pre>
 */
public final class IommuIoasAlloc extends VfioStruct {
    public static final int SIZE = 12;
    public static final int SIZE_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int OUT_IOAS_ID_OFFSET = 8;

    public IommuIoasAlloc() {
        super(SIZE, SIZE);
    }

    /** {@code size} 12, flags and output zeroed. */
    public void prepare() {
        setArgsz(SIZE);
        clearAfterArgsz();
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    /** The new IOAS's id (ids start at 1). */
    public int ioasId() {
        return u32(OUT_IOAS_ID_OFFSET);
    }
}
