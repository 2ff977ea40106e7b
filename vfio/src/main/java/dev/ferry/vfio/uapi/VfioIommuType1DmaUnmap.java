package dev.ferry.vfio.uapi;

/**
 * {@code struct vfio_iommu_type1_dma_unmap} for {@code VFIO_IOMMU_UNMAP_DMA} on a type1 container.
 * <pre>
 *  0 argsz (u32) = 24   4 flags (u32, 0)   8 iova (u64)   16 size (u64, in; out: bytes unmapped)
 * </pre>
 * With type1v2 the range may not cut a mapping in two (EINVAL); a range covering nothing
 * unmaps 0 bytes and succeeds.
 */
public final class VfioIommuType1DmaUnmap extends VfioStruct {
    public static final int SIZE = 24;
    public static final int ARGSZ_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int IOVA_OFFSET = 8;
    public static final int SIZE_OFFSET = 16;

    public VfioIommuType1DmaUnmap() {
        super(SIZE, SIZE);
    }

    public void prepare(long iova, long size) {
        setArgsz(SIZE);
        clearAfterArgsz();
        u64(IOVA_OFFSET, iova);
        u64(SIZE_OFFSET, size);
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public long iova() {
        return u64(IOVA_OFFSET);
    }

    /** Before the call the size asked for; after it the bytes the kernel unmapped. */
    public long unmapSize() {
        return u64(SIZE_OFFSET);
    }
}
