package dev.ferry.virtio.queue;

/**
 * What the driver configured for one split virtqueue before setting it ready: its size, the
 * guest-physical addresses of its three areas, and the negotiated feature bits (only
 * {@link SplitRing#F_INDIRECT_DESC} and {@link SplitRing#F_EVENT_IDX} matter here). Every value
 * comes from the guest and is checked by {@link SplitVirtqueue#enable}, not here.
 *
 * @param size      queue size N
 * @param descGpa   descriptor table ("descriptor area")
 * @param availGpa  available ring ("driver area")
 * @param usedGpa   used ring ("device area")
 * @param features  the negotiated feature bits
 */
public record QueueConfig(int size, long descGpa, long availGpa, long usedGpa, long features) {

    /**
     * The three areas packed one after another from {@code base} (a 16-aligned address):
     * descriptors, then the available ring, then the used ring at the next 4-byte boundary.
     */
    public static QueueConfig contiguous(int size, long base, long features) {
        long avail = base + SplitRing.descTableBytes(size);
        long used = (avail + SplitRing.availBytes(size) + 3) & ~3L;
        return new QueueConfig(size, base, avail, used, features);
    }

    /** Bytes from {@code descGpa} to the end of the used ring, for a {@link #contiguous} layout. */
    public long contiguousBytes() {
        return usedGpa + SplitRing.usedBytes(size) - descGpa;
    }

    public boolean eventIdx() {
        return (features & (1L << SplitRing.F_EVENT_IDX)) != 0;
    }

    public boolean indirectDesc() {
        return (features & (1L << SplitRing.F_INDIRECT_DESC)) != 0;
    }

    public QueueConfig withFeatures(long newFeatures) {
        return new QueueConfig(size, descGpa, availGpa, usedGpa, newFeatures);
    }

    public static long features(boolean eventIdx, boolean indirectDesc) {
        return (eventIdx ? 1L << SplitRing.F_EVENT_IDX : 0) | (indirectDesc ? 1L << SplitRing.F_INDIRECT_DESC : 0);
    }

    @Override
    public String toString() {
        return "size " + size + ", desc 0x" + Long.toHexString(descGpa) + ", avail 0x" + Long.toHexString(availGpa)
                + ", used 0x" + Long.toHexString(usedGpa) + (eventIdx() ? ", EVENT_IDX" : "")
                + (indirectDesc() ? ", INDIRECT_DESC" : "");
    }
}
