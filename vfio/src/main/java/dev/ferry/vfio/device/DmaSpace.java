package dev.ferry.vfio.device;

/**
 * The IOVA space a device DMAs into: what the IOMMU maps for it. Ferry maps guest RAM at
 * IOVA = GPA, as QEMU does without a vIOMMU.
 */
public interface DmaSpace {
    /**
     * The host address backing {@code [iova, iova + length)}, which must lie in one mapping.
     * Throws {@link IllegalArgumentException} for an unmapped range (an IOMMU fault).
     */
    long hostAddress(long iova, long length);

    /** Every mapped range, for DMA logging and for "all DMA-able memory is dirty". */
    java.util.List<IovaRange> mappedRanges();
}
