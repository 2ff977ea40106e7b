package dev.ferry.virtio.guest;

import dev.ferry.core.cpu.soft.SoftGuestProgram;
import dev.ferry.core.device.SoftInterruptController;
import dev.ferry.core.machine.IoBus;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.net.NetConfig;
import dev.ferry.virtio.net.NetControl;
import dev.ferry.virtio.net.NetHeader;
import dev.ferry.virtio.net.VirtioNet;

import java.util.concurrent.TimeUnit;

/**
 * Ferry's multiqueue guest virtio-net driver for the soft engine: like {@link SoftNetDriver} it
 * drives a virtio-mmio NIC only through registers, rings in guest RAM and interrupts, but over
 * every queue pair the device offers (MQ, {@code max_virtqueue_pairs}) up to the pairs asked for.
 * At boot it negotiates MQ and CTRL_VQ, readies rx/tx of each pair it wants and the control queue
 * (2N with MQ), sets DRIVER_OK and sends VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET; traffic starts once the
 * device acknowledged (OK: every pair; ERR: pair 0 only, counted).
 *
 * <h2>Flows</h2>
 * One flow per pair: pair {@code p} sends DATA frames ({@link NetTraffic}) with flow byte
 * {@code p} and its own sequence numbers from 1, at most {@code window} unanswered. What comes
 * back — the traffic peer's REPLY (its own sequence per flow, echoing a DATA sequence) or the
 * DATA frame itself turned around (testpmd's macswap) — is checked per flow: sequence numbers must
 * rise (a jump is loss, counted; a repeat or step back is a duplicate or reordering, counted), the
 * echo must name a frame the flow sent, and a frame of flow {@code p} arriving on another pair's
 * rx queue counts as misdelivered (the device's receive steering failed).
 *
 * <p>Everything lives in guest RAM (layout below), so after a migration the same program on the
 * destination continues every flow. When a flow's replies stop (frames lost with a migration's
 * source) it waits a little and counts that flow's unanswered frames as answered.
 * <pre>
 * base + 0x00000  record: u64 words (R_*), then per pair 0x80 bytes at 0x400 + 0x80·p (P_*)
 *        +0x0c00  control request (class, command, data); ack byte at +0x0d00
 * base + 0x01000  ring q (0..2·MAX_PAIRS): 0x1000 each — descriptors | +0x800 avail | +0xa00 used
 * base + 0x20000  pair p: RX buffers at + 0x40000·p, TX buffers 0x20000 above (QUEUE_SIZE x BUFFER)
 * </pre>
 */
public final class SoftMqNetDriver implements SoftGuestProgram {
    public static final int MAX_PAIRS = 8;
    public static final int QUEUE_SIZE = 64;
    public static final int BUFFER = 2048;
    public static final long SIZE = 0x20000 + 0x40000L * MAX_PAIRS;
    private static final long MAGIC = 0x46657272794d516eL; // "FerryMQn"
    private static final long WAIT_NANOS = TimeUnit.MILLISECONDS.toNanos(1);
    /** How long a flow with unanswered frames hears nothing before they count as lost. */
    private static final long STALL_NANOS = TimeUnit.MILLISECONDS.toNanos(50);

    static final int R_MAGIC = 0;
    static final int R_FEATURES = 8;
    static final int R_MAC = 16;
    static final int R_MAX_PAIRS = 24;
    static final int R_PAIRS = 32;
    static final int R_CTRL_QUEUE = 40;
    static final int R_CTRL_AVAIL = 48;
    static final int R_CTRL_LAST_USED = 56;
    static final int R_CTRL_PENDING = 64;
    static final int R_CTRL_ERRORS = 72;
    static final int R_ERRORS = 80;
    static final int R_FIRST_ERROR = 88;
    static final int R_INTERRUPTS = 96;
    static final int R_WANT_PAIRS = 104;
    static final int R_WINDOW = 112;
    static final int R_FRAME_LEN = 120;

    static final int P_NEXT_SEQ = 0;
    static final int P_ECHO_LAST = 8;
    static final int P_TX_AVAIL = 16;
    static final int P_TX_LAST_USED = 24;
    static final int P_TX_COMPLETED = 32;
    static final int P_RX_AVAIL = 40;
    static final int P_RX_LAST_USED = 48;
    static final int P_RX_FRAMES = 56;
    static final int P_LAST_SEQ = 64;
    static final int P_DUPS = 72;
    static final int P_LOST = 80;
    static final int P_MISDELIVERED = 88;
    static final int P_OTHER = 96;

    public static final long ERR_DEVICE = 1;
    public static final long ERR_USED_AHEAD = 2;
    public static final long ERR_BAD_ID = 3;
    public static final long ERR_RX_LENGTH = 4;
    public static final long ERR_ECHO_AHEAD = 5;
    public static final long ERR_NO_MQ = 6;

    private final DeviceMemory mem;
    private final long base;
    private final GuestMmio port;
    private final SoftInterruptController irqchip;
    private final int irqMask;
    private final byte[] frame;
    private boolean booted;
    /** Per flow: its received-frame count when last looked at, and since when it stayed so (0: not yet looked). */
    private final long[] heard = new long[MAX_PAIRS];
    private final long[] quietSince = new long[MAX_PAIRS];

    /**
     * @param areaBase 4 KiB-aligned guest-physical base of {@link #SIZE} bytes
     * @param pairs    queue pairs wanted (1..{@link #MAX_PAIRS}; fewer when the device offers fewer)
     * @param window   DATA frames in flight per flow without a reply (1..QUEUE_SIZE)
     */
    public SoftMqNetDriver(DeviceMemory memory, long areaBase, IoBus mmio, long regs, SoftInterruptController irqchip,
                           int gsi, int pairs, int window, int frameLength) {
        if (pairs < 1 || pairs > MAX_PAIRS || window < 1 || window > QUEUE_SIZE || frameLength < NetTraffic.MIN_FRAME
                || frameLength > BUFFER - NetHeader.SIZE) {
            throw new IllegalArgumentException("pairs " + pairs + " (1.." + MAX_PAIRS + "), window " + window + " (1.."
                    + QUEUE_SIZE + "), frame length " + frameLength);
        }
        this.mem = memory;
        this.base = areaBase;
        this.port = new GuestMmio(memory, mmio, regs);
        this.irqchip = irqchip;
        this.irqMask = 1 << gsi;
        this.frame = new byte[frameLength];
        if (get(R_MAGIC) != MAGIC) {
            set(R_WANT_PAIRS, pairs);
            set(R_WINDOW, window);
            set(R_FRAME_LEN, frameLength);
        }
    }

    /** What one flow (pair) did so far. */
    public record Flow(long sent, long completed, long received, long lastSeq, long lost, long dups, long misdelivered) {
    }

    /** The driver's counters, read from guest RAM. */
    public record Progress(long maxPairs, long pairs, long ctrlErrors, long errors, long firstError, Flow[] flows) {
        public long received() {
            long n = 0;
            for (Flow f : flows) {
                n += f.received;
            }
            return n;
        }

        /** Frames received on the flow with the fewest. */
        public long leastReceived() {
            long n = Long.MAX_VALUE;
            for (Flow f : flows) {
                n = Math.min(n, f.received);
            }
            return flows.length == 0 ? 0 : n;
        }

        @Override
        public String toString() {
            StringBuilder b = new StringBuilder("pairs " + pairs + "/" + maxPairs + ", ctrl errors " + ctrlErrors
                    + ", errors " + errors + " (first " + firstError + ")");
            for (int p = 0; p < flows.length; p++) {
                b.append("; flow ").append(p).append(' ').append(flows[p]);
            }
            return b.toString();
        }
    }

    public Progress progress() {
        int n = (int) Math.min(MAX_PAIRS, Math.max(0, get(R_PAIRS)));
        Flow[] flows = new Flow[n];
        for (int p = 0; p < n; p++) {
            flows[p] = new Flow(pget(p, P_NEXT_SEQ) - 1, pget(p, P_TX_COMPLETED), pget(p, P_RX_FRAMES),
                    pget(p, P_LAST_SEQ), pget(p, P_LOST), pget(p, P_DUPS), pget(p, P_MISDELIVERED));
        }
        return new Progress(get(R_MAX_PAIRS), get(R_PAIRS), get(R_CTRL_ERRORS), get(R_ERRORS), get(R_FIRST_ERROR),
                flows);
    }

    // ---- guest RAM ----

    private long get(int field) {
        return mem.readU64(base + field);
    }

    private void set(int field, long v) {
        mem.writeU64(base + field, v);
    }

    private long pget(int pair, int field) {
        return mem.readU64(base + 0x400 + 0x80L * pair + field);
    }

    private void pset(int pair, int field, long v) {
        mem.writeU64(base + 0x400 + 0x80L * pair + field, v);
    }

    private void padd(int pair, int field, long d) {
        pset(pair, field, pget(pair, field) + d);
    }

    private long ring(int q) {
        return base + 0x1000 + 0x1000L * q;
    }

    private long desc(int q, int i) {
        return ring(q) + 16L * i;
    }

    private long avail(int q) {
        return ring(q) + 0x800;
    }

    private long used(int q) {
        return ring(q) + 0xa00;
    }

    private long rxBuffer(int pair, int s) {
        return base + 0x20000 + 0x40000L * pair + (long) BUFFER * s;
    }

    private long txBuffer(int pair, int s) {
        return rxBuffer(pair, s) + 0x20000;
    }

    // ---- the slice ----

    @Override
    public void runSlice() throws InterruptedException {
        if (!booted) {
            boot();
            booted = true;
        }
        if (get(R_ERRORS) != 0) {
            Thread.sleep(2); // a broken device or protocol: stop, keep the evidence
            return;
        }
        int work = reapCtrl();
        int pairs = get(R_CTRL_PENDING) != 0 ? 0 : (int) get(R_PAIRS);
        long now = System.nanoTime();
        for (int p = 0; p < pairs && get(R_ERRORS) == 0; p++) {
            work += reapTx(p) + reapRx(p) + sendData(p);
            giveUpWhenQuiet(p, now);
        }
        boolean idle = work == 0;
        int pending = idle ? irqchip.await(irqMask, WAIT_NANOS, TimeUnit.NANOSECONDS) : irqchip.pendingMask() & irqMask;
        if (pending != 0) {
            interrupt();
        }
    }

    /**
     * Flow {@code p}'s unanswered frames count as answered once the device took every one of
     * them (their TX buffers came back) and nothing came back on the flow for
     * {@link #STALL_NANOS}: frames lost with a migration's source, or dropped on the way. Frames
     * still in the TX ring are not lost (a back-end that starts forwarding late, a busy host);
     * sending more then would only overrun the RX ring. Each flow is watched on its own: one
     * whose replies stopped goes on while the others run.
     */
    private void giveUpWhenQuiet(int p, long now) {
        long rx = pget(p, P_RX_FRAMES);
        long sent = pget(p, P_NEXT_SEQ) - 1;
        boolean open = sent > pget(p, P_ECHO_LAST) && pget(p, P_TX_COMPLETED) == sent;
        if (rx != heard[p] || !open || quietSince[p] == 0) {
            heard[p] = rx;
            quietSince[p] = now;
        } else if (now - quietSince[p] > STALL_NANOS) {
            pset(p, P_ECHO_LAST, pget(p, P_NEXT_SEQ) - 1);
            quietSince[p] = now;
        }
    }

    private void interrupt() {
        int isr = port.ackInterrupt();
        set(R_INTERRUPTS, get(R_INTERRUPTS) + 1);
        if ((isr & Virtio.ISR_CONFIG) != 0 && port.needsReset()) {
            error(ERR_DEVICE);
        }
    }

    private void boot() {
        if (get(R_MAGIC) == MAGIC) {
            return; // resumed: a migration destination, or the same VM after a pause
        }
        long wantPairs = get(R_WANT_PAIRS);
        long window = get(R_WINDOW);
        long frameLength = get(R_FRAME_LEN);
        long offered = port.begin();
        long want = Virtio.bit(Virtio.F_VERSION_1) | Virtio.bit(VirtioNet.F_MAC) | Virtio.bit(VirtioNet.F_STATUS)
                | Virtio.bit(VirtioNet.F_CTRL_VQ) | Virtio.bit(22);
        long accept = offered & want;
        if ((accept & Virtio.bit(VirtioNet.F_CTRL_VQ)) == 0) {
            accept &= ~Virtio.bit(22); // MQ needs CTRL_VQ
        }
        int st = port.acceptFeatures(accept);
        boolean mq = Virtio.has(accept, 22);
        int max = mq ? (int) port.config(8, 2) : 1;
        mem.fill(base, SIZE, (byte) 0);
        set(R_WANT_PAIRS, wantPairs);
        set(R_WINDOW, window);
        set(R_FRAME_LEN, frameLength);
        if (max < 1 || max > 0x8000) {
            error(ERR_NO_MQ);
            return;
        }
        int pairs = (int) Math.min(Math.min(max, MAX_PAIRS), wantPairs);
        int ctrl = Virtio.has(accept, VirtioNet.F_CTRL_VQ) ? (mq ? 2 * max : 2) : -1;
        for (int p = 0; p < pairs; p++) {
            queue(2 * p, 2 * p);
            queue(2 * p + 1, 2 * p + 1);
        }
        if (ctrl >= 0) {
            queue(ctrl, 2 * MAX_PAIRS);
        }
        byte[] mac = port.mac(NetConfig.MAC_OFFSET);
        for (int p = 0; p < pairs; p++) {
            for (int s = 0; s < QUEUE_SIZE; s++) {
                descriptor(2 * p, s, rxBuffer(p, s), BUFFER, 2, 0);
                descriptor(2 * p + 1, s, txBuffer(p, s), 0, 0, 0);
                mem.writeU16(avail(2 * p) + 4 + 2L * s, s);
            }
            mem.storeU16Release(avail(2 * p) + 2, QUEUE_SIZE);
            pset(p, P_RX_AVAIL, QUEUE_SIZE);
            pset(p, P_NEXT_SEQ, 1);
        }
        set(R_FEATURES, accept);
        set(R_MAC, NetTraffic.macToLong(mac));
        set(R_MAX_PAIRS, max);
        set(R_CTRL_QUEUE, ctrl);
        set(R_PAIRS, 1);
        set(R_MAGIC, MAGIC);
        port.driverOk(st);
        if (mq && pairs > 1) {
            control(NetControl.CLASS_MQ, 0, new byte[] {(byte) pairs, (byte) (pairs >>> 8)}, pairs);
        }
    }

    /** Device queue {@code q} on the driver's ring {@code r}. */
    private void queue(int q, int r) {
        port.queue(q, QUEUE_SIZE, desc(r, 0), avail(r), used(r));
    }

    private void descriptor(int ring, int i, long addr, int len, int flags, int next) {
        port.descriptor(desc(ring, i), addr, len, flags, next);
    }

    private void kick(int ring, int queue) {
        port.kick(used(ring), queue);
    }

    // ---- control queue ----

    /** One request (descriptors 0 and 1 of the control ring); {@code pairs}: what an OK enables. */
    private void control(int cls, int cmd, byte[] data, int pairs) {
        long req = base + 0xc00;
        long ack = base + 0xd00;
        int r = 2 * MAX_PAIRS;
        mem.writeU8(req, cls);
        mem.writeU8(req + 1, cmd);
        mem.write(req + 2, data, 0, data.length);
        mem.writeU8(ack, 0xff);
        descriptor(r, 0, req, 2 + data.length, 1, 1);
        descriptor(r, 1, ack, 1, 2, 0);
        long a = get(R_CTRL_AVAIL);
        mem.writeU16(avail(r) + 4 + 2L * (a % QUEUE_SIZE), 0);
        set(R_CTRL_PENDING, pairs);
        mem.storeU16Release(avail(r) + 2, (int) (a + 1));
        set(R_CTRL_AVAIL, a + 1);
        kick(r, (int) get(R_CTRL_QUEUE));
    }

    private int reapCtrl() {
        if (get(R_CTRL_PENDING) == 0) {
            return 0;
        }
        int r = 2 * MAX_PAIRS;
        long lastUsed = get(R_CTRL_LAST_USED);
        int pending = (mem.loadU16Acquire(used(r) + 2) - (int) lastUsed) & 0xffff;
        if (pending == 0) {
            return 0;
        }
        if (pending != 1) {
            error(ERR_USED_AHEAD);
            return 0;
        }
        if (mem.readU8(base + 0xd00) == NetControl.OK) {
            set(R_PAIRS, get(R_CTRL_PENDING));
        } else {
            set(R_CTRL_ERRORS, get(R_CTRL_ERRORS) + 1);
        }
        set(R_CTRL_PENDING, 0);
        set(R_CTRL_LAST_USED, lastUsed + 1);
        return 1;
    }

    // ---- TX ----

    private int sendData(int p) {
        long next = pget(p, P_NEXT_SEQ);
        long echo = pget(p, P_ECHO_LAST);
        long a = pget(p, P_TX_AVAIL);
        long lastUsed = pget(p, P_TX_LAST_USED);
        long window = get(R_WINDOW);
        int len = (int) get(R_FRAME_LEN);
        int n = 0;
        while (next - 1 - echo < window && a - lastUsed < QUEUE_SIZE) {
            fillData(p, next, len);
            int s = (int) (a % QUEUE_SIZE);
            long buf = txBuffer(p, s);
            mem.fill(buf, NetHeader.SIZE, (byte) 0);
            mem.write(buf + NetHeader.SIZE, frame, 0, len);
            mem.writeU32(desc(2 * p + 1, s) + 8, NetHeader.SIZE + len);
            mem.writeU16(avail(2 * p + 1) + 4 + 2L * s, s);
            a++;
            next++;
            n++;
        }
        if (n > 0) {
            pset(p, P_NEXT_SEQ, next);
            mem.storeU16Release(avail(2 * p + 1) + 2, (int) a);
            pset(p, P_TX_AVAIL, a);
            kick(2 * p + 1, 2 * p + 1);
        }
        return n;
    }

    private void fillData(int p, long seq, int len) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(frame, 0, len);
        b.put(0, NetTraffic.PEER_MAC);
        b.put(6, NetTraffic.longToMac(get(R_MAC)));
        b.putShort(12, (short) NetTraffic.ETHERTYPE);
        b.putInt(14, NetTraffic.MAGIC);
        b.put(18, (byte) NetTraffic.DATA);
        b.put(19, (byte) p);
        b.putLong(20, seq);
        b.putLong(28, 0);
    }

    private int reapTx(int p) {
        int q = 2 * p + 1;
        long lastUsed = pget(p, P_TX_LAST_USED);
        int pending = (mem.loadU16Acquire(used(q) + 2) - (int) lastUsed) & 0xffff;
        if (pending > pget(p, P_TX_AVAIL) - lastUsed) {
            error(ERR_USED_AHEAD);
            return 0;
        }
        for (int k = 0; k < pending; k++) {
            int id = mem.readU32(used(q) + 4 + 8L * ((lastUsed + k) % QUEUE_SIZE));
            if (id != (int) ((lastUsed + k) % QUEUE_SIZE)) {
                error(ERR_BAD_ID);
                return k;
            }
        }
        pset(p, P_TX_LAST_USED, lastUsed + pending);
        padd(p, P_TX_COMPLETED, pending);
        return pending;
    }

    // ---- RX ----

    private int reapRx(int p) {
        int q = 2 * p;
        long lastUsed = pget(p, P_RX_LAST_USED);
        int pending = (mem.loadU16Acquire(used(q) + 2) - (int) lastUsed) & 0xffff;
        if (pending > QUEUE_SIZE) {
            error(ERR_USED_AHEAD);
            return 0;
        }
        if (pending == 0) {
            return 0;
        }
        long a = pget(p, P_RX_AVAIL);
        for (int k = 0; k < pending; k++) {
            long e = used(q) + 4 + 8L * ((lastUsed + k) % QUEUE_SIZE);
            int id = mem.readU32(e);
            int len = mem.readU32(e + 4);
            if (id < 0 || id >= QUEUE_SIZE) {
                error(ERR_BAD_ID);
                return k;
            }
            if (len < NetHeader.SIZE || len > BUFFER) {
                error(ERR_RX_LENGTH);
                return k;
            }
            received(p, rxBuffer(p, id), len - NetHeader.SIZE);
            mem.writeU16(avail(q) + 4 + 2L * (a % QUEUE_SIZE), id); // the buffer goes back
            a++;
        }
        pset(p, P_RX_LAST_USED, lastUsed + pending);
        mem.storeU16Release(avail(q) + 2, (int) a);
        pset(p, P_RX_AVAIL, a);
        kick(q, q);
        return pending;
    }

    /** One received frame on pair {@code p}: checked against the flow it names. */
    private void received(int p, long buf, int length) {
        long f = buf + NetHeader.SIZE;
        int kind = length >= NetTraffic.MIN_FRAME ? mem.readU8(f + 18) : -1;
        int flow = length >= NetTraffic.MIN_FRAME ? mem.readU8(f + 19) : -1;
        if (length < NetTraffic.MIN_FRAME || (mem.readU8(f + 12) << 8 | mem.readU8(f + 13)) != NetTraffic.ETHERTYPE
                || Integer.reverseBytes(mem.readU32(f + 14)) != NetTraffic.MAGIC
                || (kind != NetTraffic.REPLY && kind != NetTraffic.DATA) || flow >= get(R_PAIRS)) {
            padd(p, P_OTHER, 1);
            return;
        }
        if (flow != p) {
            padd(flow, P_MISDELIVERED, 1);
        }
        long seq = Long.reverseBytes(mem.readU64(f + 20));
        long echo = kind == NetTraffic.REPLY ? Long.reverseBytes(mem.readU64(f + 28)) : seq; // macswap: our own DATA
        padd(flow, P_RX_FRAMES, 1);
        long last = pget(flow, P_LAST_SEQ);
        if (seq <= last) {
            padd(flow, P_DUPS, 1);
        } else {
            padd(flow, P_LOST, seq - last - 1);
            pset(flow, P_LAST_SEQ, seq);
        }
        if (echo >= pget(flow, P_NEXT_SEQ)) {
            error(ERR_ECHO_AHEAD);
        } else if (echo > pget(flow, P_ECHO_LAST)) {
            pset(flow, P_ECHO_LAST, echo);
        }
    }

    private void error(long code) {
        if (get(R_FIRST_ERROR) == 0) {
            set(R_FIRST_ERROR, code);
        }
        set(R_ERRORS, get(R_ERRORS) + 1);
    }
}
