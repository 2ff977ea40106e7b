package dev.ferry.vfio.device;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;

import java.util.List;

/** Guest RAM mapped for DMA at IOVA = GPA (QEMU's mapping without a vIOMMU). */
public final class GuestDmaSpace implements DmaSpace {
    private final GuestMemory memory;
    private final List<IovaRange> ranges;

    public GuestDmaSpace(GuestMemory memory) {
        this.memory = memory;
        this.ranges = memory.regions().stream().map(r -> new IovaRange(r.gpaBase(), r.size())).toList();
    }

    @Override
    public long hostAddress(long iova, long length) {
        GuestRegion r;
        try {
            r = memory.regionFor(iova, length);
        } catch (RuntimeException e) {
            r = null;
        }
        if (r == null) {
            throw new IllegalArgumentException("IOMMU fault: IOVA [0x" + Long.toHexString(iova) + ", +0x"
                    + Long.toHexString(length) + ") is not mapped");
        }
        return r.hostAddress(iova - r.gpaBase());
    }

    @Override
    public List<IovaRange> mappedRanges() {
        return ranges;
    }

    public GuestMemory memory() {
        return memory;
    }
}
