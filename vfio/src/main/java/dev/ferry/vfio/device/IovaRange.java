package dev.ferry.vfio.device;

/** {@code struct vfio_device_feature_dma_logging_range}: {@code [iova, iova + length)}. */
public record IovaRange(long iova, long length) {
    public IovaRange {
        if (length <= 0) {
            throw new IllegalArgumentException("empty IOVA range at 0x" + Long.toHexString(iova));
        }
    }

    public long end() {
        return iova + length;
    }

    public boolean overlaps(IovaRange o) {
        return iova < o.end() && o.iova < end();
    }

    @Override
    public String toString() {
        return "[0x" + Long.toHexString(iova) + ", 0x" + Long.toHexString(end()) + ")";
    }
}
