package dev.ferry.core.memory;

/** An I/O virtual address: what a device's DMA uses, translated by an IOMMU to guest-physical. */
public record Iova(long raw) {
    @Override
    public String toString() {
        return "iova 0x" + Long.toHexString(raw);
    }
}
