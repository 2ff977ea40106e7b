package dev.ferry.vfio.uapi;

/**
 * {@code struct vfio_iommu_type1_dma_map} for {@code VFIO_IOMMU_MAP_DMA} on a container fd whose
 * IOMMU is type1: maps {@code size} bytes at {@code vaddr} of this process at {@code iova}.
 * <pre>
 *  0 argsz (u32) = 32   4 flags (u32): VFIO_DMA_MAP_FLAG_READ 1&lt;&lt;0 | WRITE 1&lt;&lt;1
 *  8 vaddr (u64)       16 iova (u64)       24 size (u64)
 * </pre>
 * iova, vaddr and size are multiples of the IOMMU page; a range overlapping an existing
 * mapping is EEXIST.
 */
public final class VfioIommuType1DmaMap extends VfioStruct {
    public static final int SIZE = 32;
    public static final int ARGSZ_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int VADDR_OFFSET = 8;
    public static final int IOVA_OFFSET = 16;
    public static final int SIZE_OFFSET = 24;

    public VfioIommuType1DmaMap() {
        super(SIZE, SIZE);
    }

    /** Maps {@code [vaddr, vaddr + size)} at {@code iova} for device reads and writes. */
    public void prepare(long vaddr, long iova, long size) {
        if (size <= 0 || vaddr == 0) {
            throw new IllegalArgumentException("empty mapping (size " + size + ") or null vaddr");
        }
        setArgsz(SIZE);
        clearAfterArgsz();
        u32(FLAGS_OFFSET, VfioIoctls.VFIO_DMA_MAP_FLAG_READ | VfioIoctls.VFIO_DMA_MAP_FLAG_WRITE);
        u64(VADDR_OFFSET, vaddr);
        u64(IOVA_OFFSET, iova);
        u64(SIZE_OFFSET, size);
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public long vaddr() {
        return u64(VADDR_OFFSET);
    }

    public long iova() {
        return u64(IOVA_OFFSET);
    }

    public long mapSize() {
        return u64(SIZE_OFFSET);
    }
}
