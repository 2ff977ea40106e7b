package dev.ferry.virtio.queue;

/**
 * The byte layout of a split virtqueue in guest memory (virtio 1.x, split-ring.tex), shared by the
 * device side ({@link SplitVirtqueue}) and the driver side ({@link DriverQueue}). Everything is
 * little-endian; {@code N} is the queue size, a power of two up to 32768; every index is a
 * free-running u16 and its slot is {@code idx % N}.
 *
 * <pre>
 *  Descriptor table (align 16, 16·N bytes), written by the driver
 *   +0        +8       +12      +14      +16
 *   | addr u64 | len u32 | flags  | next   |   flags: NEXT 1, WRITE 2 (device-writable), INDIRECT 4
 *
 *  Available ring / driver area (align 2, 6 + 2·N bytes), written by the driver
 *   +0 flags u16 | +2 idx u16 | +4 ring[0] u16 ... ring[N-1] | +4+2N used_event u16 (EVENT_IDX)
 *   flags: NO_INTERRUPT 1 (ignored under EVENT_IDX)
 *
 *  Used ring / device area (align 4, 6 + 8·N bytes), written by the device
 *   +0 flags u16 | +2 idx u16 | +4 ring[0] {id u32, len u32} ... ring[N-1] | +4+8N avail_event u16
 *   flags: NO_NOTIFY 1 (ignored under EVENT_IDX)
 *
 *  Indirect table (INDIRECT_DESC): len/16 descriptors of the same shape, chained from entry 0.
 * </pre>
 *
 * <p>Stateless; every method is a pure function of its arguments and safe from any thread.
 */
public final class SplitRing {
    /** Largest queue size the split format allows. */
    public static final int MAX_SIZE = 32768;
    public static final int DESC_SIZE = 16;
    public static final int DESC_ALIGN = 16;
    public static final int AVAIL_ALIGN = 2;
    public static final int USED_ALIGN = 4;

    public static final int DESC_F_NEXT = 1;
    public static final int DESC_F_WRITE = 2;
    public static final int DESC_F_INDIRECT = 4;
    public static final int AVAIL_F_NO_INTERRUPT = 1;
    public static final int USED_F_NO_NOTIFY = 1;

    /** Feature bit numbers (content.tex, "Reserved Feature Bits"). */
    public static final int F_INDIRECT_DESC = 28;
    public static final int F_EVENT_IDX = 29;

    /** An indirect table holds at most this many descriptors (the largest queue size). */
    public static final int MAX_INDIRECT_ENTRIES = MAX_SIZE;

    private SplitRing() {
    }

    public static boolean validSize(int n) {
        return n >= 1 && n <= MAX_SIZE && Integer.bitCount(n) == 1;
    }

    public static long descTableBytes(int n) {
        return (long) DESC_SIZE * n;
    }

    public static long availBytes(int n) {
        return 6 + 2L * n;
    }

    public static long usedBytes(int n) {
        return 6 + 8L * n;
    }

    // ---- descriptor fields ----

    public static long descAddr(long table, int i) {
        return table + (long) DESC_SIZE * i;
    }

    public static long descLen(long table, int i) {
        return descAddr(table, i) + 8;
    }

    public static long descFlags(long table, int i) {
        return descAddr(table, i) + 12;
    }

    public static long descNext(long table, int i) {
        return descAddr(table, i) + 14;
    }

    // ---- available ring ----

    public static long availFlags(long avail) {
        return avail;
    }

    public static long availIdx(long avail) {
        return avail + 2;
    }

    /** {@code avail.ring[idx % n]} for a free-running index. */
    public static long availRing(long avail, int n, int idx) {
        return avail + 4 + 2L * (idx & (n - 1));
    }

    public static long usedEvent(long avail, int n) {
        return avail + 4 + 2L * n;
    }

    // ---- used ring ----

    public static long usedFlags(long used) {
        return used;
    }

    public static long usedIdx(long used) {
        return used + 2;
    }

    /** {@code used.ring[idx % n]}: {@code id} at +0, {@code len} at +4. */
    public static long usedElem(long used, int n, int idx) {
        return used + 4 + 8L * (idx & (n - 1));
    }

    public static long availEvent(long used, int n) {
        return used + 4 + 8L * n;
    }

    /**
     * virtio's {@code vring_need_event}: true when moving an index from {@code oldIdx} to
     * {@code newIdx} passes {@code event}, i.e. {@code event} lies in {@code [old, new)} modulo
     * 2^16 — {@code (u16)(new − event − 1) < (u16)(new − old)}. The device uses it with the
     * driver's {@code used_event} to decide on an interrupt; the driver with the device's
     * {@code avail_event} to decide on a kick.
     */
    public static boolean needEvent(int event, int newIdx, int oldIdx) {
        return ((newIdx - event - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
    }

    /** {@code (u16)(a − b)}: how far a free-running index is ahead of another. */
    public static int distance(int a, int b) {
        return (a - b) & 0xffff;
    }

    static String hex16(int v) {
        return String.format("0x%04x", v & 0xffff);
    }
}
