package dev.ferry.virtio.guest;

import dev.ferry.core.memory.DeviceMemory;

/**
 * Where {@link SoftBalloonDriver} keeps everything it knows, in guest RAM, so that it migrates
 * with RAM and the same program continues on a destination:
 * <pre>
 *  +0x0000  64 × u64 registers (R_*)
 *  +0x0200  PFN buffer: 256 × le32                       inflate / deflate requests
 *  +0x0600  stats buffer: 4 × {le16 tag, le64 value}      (10-byte entries, packed)
 *  +0x0680  le32 command id                               free page hinting's id / STOP buffer
 *  +0x1000  queue q's rings at +0x1000 + q × 0x400: desc @0 (16 × 16 B), avail @0x100, used @0x200
 * </pre>
 * One request at a time per queue, always descriptor 0, so a queue needs only its indices here.
 */
public final class BalloonDriverArea {
    public static final long SIZE = 0x2000;
    public static final int QUEUE_SIZE = 16;
    public static final int QUEUES = 4;
    public static final int MAX_PFNS = 256;
    static final long PFNS = 0x200;
    static final long STATS = 0x600;
    static final int STATS_ENTRIES = 4;
    static final long CMD = 0x680;
    static final long RINGS = 0x1000;
    static final long RING_STRIDE = 0x400;

    public static final long MAGIC = 0x42414c4c4f4f4e31L; // "BALLOON1"
    public static final int R_MAGIC = 0;
    public static final int R_FEATURES = 1;
    /** Pages of the balloon region in the balloon: the first R_GIVEN pages. */
    public static final int R_GIVEN = 2;
    /** The PFN request in flight: 0 none, 1 inflate, 2 deflate; R_PFN_COUNT pages. */
    public static final int R_PFN_OP = 3;
    public static final int R_PFN_COUNT = 4;
    static final int R_AVAIL = 8;      // + queue
    static final int R_USED = 12;      // + queue
    static final int R_INFLIGHT = 16;  // + queue
    /** The command id of the hint round in progress or last finished. */
    public static final int R_HINT_ID = 20;
    /** 0 idle, 1 id sent, 2 hinting blocks, 3 STOP sent. */
    public static final int R_HINT_PHASE = 21;
    public static final int R_HINT_NEXT = 22;
    public static final int R_HINT_ROUNDS = 23;
    public static final int R_HINT_BLOCKS = 24;
    public static final int R_STATS_SENT = 25;
    public static final int R_ERRORS = 26;
    public static final int R_INTERRUPTS = 27;
    /** 1 once the free region was written and freed. */
    public static final int R_FREE_READY = 28;
    public static final int R_REUSE_WRITES = 29;
    public static final int R_REUSE_VALUE = 30;
    public static final int R_STATS_Q = 31;
    public static final int R_HINT_Q = 32;
    public static final int R_REUSE_PAGE = 33;
    /** A round the host ended before the driver sent every block (STOP, DONE or a new id came). */
    public static final int R_HINT_ABORTED = 34;
    public static final int R_REGISTERS = 64;

    private final DeviceMemory mem;
    private final long base;

    public BalloonDriverArea(DeviceMemory mem, long base) {
        if ((base & 0xfff) != 0) {
            throw new IllegalArgumentException("balloon driver area at 0x" + Long.toHexString(base) + " is not 4 KiB aligned");
        }
        this.mem = mem;
        this.base = base;
    }

    public long base() {
        return base;
    }

    public long get(int reg) {
        return mem.readU64(base + 8L * reg);
    }

    public void set(int reg, long v) {
        mem.writeU64(base + 8L * reg, v);
    }

    void add(int reg, long d) {
        set(reg, get(reg) + d);
    }

    long desc(int q) {
        return base + RINGS + RING_STRIDE * q;
    }

    long avail(int q) {
        return desc(q) + 0x100;
    }

    long used(int q) {
        return desc(q) + 0x200;
    }
}
