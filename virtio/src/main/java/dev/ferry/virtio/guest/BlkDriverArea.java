package dev.ferry.virtio.guest;

import dev.ferry.core.memory.DeviceMemory;

/**
 * Where Ferry's guest virtio-blk driver keeps everything, in guest RAM from a 4 KiB-aligned
 * {@code base} ({@value #SIZE} bytes), so that its whole state migrates with RAM and a driver on
 * the destination continues from it:
 * <pre>
 * base + 0x00000  record (u64 words; the field offsets below)
 *        +0x0200  slots[MAX_DEPTH] of { u64 seq | u32 type | u32 block | u64 unused } (24 bytes)
 * base + 0x01000  descriptor table (QUEUE_SIZE x 16)
 * base + 0x01800  avail ring (6 + 2 x QUEUE_SIZE)
 * base + 0x02000  used ring (6 + 8 x QUEUE_SIZE)
 * base + 0x03000  request headers: slot s at + 32 s: le32 type | le32 0 | le64 sector, status byte at +16
 * base + 0x04000  acknowledged generation per block (u64; 0 = never written; bit 63 = IN_DOUBT)
 * base + 0x40000  data buffers: slot s at + 4096 s
 * </pre>
 * Slot {@code s} uses descriptors {@code 3s} (header), {@code 3s+1} (data) and {@code 3s+2}
 * (status); a flush skips the data descriptor.
 *
 * <p>A block is {@linkplain #IN_DOUBT in doubt} after a write to it completed with an error: a
 * device may fail a write after some or all of it reached the image, so the block holds the last
 * acknowledged generation or a failed later one until a read shows which, or a write succeeds.
 */
public final class BlkDriverArea {
    public static final long SIZE = 0x80000;
    public static final int QUEUE_SIZE = 128;
    public static final int MAX_DEPTH = QUEUE_SIZE / 3;
    /** Most disk blocks whose generation the table can hold. */
    public static final long MAX_BLOCKS = (0x40000 - 0x4000) / 8;

    static final long MAGIC = 0x4665727279426c6bL; // "FerryBlk"
    static final int VERSION = 1;

    // record fields
    static final int R_MAGIC = 0;
    static final int R_VERSION = 8;
    static final int R_SEED = 16;
    static final int R_FEATURES = 24;
    static final int R_BLOCKS = 32;
    static final int R_DEPTH = 40;
    static final int R_RNG = 56;
    static final int R_NEXT_SEQ = 64;
    static final int R_SUBMITTED = 72;
    static final int R_COMPLETED = 80;
    static final int R_WRITES_ACKED = 88;
    static final int R_READS_VERIFIED = 96;
    static final int R_READ_MISMATCHES = 104;
    static final int R_ERRORS = 112;
    static final int R_LAST_USED = 120;
    static final int R_AVAIL = 128;
    static final int R_INTERRUPTS = 136;
    static final int R_FLUSHES = 144;
    static final int R_IOERRS = 152;
    static final int R_FIRST_ERROR = 160;
    static final int R_KICKS = 168;
    /** Non-zero while the guest keeps interrupts masked (as with CLI): it polls the used ring instead. */
    static final int R_IRQ_MASKED = 176;
    /** Device resets the driver did to recover from NEEDS_RESET (each a status-0 write). */
    static final int R_RESETS = 184;
    /** Requests submitted again after a reset (they had no completion when the device broke). */
    static final int R_RESUBMITTED = 192;
    /** Re-initialisations after a reset that the device refused (it came up broken, or not at all). */
    static final int R_RESET_FAILURES = 200;
    /** The driver's recovery state: {@link #RUNNING} or {@link #RESET_PENDING}. */
    static final int R_RECOVERY = 208;
    static final int SLOTS = 0x200;
    static final int SLOT_SIZE = 24;

    static final int DESC = 0x1000;
    static final int AVAIL = 0x1800;
    static final int USED = 0x2000;
    static final int HEADERS = 0x3000;
    static final int GENERATIONS = 0x4000;
    static final int BUFFERS = 0x40000;

    /** Set in a block's generation word after a write to it failed; the low 63 bits stay the acknowledged one. */
    static final long IN_DOUBT = 1L << 63;

    /** Slot types. */
    static final int IDLE = 0;
    static final int WRITE = 1;
    static final int READ = 2;
    static final int FLUSH = 3;

    /** Recovery states (a stopped driver has {@code R_ERRORS} non-zero). */
    static final long RUNNING = 0;
    static final long RESET_PENDING = 1;

    /** First-error codes in the record. */
    static final long ERR_IDLE_COMPLETION = 1;
    static final long ERR_BAD_ID = 2;
    static final long ERR_USED_AHEAD = 3;
    /** The device asked for a reset (NEEDS_RESET); a driver that recovers never records it. */
    static final long ERR_DEVICE = 4;
    /** The device needed more resets than the driver's {@link SoftBlkDriver.ResetLimit} allows: it stopped. */
    static final long ERR_RESET_LIMIT = 5;

    private final DeviceMemory memory;
    private final long base;

    public BlkDriverArea(DeviceMemory memory, long base) {
        if (base % 4096 != 0 || !memory.isRam(base, SIZE)) {
            throw new IllegalArgumentException("disk driver area [0x" + Long.toHexString(base) + ", +0x"
                    + Long.toHexString(SIZE) + ") is not 4 KiB aligned RAM");
        }
        this.memory = memory;
        this.base = base;
    }

    public long base() {
        return base;
    }

    DeviceMemory memory() {
        return memory;
    }

    long get(int field) {
        return memory.readU64(base + field);
    }

    void set(int field, long v) {
        memory.writeU64(base + field, v);
    }

    void add(int field, long delta) {
        set(field, get(field) + delta);
    }

    long slotSeq(int s) {
        return memory.readU64(base + SLOTS + (long) s * SLOT_SIZE);
    }

    int slotType(int s) {
        return memory.readU32(base + SLOTS + (long) s * SLOT_SIZE + 8);
    }

    long slotBlock(int s) {
        return Integer.toUnsignedLong(memory.readU32(base + SLOTS + (long) s * SLOT_SIZE + 12));
    }

    void setSlot(int s, long seq, int type, long block) {
        long a = base + SLOTS + (long) s * SLOT_SIZE;
        memory.writeU64(a, seq);
        memory.writeU32(a + 8, type);
        memory.writeU32(a + 12, (int) block);
    }

    /** The block's generation word: the last acknowledged generation, with {@link #IN_DOUBT} perhaps set. */
    long generation(long block) {
        return memory.readU64(base + GENERATIONS + block * 8);
    }

    /** The last acknowledged generation of {@code block} (0: never written). */
    long acknowledged(long block) {
        return generation(block) & ~IN_DOUBT;
    }

    /** True when a write to {@code block} failed since its last acknowledged one (see {@link #IN_DOUBT}). */
    boolean inDoubt(long block) {
        return (generation(block) & IN_DOUBT) != 0;
    }

    void setGeneration(long block, long gen) {
        memory.writeU64(base + GENERATIONS + block * 8, gen);
    }

    long desc(int i) {
        return base + DESC + 16L * i;
    }

    long avail() {
        return base + AVAIL;
    }

    long used() {
        return base + USED;
    }

    long header(int s) {
        return base + HEADERS + 32L * s;
    }

    long buffer(int s) {
        return base + BUFFERS + 4096L * s;
    }

    /** Masks or unmasks the driver's interrupts, as the guest's own CLI/STI would (tests, with the guest paused). */
    public void setInterruptsMasked(boolean masked) {
        set(R_IRQ_MASKED, masked ? 1 : 0);
    }

    /** A snapshot of the record's counters, for reports and the verifier. */
    public Progress progress() {
        int depth = (int) get(R_DEPTH);
        long[] seqs = new long[Math.max(0, Math.min(depth, MAX_DEPTH))];
        int busy = 0;
        for (int s = 0; s < seqs.length; s++) {
            if (slotType(s) != IDLE) {
                seqs[s] = slotSeq(s);
                busy++;
            }
        }
        return new Progress(get(R_MAGIC) == MAGIC, get(R_SUBMITTED), get(R_COMPLETED), get(R_WRITES_ACKED),
                get(R_READS_VERIFIED), get(R_READ_MISMATCHES), get(R_ERRORS), get(R_FIRST_ERROR), get(R_IOERRS),
                get(R_INTERRUPTS), get(R_FLUSHES), get(R_NEXT_SEQ), busy, seqs, get(R_RESETS), get(R_RESUBMITTED),
                get(R_RESET_FAILURES), get(R_RECOVERY) == RESET_PENDING);
    }

    /**
     * The driver's counters. {@code inFlightSeqs[s]} is slot s's request sequence number, 0 when idle.
     * {@code resets} counts the device resets it did to recover from NEEDS_RESET, {@code resubmitted}
     * the requests it submitted again after them, {@code resetFailures} the re-initialisations the
     * device refused; {@code resetPending} is true while the driver waits to try a reset again.
     */
    public record Progress(boolean started, long submitted, long completed, long writesAcked, long readsVerified,
                           long readMismatches, long errors, long firstError, long ioErrors, long interrupts,
                           long flushes, long nextSeq, int inFlight, long[] inFlightSeqs, long resets,
                           long resubmitted, long resetFailures, boolean resetPending) {
        /**
         * The device kept asking for resets (NEEDS_RESET) until the driver's reset limit stopped it,
         * and that is the driver's only error: what it acknowledged is still to be checked on the
         * image, but its I/O did not go on. A driver that recovered has no error at all.
         */
        public boolean deviceNeedsReset() {
            return errors == 1 && firstError == ERR_RESET_LIMIT;
        }
    }
}
