package dev.ferry.virtio.guest;

import dev.ferry.core.memory.DeviceMemory;

import java.util.ArrayList;
import java.util.List;

/**
 * Where Ferry's guest virtio-net driver keeps everything, in guest RAM from a 4 KiB-aligned
 * {@code base} ({@value #SIZE} bytes), so its state migrates with RAM and the driver on the
 * destination continues the same sequence:
 * <pre>
 * base + 0x00000  record (u64 words; the field offsets below)
 *        +0x0400  peer-sequence gaps: GAPS x { u64 expected | u64 got }
 * base + 0x01000  rx0: descriptors (QUEUE_SIZE x 16) | +0x400 avail | +0x800 used
 * base + 0x02000  tx0: the same
 * base + 0x03000  ctrl: the same
 * base + 0x04000  control request: u8 class | u8 command | data ..., ack byte at +0x100
 * base + 0x10000  TX buffers: slot s at + BUFFER s (header, then frame)
 * base + 0x30000  RX buffers: slot s at + BUFFER s
 * </pre>
 * TX slot {@code s} is descriptor {@code s} of tx0, RX buffer {@code s} descriptor {@code s} of rx0;
 * the control request uses descriptors 0 (request) and 1 (ack) of ctrl.
 */
public final class NetDriverArea {
    public static final long SIZE = 0x50000;
    public static final int QUEUE_SIZE = 64;
    public static final int BUFFER = 2048;
    public static final int GAPS = 32;

    static final long MAGIC = 0x46657272794e6574L; // "FerryNet"

    static final int R_MAGIC = 0;
    static final int R_FEATURES = 8;
    static final int R_MAC = 16;
    static final int R_PEER_MAC = 24;
    static final int R_NEXT_SEQ = 32;
    static final int R_TX_AVAIL = 40;
    static final int R_TX_LAST_USED = 48;
    static final int R_RX_AVAIL = 56;
    static final int R_RX_LAST_USED = 64;
    static final int R_CTRL_AVAIL = 72;
    static final int R_CTRL_LAST_USED = 80;
    static final int R_LAST_PEER_SEQ = 88;
    static final int R_PEER_FRAMES = 96;
    static final int R_PEER_LOST = 104;
    static final int R_PEER_GAPS = 112;
    static final int R_PEER_DUPS = 120;
    static final int R_ECHO_LAST = 128;
    static final int R_ANNOUNCES_SEEN = 136;
    static final int R_ANNOUNCE_ACKS = 144;
    static final int R_GARPS_SENT = 152;
    static final int R_ERRORS = 160;
    static final int R_FIRST_ERROR = 168;
    static final int R_INTERRUPTS = 176;
    static final int R_TX_SENT = 184;
    static final int R_TX_COMPLETED = 192;
    static final int R_CTRL_PENDING = 200;
    static final int R_CTRL_ERRORS = 208;
    static final int R_RX_OTHER = 216;
    static final int R_WINDOW = 224;
    static final int R_FRAME_LEN = 232;
    static final int R_RX_FRAMES = 240;
    static final int R_ECHO_BAD = 248;
    static final int GAP_TABLE = 0x400;

    static final int RX_RING = 0x1000;
    static final int TX_RING = 0x2000;
    static final int CTRL_RING = 0x3000;
    static final int CTRL_REQ = 0x4000;
    static final int CTRL_ACK = 0x4100;
    static final int TX_BUFFERS = 0x10000;
    static final int RX_BUFFERS = 0x30000;

    /** What the control request in flight is. */
    static final int CTRL_NONE = 0;
    static final int CTRL_ANNOUNCE_ACK = 1;
    static final int CTRL_OTHER = 2;

    /** First-error codes. */
    static final long ERR_USED_AHEAD = 1;
    static final long ERR_BAD_ID = 2;
    static final long ERR_DEVICE = 3;
    static final long ERR_ECHO_AHEAD = 4;
    static final long ERR_RX_LENGTH = 5;

    private final DeviceMemory memory;
    private final long base;

    public NetDriverArea(DeviceMemory memory, long base) {
        if (base % 4096 != 0 || !memory.isRam(base, SIZE)) {
            throw new IllegalArgumentException("net driver area [0x" + Long.toHexString(base) + ", +0x"
                    + Long.toHexString(SIZE) + ") is not 4 KiB aligned RAM");
        }
        this.memory = memory;
        this.base = base;
    }

    public long base() {
        return base;
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

    long ring(int which) {
        return base + which;
    }

    long desc(int ring, int i) {
        return base + ring + 16L * i;
    }

    long avail(int ring) {
        return base + ring + 0x400;
    }

    long used(int ring) {
        return base + ring + 0x800;
    }

    long txBuffer(int s) {
        return base + TX_BUFFERS + (long) BUFFER * s;
    }

    long rxBuffer(int s) {
        return base + RX_BUFFERS + (long) BUFFER * s;
    }

    void recordGap(long expected, long got) {
        long n = get(R_PEER_GAPS);
        if (n < GAPS) {
            memory.writeU64(base + GAP_TABLE + 16 * n, expected);
            memory.writeU64(base + GAP_TABLE + 16 * n + 8, got);
        }
        set(R_PEER_GAPS, n + 1);
    }

    /** A missing run of the peer's sequence numbers: {@code [expected, got)} never arrived. */
    public record Gap(long expected, long got) {
        public long lost() {
            return got - expected;
        }
    }

    public Progress progress() {
        long n = Math.min(get(R_PEER_GAPS), GAPS);
        List<Gap> gaps = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            gaps.add(new Gap(memory.readU64(base + GAP_TABLE + 16L * i), memory.readU64(base + GAP_TABLE + 16L * i + 8)));
        }
        return new Progress(get(R_MAGIC) == MAGIC, get(R_NEXT_SEQ) - 1, get(R_TX_SENT), get(R_TX_COMPLETED),
                get(R_RX_FRAMES), get(R_PEER_FRAMES), get(R_LAST_PEER_SEQ), get(R_PEER_LOST), get(R_PEER_GAPS),
                get(R_PEER_DUPS), get(R_ECHO_LAST), get(R_ANNOUNCES_SEEN), get(R_ANNOUNCE_ACKS), get(R_GARPS_SENT),
                get(R_CTRL_ERRORS), get(R_RX_OTHER), get(R_ERRORS), get(R_FIRST_ERROR), get(R_INTERRUPTS),
                get(R_ECHO_BAD), List.copyOf(gaps));
    }

    /**
     * The driver's counters. {@code lastSentSeq}: the last data frame's sequence number;
     * {@code peerLost}: the peer's frames that never arrived, in {@code gaps} (the first
     * {@value #GAPS}); {@code peerDups}: peer frames that came again or out of order.
     */
    public record Progress(boolean started, long lastSentSeq, long txSent, long txCompleted, long rxFrames,
                           long peerFrames, long lastPeerSeq, long peerLost, long peerGaps, long peerDups,
                           long echoLast, long announcesSeen, long announceAcks, long garpsSent, long ctrlErrors,
                           long rxOther, long errors, long firstError, long interrupts, long echoBad,
                           List<Gap> gaps) {
    }
}
