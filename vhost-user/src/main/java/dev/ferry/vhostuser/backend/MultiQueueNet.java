package dev.ferry.vhostuser.backend;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.guest.NetTraffic;
import dev.ferry.virtio.net.NetBackend;
import dev.ferry.virtio.net.NetBackendException;
import dev.ferry.virtio.net.NetDeviceModel;
import dev.ferry.virtio.net.NetHeader;
import dev.ferry.virtio.net.RxPlacement;
import dev.ferry.virtio.queue.DescriptorChain;
import dev.ferry.virtio.queue.SplitVirtqueue;
import dev.ferry.virtio.queue.VirtqueueError;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The data plane of a multiqueue virtio-net for Ferry's vhost-user back-end: {@code pairs} rx/tx
 * queue pairs (rx{@code i} at 2i, tx{@code i} at 2i+1) on one {@link NetBackend}; no control
 * queue (the front-end serves it, as QEMU does, and enables pairs with SET_VRING_ENABLE).
 *
 * <h2>Receive steering</h2>
 * Automatic receive steering (virtio 1.2, 5.1.6.5.5.1): a received frame goes to the rx queue of
 * the pair its flow was last transmitted on; a flow not seen yet, or one whose pair is disabled
 * now (SET_VRING_ENABLE 0), goes to the first enabled pair. A stopped ring (GET_VRING_BASE, the
 * device stopping ring by ring) is not a disabled one: a frame whose pair's rx ring is stopped is
 * dropped, never steered to another pair that is still running. A flow is keyed by the guest's
 * MAC (the frame's source on TX, its destination on RX) and, for Ferry's traffic frames
 * (ethertype 0x88b5, {@link NetTraffic}), their flow byte (offset 19); other frames of a MAC make
 * one flow of their own (not traffic flow 0). The table is fixed ({@link #FLOWS} entries, no allocation per frame); a full table reuses a slot.
 *
 * <h2>Frames</h2>
 * On the back-end's event loop only. TX: each available chain's header and frame are copied into
 * a native buffer and sent. RX: a frame is read into a native buffer and written into its pair's
 * rx queue: into one chain, or with MRG_RXBUF negotiated into as many chains as it needs, their
 * count in the header's {@code num_buffers} (the built-in device's rule); when that queue has too
 * few buffers the frame waits (the chains it popped go back) and the back-end's fd is unwatched
 * until that queue is kicked. Each rx
 * queue a burst wrote to is published once, with one interrupt, at the burst's end. A TX
 * chain without the header or above {@link NetBackend#MAX_FRAME}: NEEDS_RESET. A received frame
 * bigger than the next rx chain without MRG_RXBUF (Linux then posts 1518-byte buffers; a guest
 * with a larger MTU gets larger frames), or bigger than a whole ring of chains with it, is the
 * network's doing, not the driver's: it is dropped and counted ({@link #rxTooBig}), the chains
 * kept for the next frame, as QEMU's virtio-net drops it. A first chain shorter than the header,
 * or one with no device-writable bytes, is a device error.
 * Every write to guest memory goes through {@link DeviceMemory} (logged).
 */
public final class MultiQueueNet extends NetDeviceModel {
    private static final Logger LOG = LoggerFactory.getLogger(MultiQueueNet.class);
    public static final int F_MQ = 22;
    static final int FLOWS = 256;
    /** The most pairs (the unpublished-rx mask is an int). */
    public static final int MAX_PAIRS = 16;
    private static final int RX_BURST = 64;
    private final boolean guestAnnounce;
    private final int pairs;
    private final int queueSize;
    private final long[] flowKeys = new long[FLOWS];
    private final byte[] flowPairs = new byte[FLOWS];
    private final AtomicLong[] txFrames;
    private final AtomicLong[] rxFrames;
    private final AtomicLong rxDropped = new AtomicLong();
    private final AtomicLong rxTooBig = new AtomicLong();
    private final AtomicLong rxMultiBuffer = new AtomicLong();
    private final RxPlacement placement = new RxPlacement();
    private final AtomicLong txDropped = new AtomicLong();

    // Loop-thread state.
    private boolean serving;
    private DeviceEventLoop.Registration rxWatch;
    private int rxPending;
    private int rxPendingPair;
    /** Pairs whose rx queue has pushes not yet published (one publish and interrupt per burst). */
    private int unpublished;
    private boolean backendFailed;

    /** Owns {@code backend} from here on. */
    public MultiQueueNet(String id, int pairs, int queueSize, NetBackend backend) {
        this(id, pairs, queueSize, backend, false);
    }

    /**
     * @param guestAnnounce offer GUEST_ANNOUNCE (as DPDK's vhost library does): the front-end may
     *                      then have the guest announce itself after a migration instead of asking
     *                      for SEND_RARP
     */
    public MultiQueueNet(String id, int pairs, int queueSize, NetBackend backend, boolean guestAnnounce) {
        super(id, checkPairs(id, pairs, backend));
        this.guestAnnounce = guestAnnounce;
        this.pairs = pairs;
        this.queueSize = queueSize;
        this.txFrames = new AtomicLong[pairs];
        this.rxFrames = new AtomicLong[pairs];
        for (int i = 0; i < pairs; i++) {
            txFrames[i] = new AtomicLong();
            rxFrames[i] = new AtomicLong();
        }
        Arrays.fill(flowKeys, -1);
    }

    /** {@code backend}, when {@code pairs} is within 1..{@link #MAX_PAIRS}; else it is closed and this throws. */
    private static NetBackend checkPairs(String id, int pairs, NetBackend backend) {
        if (pairs < 1 || pairs > MAX_PAIRS) {
            backend.close();
            throw new IllegalArgumentException(id + ": " + pairs + " queue pairs; 1.." + MAX_PAIRS);
        }
        return backend;
    }

    public int pairs() {
        return pairs;
    }

    @Override
    public int stateVersion() {
        return 1;
    }

    @Override
    public long features() {
        long f = 1L << dev.ferry.virtio.net.VirtioNet.F_MRG_RXBUF
                | (guestAnnounce ? 1L << dev.ferry.virtio.net.VirtioNet.F_GUEST_ANNOUNCE : 0);
        return pairs > 1 ? f | 1L << F_MQ : f;
    }

    @Override
    public int queueCount() {
        return 2 * pairs;
    }

    @Override
    public int queueMaxSize() {
        return queueSize;
    }

    @Override
    public byte[] config() {
        return new byte[0];
    }

    @Override
    public void restoreConfig(byte[] config) {
    }

    @Override
    public void writeConfig(int offset, int size, long value) {
    }

    @Override
    public void start(VirtioContext context) {
        ctx = context;
        serving = true;
        watchRx(rxPending == 0);
    }

    @Override
    public void queueNotified(int queue) {
        if (!serving || ctx == null || queue < 0 || queue >= 2 * pairs) {
            return;
        }
        if (queue % 2 == 1) {
            transmit(queue / 2);
        } else if (rxPending > 0) {
            deliverPending();
        }
    }

    @Override
    public void quiesce() {
        if (ctx != null) {
            publishRx(); // nothing stays pushed and unpublished across a stop
        }
        serving = false;
        watchRx(false);
        if (rxPending > 0) {
            rxPending = 0;
            rxDropped.incrementAndGet();
        }
    }

    @Override
    public void reset() {
        quiesce();
        ctx = null;
        Arrays.fill(flowKeys, -1);
    }

    private void watchRx(boolean on) {
        boolean want = on && serving && !backendFailed;
        if (want && rxWatch == null) {
            rxWatch = ctx.loop().addFd(backend.fd(), Linux.EPOLLIN, ev -> receive());
        } else if (!want && rxWatch != null) {
            rxWatch.close();
            rxWatch = null;
        }
    }

    // ---- steering ----

    /** Marks the key of a MAC's frames that are not Ferry's traffic (bit 62: above MAC and flow byte, never −1). */
    private static final long OTHER_FLOW = 1L << 62;

    /**
     * The flow of the frame at {@code frame} ({@code length} bytes), keyed by the MAC at
     * {@code macAt}: {@code mac << 8 | flow byte} for Ferry's traffic, {@link #OTHER_FLOW}
     * {@code | mac << 8} for every other frame of that MAC — a flow of its own, so that the
     * kernel's own frames (IPv6 neighbour discovery, sent on whichever CPU's pair) do not move
     * traffic flow 0.
     */
    private static long flowKey(long frame, int length, int macAt) {
        long mac = 0;
        for (int i = 0; i < 6; i++) {
            mac = mac << 8 | (NativeMemory.getByte(frame + macAt + i) & 0xff);
        }
        int type = (NativeMemory.getByte(frame + 12) & 0xff) << 8 | (NativeMemory.getByte(frame + 13) & 0xff);
        if (type != NetTraffic.ETHERTYPE || length < NetTraffic.MIN_FRAME) {
            return OTHER_FLOW | mac << 8;
        }
        return mac << 8 | (NativeMemory.getByte(frame + 19) & 0xff);
    }

    private int slot(long key) {
        long h = key * 0x9E3779B97F4A7C15L;
        return (int) (h >>> 56) & (FLOWS - 1);
    }

    private void learn(long key, int pair) {
        int s = slot(key);
        for (int i = 0; i < 8; i++) {
            int k = (s + i) & (FLOWS - 1);
            if (flowKeys[k] == key || flowKeys[k] == -1) {
                flowKeys[k] = key;
                flowPairs[k] = (byte) pair;
                return;
            }
        }
        flowKeys[s] = key; // a full neighbourhood: the newest flow takes the slot
        flowPairs[s] = (byte) pair;
    }

    /** The pair a received frame goes to: its flow's, else the first enabled one; -1 when none is. */
    private int steer(long key) {
        int s = slot(key);
        for (int i = 0; i < 8; i++) {
            int k = (s + i) & (FLOWS - 1);
            if (flowKeys[k] == key) {
                int p = flowPairs[k];
                if (ctx.queue(2 * p) != null) {
                    return p;
                }
                if (ctx.queueEnabled(2 * p)) {
                    return -1; // stopped, not disabled: the device is stopping; no other pair's ring
                }
                break;
            }
            if (flowKeys[k] == -1) {
                break;
            }
        }
        return firstEnabledPair();
    }

    /**
     * The first pair whose rx ring is enabled, or -1 — also when that ring is stopped: while the
     * front-end stops the rings one by one (GET_VRING_BASE) a frame must not land on a later
     * pair's ring that is still running (the guest would see its flow on the wrong queue).
     */
    private int firstEnabledPair() {
        for (int p = 0; p < pairs; p++) {
            if (ctx.queueEnabled(2 * p)) {
                return ctx.queue(2 * p) != null ? p : -1;
            }
        }
        return -1;
    }

    // ---- TX ----

    private void transmit(int pair) {
        SplitVirtqueue vq = ctx.queue(2 * pair + 1);
        if (vq == null) {
            return;
        }
        int n = 0;
        try {
            DescriptorChain c;
            while ((c = vq.pop()) != null) {
                long readable = c.readableBytes();
                if (readable < NetHeader.SIZE || readable > BUFFER) {
                    ctx.deviceError("virtio-net TX chain head " + c.head() + " on queue " + (2 * pair + 1) + " has "
                            + readable + " device-readable bytes; " + NetHeader.SIZE + ".." + BUFFER + " accepted");
                    return;
                }
                int len = (int) readable;
                DeviceMemory m = ctx.memory();
                c.reader().transferTo(len, (gpa, piece, done) -> {
                    m.copyToNative(gpa, txBuf + done, piece);
                    return piece;
                });
                vq.push(c, 0);
                n++;
                send(pair, len);
            }
        } catch (VirtqueueError e) {
            ctx.deviceError("queue " + (2 * pair + 1) + ": " + e.getMessage());
            return;
        }
        if (n > 0) {
            vq.publish();
            ctx.notifyQueue(2 * pair + 1);
        }
    }

    private void send(int pair, int len) {
        if (len - NetHeader.SIZE < 14) {
            txDropped.incrementAndGet();
            return;
        }
        learn(flowKey(txBuf + NetHeader.SIZE, len - NetHeader.SIZE, 6), pair);
        if (!backend.vnetHeader()) {
            NetHeader.clear(txBuf);
        }
        try {
            if (backend.send(txBuf, len)) {
                txFrames[pair].incrementAndGet();
            } else {
                txDropped.incrementAndGet();
            }
        } catch (NativeCallException e) {
            txDropped.incrementAndGet();
            LOG.debug("{}: {}: {}", id, backend.describe(), e.getMessage());
        }
    }

    // ---- RX ----

    private void receive() {
        if (!serving || ctx == null) {
            return;
        }
        for (int i = 0; i < RX_BURST && rxPending == 0; i++) {
            int n;
            try {
                n = backend.receive(rxBuf, BUFFER);
            } catch (NetBackendException e) {
                LOG.warn("{}: {}; the device receives nothing more", id, e.getMessage());
                backendFailed = true;
                watchRx(false);
                return;
            } catch (NativeCallException e) {
                continue;
            }
            if (n < 0) {
                break;
            }
            if (n < NetHeader.SIZE + 14) {
                rxDropped.incrementAndGet();
                continue;
            }
            NetHeader.clear(rxBuf);
            int pair = steer(flowKey(rxBuf + NetHeader.SIZE, n - NetHeader.SIZE, 0));
            if (pair < 0) {
                rxDropped.incrementAndGet();
                continue;
            }
            rxPending = n;
            rxPendingPair = pair;
            if (deliver() == null) {
                return;
            }
        }
        if (rxPending > 0) {
            watchRx(false); // until the pair's rx queue is kicked
            deliverPending();
        } else {
            publishRx();
        }
    }

    private void deliverPending() {
        Boolean ok = deliver();
        publishRx();
        if (ok != null && rxPending == 0) {
            watchRx(true); // delivered, or dropped as too big: the next frame may come
        }
    }

    /** Publishes every rx queue this burst pushed to and raises its interrupt (if the driver wants it). */
    private void publishRx() {
        for (int p = 0; unpublished != 0 && p < pairs; p++) {
            if ((unpublished & 1 << p) != 0) {
                unpublished &= ~(1 << p);
                SplitVirtqueue vq = ctx.queue(2 * p);
                if (vq != null) {
                    vq.publish();
                    ctx.notifyQueue(2 * p);
                }
            }
        }
    }

    /**
     * The pending frame into one chain of its pair's rx queue: true delivered; false no buffer
     * (the frame waits) or dropped as too big for the chain ({@code rxPending} 0, the chain
     * rewound); null broken.
     */
    private Boolean deliver() {
        int q = 2 * rxPendingPair;
        SplitVirtqueue vq = ctx.queue(q);
        if (vq == null) {
            int p = firstEnabledPair();
            if (p < 0) {
                return false;
            }
            rxPendingPair = p;
            q = 2 * p;
            vq = ctx.queue(q);
        }
        int len = rxPending;
        boolean mergeable = dev.ferry.virtio.Virtio.has(ctx.features(), dev.ferry.virtio.net.VirtioNet.F_MRG_RXBUF);
        RxPlacement.Outcome o;
        try {
            o = placement.place(vq, ctx.memory(), rxBuf, len, mergeable);
            if (o == RxPlacement.Outcome.WAIT && vq.setNotificationEnabled(true)) {
                // Buffers came while the kick was off: take them now, no kick will come.
                o = placement.place(vq, ctx.memory(), rxBuf, len, mergeable);
            }
        } catch (VirtqueueError e) {
            rxPending = 0;
            ctx.deviceError("queue " + q + ": " + e.getMessage());
            return null;
        }
        if (o == RxPlacement.Outcome.WAIT) {
            return false; // the driver's next kick of this rx queue delivers it
        }
        rxPending = 0;
        if (o == RxPlacement.Outcome.TOO_BIG) {
            if (rxTooBig.getAndIncrement() == 0) {
                LOG.info("{}: dropped a received frame of {} bytes with its header on queue {}: {}; later ones are only"
                        + " counted (rx-too-big)", id, len, q, placement.tooBigReason());
            }
            return false;
        }
        if (placement.chainsUsed() > 1) {
            rxMultiBuffer.incrementAndGet();
        }
        unpublished |= 1 << rxPendingPair;
        rxFrames[rxPendingPair].incrementAndGet();
        return true;
    }

    // ---- state (DEVICE_STATE): the pair count, checked ----

    @Override
    public void save(SaveStream out) throws IOException {
        out.putU8(pairs);
    }

    @Override
    public void load(LoadStream in, int version) throws IOException, MigrationException {
        int n = in.getU8();
        if (n != pairs) {
            throw new MigrationException(id + ": the source's back-end served " + n + " queue pairs, this one " + pairs);
        }
    }

    @Override
    public void commitLoad() {
    }

    /** Frames sent from pair {@code pair}'s tx queue and delivered to its rx queue. */
    /** Received frames dropped: too short, no pair to take them, or left pending at a stop. */
    public long rxDropped() {
        return rxDropped.get();
    }

    /** Received frames dropped because the rx chain could not hold them (the chain kept). */
    public long rxTooBig() {
        return rxTooBig.get();
    }

    /** Received frames written into more than one RX chain (MRG_RXBUF, num_buffers above 1). */
    public long rxMultiBuffer() {
        return rxMultiBuffer.get();
    }

    public long txFrames(int pair) {
        return txFrames[pair].get();
    }

    public long rxFrames(int pair) {
        return rxFrames[pair].get();
    }

    @Override
    public void describe(Map<String, Object> into) {
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("backend", backend.describe());
        d.put("pairs", pairs);
        long[] tx = new long[pairs];
        long[] rx = new long[pairs];
        for (int i = 0; i < pairs; i++) {
            tx[i] = txFrames[i].get();
            rx[i] = rxFrames[i].get();
        }
        d.put("tx-frames", Arrays.toString(tx));
        d.put("rx-frames", Arrays.toString(rx));
        d.put("tx-dropped", txDropped.get());
        d.put("rx-dropped", rxDropped.get());
        d.put("rx-too-big", rxTooBig.get());
        d.put("rx-multi-buffer", rxMultiBuffer.get());
        into.put("virtio-net", d);
    }

    @Override
    protected void stopOnLoop() {
        watchRx(false);
    }
}
