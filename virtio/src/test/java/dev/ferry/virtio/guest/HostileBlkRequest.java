package dev.ferry.virtio.guest;

/**
 * A hostile request planted in {@link SoftBlkDriver}'s ring, as a buggy or malicious guest
 * component beside the driver would: a one-descriptor chain whose buffer lies outside guest RAM.
 * The split ring refuses it, so the device goes NEEDS_RESET on it — with the driver's own
 * requests still waiting in the ring behind it, none of them completed.
 *
 * <p>Call with the VM paused (the driver's thread parked and the device drained, so every request
 * the device took is in the used ring and the next one it takes is at the used index).
 */
public final class HostileBlkRequest {
    /** A descriptor no slot uses ({@code 3 x MAX_DEPTH} are the driver's). */
    static final int BAD_HEAD = BlkDriverArea.QUEUE_SIZE - 1;
    /** Far beyond any test VM's RAM. */
    static final long OUTSIDE_RAM = 1L << 46;

    private HostileBlkRequest() {
    }

    /**
     * Makes the hostile chain the next one the device takes: the driver's request at that ring
     * position moves to the end of the ring, and the avail index (the ring's and the driver's
     * record of it) grows by one, so the driver's next submission goes after it.
     */
    public static void plantNext(BlkDriverArea area) {
        var mem = area.memory();
        int qs = BlkDriverArea.QUEUE_SIZE;
        long d = area.desc(BAD_HEAD);
        mem.writeU64(d, OUTSIDE_RAM);
        mem.writeU32(d + 8, 16);
        mem.writeU16(d + 12, 0);
        mem.writeU16(d + 14, 0);
        int next = mem.readU16(area.used() + 2); // the device took (and completed) everything before it
        long avail = area.get(BlkDriverArea.R_AVAIL);
        if (((int) avail - next & 0xffff) >= qs) {
            throw new IllegalStateException("the ring is full");
        }
        long at = area.avail() + 4 + 2L * (next % qs);
        int displaced = mem.readU16(at);
        if ((avail & 0xffff) != next) {
            mem.writeU16(area.avail() + 4 + 2L * (avail % qs), displaced);
        }
        mem.writeU16(at, BAD_HEAD);
        mem.storeU16Release(area.avail() + 2, (int) (avail + 1));
        area.set(BlkDriverArea.R_AVAIL, avail + 1);
    }

    /**
     * A device that lies about its progress: the used index jumps {@code ahead} entries past what
     * the driver reaped (more than it has in flight). Call with the VM paused and the device idle.
     */
    public static void usedIndexAhead(BlkDriverArea area, int ahead) {
        var mem = area.memory();
        mem.storeU16Release(area.used() + 2, (int) (area.get(BlkDriverArea.R_LAST_USED) + ahead));
    }

    /** The driver's first-error codes the tests look for. */
    public static final long ERR_USED_AHEAD = BlkDriverArea.ERR_USED_AHEAD;
    public static final long ERR_RESET_LIMIT = BlkDriverArea.ERR_RESET_LIMIT;
}
