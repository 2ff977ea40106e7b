package dev.ferry.vhostuser.check;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.DriverQueue.Buffer;

import java.util.BitSet;
import java.util.List;

/**
 * virtio-net traffic for the check: queue 0 receives, queue 1 transmits. Frames go out on TX and
 * are expected back on RX, as a back-end that loops them returns them (DPDK testpmd with
 * {@code --forward-mode=macswap --port-topology=loop}: source and destination MAC swapped). Each
 * frame carries a magic and a sequence number; a frame that comes back must be one that was sent,
 * with its MACs swapped and its payload intact, each exactly once. A buffer is the 12-byte
 * {@code virtio_net_hdr} (VERSION_1) followed by the frame. The probe posts one RX buffer and sends
 * a frame; after a ring comes back the frame is sent again, since a disabled or stopped RX ring
 * drops what arrives.
 */
final class NetExercise implements DeviceExercise {
    static final int FRAMES = 16;
    static final int HDR = 12;
    static final int FRAME = 64;
    static final int RX_BYTES = 2048;
    private static final int PROBE_SLOT = 40;
    private static final int TX_SLOTS = 64;
    private static final long MAGIC = 0x4b48435952524546L; // "FERRYCHK"
    private static final byte[] SRC = {0x02, 0, 0, 0, 0, 0x01};
    private static final byte[] DST = {0x02, 0, 0, 0, 0, 0x02};

    private final CheckGuest guest;
    private final DeviceMemory mem;
    private int nextTx;
    private int nextSeq = 1;

    NetExercise(CheckGuest guest) {
        this.guest = guest;
        this.mem = guest.memory();
    }

    @Override
    public String type() {
        return "net";
    }

    @Override
    public long features(long offered) {
        return 0;
    }

    @Override
    public int rings() {
        return 2;
    }

    @Override
    public void configure(CheckFrontend frontend) {
        // nothing to read: the MAC and link state do not matter to a looping back-end
    }

    @Override
    public void poison() {
        mem.fill(CheckGuest.IN_DATA, (long) (PROBE_SLOT + 1) * guest.slotBytes(), (byte) 0xa5);
    }

    private int postRx(CheckRing rx, int slot) {
        return rx.add(List.of(), List.of(new Buffer(guest.inBuffer(slot), RX_BYTES)));
    }

    /** Queues one frame with sequence {@code seq} on TX (not kicked). */
    private void sendFrame(CheckRing tx, int seq) {
        while (tx.queue().pollUsed() != null) {
            // TX buffers come back once sent; their slots are reused round-robin
        }
        long at = guest.outBuffer(nextTx++ % TX_SLOTS);
        mem.fill(at, HDR, (byte) 0);
        mem.write(at + HDR, DST, 0, 6);
        mem.write(at + HDR + 6, SRC, 0, 6);
        mem.writeU8(at + HDR + 12, 0x88);
        mem.writeU8(at + HDR + 13, 0xb5);
        mem.writeU64(at + HDR + 14, MAGIC);
        mem.writeU32(at + HDR + 22, seq);
        for (int i = 26; i < FRAME; i++) {
            mem.writeU8(at + HDR + i, (seq * 13 + i) & 0xff);
        }
        tx.add(List.of(new Buffer(at, HDR + FRAME)), List.of());
    }

    /** The sequence number of the looped frame in {@code slot}, or a description of what is wrong with it. */
    private Object received(int slot, long length) {
        long at = guest.inBuffer(slot);
        if (length != HDR + FRAME) {
            return "an RX buffer came back with " + length + " bytes; " + (HDR + FRAME) + " were sent";
        }
        byte[] dst = new byte[6];
        byte[] src = new byte[6];
        mem.read(at + HDR, dst, 0, 6);
        mem.read(at + HDR + 6, src, 0, 6);
        if (!java.util.Arrays.equals(dst, SRC) || !java.util.Arrays.equals(src, DST)
                || mem.readU64(at + HDR + 14) != MAGIC) {
            return "a received frame is not a looped check frame (MACs swapped, magic)";
        }
        int seq = mem.readU32(at + HDR + 22);
        for (int i = 26; i < FRAME; i++) {
            if (mem.readU8(at + HDR + i) != ((seq * 13 + i) & 0xff)) {
                return "frame " + seq + " came back with byte " + i + " changed";
            }
        }
        return seq;
    }

    @Override
    public long[] traffic(CheckRing[] rings, CheckLedger ledger, long timeoutMs) {
        CheckRing rx = rings[0];
        CheckRing tx = rings[1];
        int[] slotOfHead = new int[CheckGuest.QUEUE_SIZE];
        for (int i = 0; i < FRAMES; i++) {
            slotOfHead[postRx(rx, i)] = i;
        }
        rx.kick();
        int first = nextSeq;
        for (int i = 0; i < FRAMES; i++) {
            sendFrame(tx, nextSeq++);
        }
        tx.kick();
        BitSet seen = new BitSet();
        for (int i = 0; i < FRAMES; i++) {
            DriverQueue.Used u = rx.awaitUsed(timeoutMs);
            if (u == null) {
                ledger.violation(CheckRule.TRAFFIC, (FRAMES - i) + " of " + FRAMES + " frames sent on TX did not come"
                        + " back on RX within " + timeoutMs + " ms (does the back-end loop frames?)");
                return new long[] {i, (long) i * FRAME};
            }
            Object r = received(slotOfHead[u.id()], u.length());
            if (r instanceof String why) {
                ledger.violation(CheckRule.TRAFFIC, why);
                return new long[] {i, (long) i * FRAME};
            }
            int seq = (Integer) r;
            if (seq < first || seq >= first + FRAMES || seen.get(seq - first)) {
                ledger.violation(CheckRule.TRAFFIC, "frame " + seq + " came back " + (seen.get(seq - first) ? "twice"
                        : "although it was not sent in this batch"));
                return new long[] {i, (long) i * FRAME};
            }
            seen.set(seq - first);
        }
        ledger.pass(CheckRule.TRAFFIC);
        return new long[] {2L * FRAMES, 2L * FRAMES * FRAME};
    }

    @Override
    public int burst(CheckRing[] rings) {
        return 0;
    }

    @Override
    public int probeRing() {
        return 0;
    }

    @Override
    public int probe(CheckRing[] rings) {
        int head = postRx(rings[0], PROBE_SLOT);
        rings[0].kick();
        sendFrame(rings[1], nextSeq++);
        rings[1].kick();
        return head;
    }

    @Override
    public String awaitProbe(CheckRing[] rings, int head, long timeoutMs) {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        int probeSeq = nextSeq - 1;
        rings[0].kick();
        while (System.nanoTime() < deadline) {
            DriverQueue.Used u = rings[0].awaitUsed(200);
            if (u != null) {
                if (u.id() != head) {
                    return "the back-end returned RX head " + u.id() + ", not the probe buffer's head " + head;
                }
                Object r = received(PROBE_SLOT, u.length());
                if (r instanceof String why) {
                    return why;
                }
                return (Integer) r >= probeSeq ? null : "the probe buffer received frame " + r
                        + ", which was sent before the probe";
            }
            sendFrame(rings[1], nextSeq++); // a disabled or stopped RX ring dropped the earlier one
            rings[1].kick();
        }
        return "no frame reached the probe buffer within " + timeoutMs + " ms";
    }
}
