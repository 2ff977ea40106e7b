package dev.ferry.virtio.net;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.VirtioDeviceModel;
import dev.ferry.virtio.queue.ChainWriter;
import dev.ferry.virtio.queue.DescriptorChain;
import dev.ferry.virtio.queue.SplitVirtqueue;
import dev.ferry.virtio.queue.VirtqueueError;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * virtio-net (device ID 1) on a {@link NetBackend}: one RX/TX queue pair and the control queue
 * (queues rx0 0, tx0 1, ctrl 2), the 12-byte header, MRG_RXBUF, STATUS with the link state, the
 * RX mode and MAC filter, and the announce after a migration.
 *
 * <h2>Where frames move</h2>
 * On the device event loop only. A TX kick sends every available chain (header and frame copied
 * from guest RAM into a native buffer, then one send to the back-end) and returns them used. The
 * back-end's fd is watched for readability while the RX queue has buffers: each frame is read
 * into a native buffer, filtered, and written into as many RX chains as it needs (one without
 * MRG_RXBUF), with {@code num_buffers} in the header. When the RX queue runs dry the frame waits
 * in the device and the fd is unwatched until the driver kicks the RX queue; nothing ever waits
 * on a vCPU thread. Every byte written to guest RAM goes through {@link DeviceMemory}, so it is
 * dirty-logged.
 *
 * <h2>Hostile drivers</h2>
 * A TX chain without the whole header or with a frame above {@link NetBackend#MAX_FRAME}, an RX
 * chain with no room for the header, a frame that does not fit one RX chain without MRG_RXBUF,
 * an RX chain with no device-writable buffer, a control request without its class/command or
 * ack byte: NEEDS_RESET ({@link VirtioContext#deviceError}), as QEMU's {@code virtio_error}. A
 * well-formed control request the device does not serve (an unknown class, a wrong data length,
 * a feature not negotiated) is answered ERR. TX frames the back-end cannot carry (shorter than an
 * Ethernet header, a GSO type no feature allows, NEEDS_CSUM towards a socket) are dropped and
 * counted.
 *
 * <h2>Stopping and migration</h2>
 * Nothing is in flight across a loop turn: at {@link #quiesce} every chain popped was pushed, so
 * the rings alone hold the guest's frames and the transport's queue indices carry them. A frame
 * already read from the back-end but waiting for RX buffers is not in the guest's rings; it is
 * dropped at stop and counted ({@code rx-dropped-at-stop}), as frames in the socket are lost with
 * the source. The device part of the stream is {@link NetState}.
 * A destination whose state came from a migration announces itself when the VM first runs
 * ({@link AnnounceTimer}): RARP rounds from the device, and with GUEST_ANNOUNCE the guest's own.
 */
public final class VirtioNet implements VirtioDeviceModel {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioNet.class);
    public static final int F_CSUM = 0;
    public static final int F_GUEST_CSUM = 1;
    public static final int F_MAC = 5;
    public static final int F_MRG_RXBUF = 15;
    public static final int F_STATUS = 16;
    public static final int F_CTRL_VQ = 17;
    public static final int F_CTRL_RX = 18;
    public static final int F_GUEST_ANNOUNCE = 21;
    public static final int F_CTRL_MAC_ADDR = 23;

    public static final int RX = 0;
    public static final int TX = 1;
    public static final int CTRL = 2;
    /** Frames taken from the back-end per readiness callback, so TX and kicks get their turn. */
    private static final int RX_BURST = 64;
    private static final int BUFFER = NetHeader.SIZE + NetBackend.MAX_FRAME;

    private final String id;
    private final NetOptions options;
    private final NetBackend backend;
    private final long txBuf;
    private final long rxBuf;
    private final List<DescriptorChain> rxChains = new ArrayList<>();
    private final RxFilter filter = new RxFilter();

    // Read by config() on vCPU threads; written on the loop thread.
    private volatile byte[] mac;
    private volatile int status = NetConfig.S_LINK_UP;

    // Loop-thread state.
    private VirtioContext ctx;
    private boolean serving;
    private DeviceEventLoop.Registration rxWatch;
    /** Length (header included) of the frame in {@link #rxBuf} waiting for RX buffers, or 0. */
    private int rxPending;
    private volatile boolean backendFailed;
    private DeviceEventLoop.Timer selfTimer;
    private DeviceEventLoop.Timer guestTimer;
    private AnnounceTimer selfAnnounce;
    private AnnounceTimer guestAnnounce;
    /** The state came from a migration: announce when the VM first runs. */
    private boolean announcePending;
    /** What {@link #load} read, kept aside until {@link #commitLoad}. */
    private NetState loaded;
    private volatile boolean closed;

    private final NetStats stats = new NetStats();
    private final NetControlQueue control;
    private volatile boolean carriedIn;
    /** When each RARP round of the last schedule went out (System.nanoTime), 0 for rounds not sent. */
    private final long[] rarpTimes = new long[AnnounceTimer.ROUNDS];


    /** The device owns {@code backend} from here on and closes it in {@link #close}. */
    public VirtioNet(String id, NetOptions options, NetBackend backend) {
        this.id = id;
        this.options = options;
        this.backend = backend;
        this.mac = options.mac();
        this.txBuf = NativeMemory.allocate(BUFFER);
        this.rxBuf = NativeMemory.allocate(BUFFER);
        this.control = new NetControlQueue(filter, new NetControlQueue.Device() {
            @Override
            public void setMac(byte[] m) {
                mac = m;
            }

            @Override
            public boolean ackAnnounce() {
                return announceAck();
            }
        }, stats);
    }

    /** VIRTIO_NET_CTRL_ANNOUNCE_ACK: clears S_ANNOUNCE (before the ack completes, as the spec asks) and lets the next round come. */
    private boolean announceAck() {
        if ((status & NetConfig.S_ANNOUNCE) == 0) {
            return false;
        }
        status &= ~NetConfig.S_ANNOUNCE;
        stats.announceAcks.incrementAndGet();
        guestAnnounce.acked();
        return true;
    }

    public NetBackend backend() {
        return backend;
    }

    @Override
    public String name() {
        return "virtio-net";
    }

    @Override
    public int deviceId() {
        return Virtio.ID_NET;
    }

    @Override
    public int stateVersion() {
        return 11;
    }

    @Override
    public long features() {
        long f = Virtio.bit(F_MAC) | Virtio.bit(F_MRG_RXBUF) | Virtio.bit(F_STATUS) | Virtio.bit(F_CTRL_VQ)
                | Virtio.bit(F_CTRL_RX) | Virtio.bit(F_CTRL_MAC_ADDR);
        if (backend.vnetHeader()) {
            f |= Virtio.bit(F_CSUM) | Virtio.bit(F_GUEST_CSUM);
        }
        if (options.guestAnnounce()) {
            f |= Virtio.bit(F_GUEST_ANNOUNCE);
        }
        return f;
    }

    @Override
    public int queueCount() {
        return 3;
    }

    @Override
    public int queueMaxSize() {
        return options.queueSize();
    }

    @Override
    public byte[] config() {
        return NetConfig.encode(mac, status);
    }

    @Override
    public void writeConfig(int offset, int size, long value) {
        // Read-only for a VERSION_1 driver: the MAC changes through VIRTIO_NET_CTRL_MAC_ADDR_SET.
    }

    @Override
    public void restoreConfig(byte[] config) throws MigrationException {
        if (config.length < NetConfig.SIZE) {
            throw new MigrationException(id + ": virtio-net config of " + config.length + " bytes, expected "
                    + NetConfig.SIZE);
        }
    }

    /** The MAC the device answers to now (the config's, or the one the driver set). */
    public byte[] mac() {
        return mac.clone();
    }

    public int status() {
        return status;
    }

    // ---- lifecycle (loop thread) ----

    @Override
    public void start(VirtioContext context) {
        this.ctx = context;
        this.serving = true;
        if (selfTimer == null) {
            selfTimer = context.loop().timer(() -> selfAnnounce.expired());
            guestTimer = context.loop().timer(() -> guestAnnounce.expired());
            selfAnnounce = new AnnounceTimer(false, scheduler(selfTimer), this::sendRarp);
            guestAnnounce = new AnnounceTimer(true, scheduler(guestTimer), this::announceToGuest);
        }
        if (announcePending) {
            announcePending = false;
            selfAnnounce.begin();
            long f = context.features();
            if (Virtio.has(f, F_GUEST_ANNOUNCE) && Virtio.has(f, F_CTRL_VQ)) {
                guestAnnounce.begin();
            }
        }
        watchRx(true);
    }

    private static AnnounceTimer.Scheduler scheduler(DeviceEventLoop.Timer t) {
        return new AnnounceTimer.Scheduler() {
            @Override
            public void arm(long delayNanos) {
                t.arm(delayNanos);
            }

            @Override
            public void cancel() {
                t.cancel();
            }
        };
    }

    @Override
    public void queueNotified(int queue) {
        if (!serving || ctx == null) {
            return;
        }
        switch (queue) {
            case RX -> {
                if (rxPending > 0) {
                    deliverPending();
                }
                watchRx(rxPending == 0);
            }
            case TX -> transmit();
            case CTRL -> control.serve(ctx, CTRL);
            default -> { }
        }
    }

    @Override
    public void quiesce() {
        serving = false;
        watchRx(false);
        stopAnnounce();
        if (rxPending > 0) {
            rxPending = 0;
            stats.rxDroppedAtStop.incrementAndGet();
        }
    }

    @Override
    public void reset() {
        quiesce();
        ctx = null;
        filter.reset();
        mac = options.mac();
        status = status & NetConfig.S_LINK_UP; // the link stays as the host set it; ANNOUNCE clears
        announcePending = false;
    }

    private void stopAnnounce() {
        if (selfAnnounce != null) {
            selfAnnounce.stop();
            guestAnnounce.stop();
        }
    }

    /** Watches the back-end for frames when {@code on}, the link is up and the device serves. */
    private void watchRx(boolean on) {
        boolean want = on && serving && !backendFailed && (status & NetConfig.S_LINK_UP) != 0;
        if (want && rxWatch == null) {
            rxWatch = ctx.loop().addFd(backend.fd(), Linux.EPOLLIN, ev -> receive());
        } else if (!want && rxWatch != null) {
            rxWatch.close();
            rxWatch = null;
        }
    }

    /**
     * Sets or clears the link (QMP {@code set_link}): STATUS's LINK_UP and a config interrupt;
     * with the link down TX frames are dropped and nothing is received. Any thread.
     */
    public void setLink(boolean up, DeviceEventLoop loop) {
        loop.call(() -> {
            int s = up ? status | NetConfig.S_LINK_UP : status & ~NetConfig.S_LINK_UP;
            if (s != status) {
                status = s;
                if (ctx != null) {
                    ctx.configChanged();
                }
                if (serving) {
                    watchRx(up && rxPending == 0);
                }
            }
            return null;
        });
    }

    // ---- TX ----

    private void transmit() {
        SplitVirtqueue vq = ctx.queue(TX);
        if (vq == null) {
            return;
        }
        while (true) {
            int n = 0;
            DescriptorChain c;
            while ((c = vq.pop()) != null) {
                if (!sendOne(c)) {
                    return; // NEEDS_RESET: the transport stops serving the queue; the ring is as the driver left it
                }
                if (n++ == 0) {
                    vq.setNotificationEnabled(false); // no kicks while this burst runs
                }
                vq.push(c, 0);
            }
            if (n == 0) {
                return;
            }
            vq.publish();
            ctx.notifyQueue(TX);
            if (!vq.setNotificationEnabled(true)) {
                return;
            }
        }
    }

    /** Sends one TX chain's frame; false when the chain broke the protocol (device error raised). */
    private boolean sendOne(DescriptorChain c) {
        long readable = c.readableBytes();
        if (readable < NetHeader.SIZE) {
            ctx.deviceError("virtio-net header incorrect: TX chain head " + c.head() + " has " + readable
                    + " device-readable bytes, the header alone is " + NetHeader.SIZE);
            return false;
        }
        if (readable > BUFFER) {
            ctx.deviceError("virtio-net TX chain head " + c.head() + " holds a frame of " + (readable - NetHeader.SIZE)
                    + " bytes, more than " + NetBackend.MAX_FRAME);
            return false;
        }
        int len = (int) readable;
        DeviceMemory m = ctx.memory();
        c.reader().transferTo(len, (gpa, piece, done) -> {
            m.copyToNative(gpa, txBuf + done, piece);
            return piece;
        });
        int gso = NetHeader.gsoType(txBuf) & ~NetHeader.GSO_ECN;
        boolean csum = (NetHeader.flags(txBuf) & NetHeader.F_NEEDS_CSUM) != 0;
        if (len - NetHeader.SIZE < 14 || gso != NetHeader.GSO_NONE || (csum && !backend.vnetHeader())
                || (status & NetConfig.S_LINK_UP) == 0) {
            stats.txDropped.incrementAndGet();
            return true;
        }
        if (!backend.vnetHeader()) {
            NetHeader.clear(txBuf);
        }
        try {
            if (backend.send(txBuf, len)) {
                stats.txFrames.incrementAndGet();
                stats.txBytes.addAndGet(len - NetHeader.SIZE);
            } else {
                stats.txDropped.incrementAndGet();
            }
        } catch (NativeCallException e) {
            backendError(e);
            stats.txDropped.incrementAndGet();
        }
        return true;
    }

    private void backendError(RuntimeException e) {
        if (stats.backendErrors.getAndIncrement() == 0) {
            LOG.warn("{}: {}: {}", id, backend.describe(), e.getMessage());
        }
    }

    // ---- RX ----

    /** The back-end's fd is readable: deliver up to a burst of frames. Loop thread. */
    private void receive() {
        if (!serving || ctx == null) {
            return;
        }
        SplitVirtqueue vq = ctx.queue(RX);
        if (vq == null) {
            watchRx(false);
            return;
        }
        int delivered = 0;
        for (int i = 0; i < RX_BURST && rxPending == 0; i++) {
            int n;
            try {
                n = backend.receive(rxBuf, BUFFER);
            } catch (NetBackendException e) {
                LOG.warn("{}: {}; the device receives nothing more", id, e.getMessage());
                backendFailed = true;
                watchRx(false);
                break;
            } catch (NativeCallException e) {
                backendError(e); // e.g. ECONNREFUSED on a UDP socket whose peer is not up yet
                continue;
            }
            if (n < 0) {
                break;
            }
            if (n < NetHeader.SIZE + 14 || !filter.accepts(mac, rxBuf + NetHeader.SIZE)) {
                stats.rxFiltered.incrementAndGet();
                continue;
            }
            if (backend.vnetHeader() && !acceptHostHeader()) {
                stats.rxFiltered.incrementAndGet(); // a GSO frame no feature lets the guest take
                continue;
            }
            rxPending = n;
            Boolean ok = deliver(vq);
            if (ok == null) {
                return; // NEEDS_RESET
            }
            if (ok) {
                delivered++;
            }
        }
        if (delivered > 0 && ctx != null) {
            vq.publish();
            ctx.notifyQueue(RX);
        }
        if (rxPending > 0) {
            stats.rxNoBuffers.incrementAndGet();
            watchRx(false); // until the driver adds buffers (its kick ends up in deliverPending)
            if (ctx != null && ctx.queue(RX) != null && vq.setNotificationEnabled(true)) {
                deliverPending();
            }
        }
    }

    /**
     * A TAP's header on a received frame, made what the driver negotiated: without GUEST_CSUM the
     * flags must be zero (spec 5.1.6.4.1; the kernel sets DATA_VALID), and a GSO frame cannot be
     * taken at all since no GUEST_TSO/UFO is offered. False: drop the frame.
     */
    private boolean acceptHostHeader() {
        if (NetHeader.gsoType(rxBuf) != NetHeader.GSO_NONE) {
            return false;
        }
        if (!Virtio.has(ctx.features(), F_GUEST_CSUM)) {
            NativeMemory.putByte(rxBuf + NetHeader.FLAGS, (byte) 0);
        }
        return true;
    }

    private void deliverPending() {
        SplitVirtqueue vq = ctx.queue(RX);
        if (vq == null) {
            return;
        }
        Boolean ok = deliver(vq);
        if (ok != null && ok) {
            vq.publish();
            ctx.notifyQueue(RX);
            watchRx(true);
        }
    }

    /**
     * Writes the frame in {@link #rxBuf} ({@link #rxPending} bytes with the header) into RX chains
     * and pushes them (not published). True when delivered, false when the queue lacks buffers
     * (nothing popped stays popped), null when the driver broke the protocol.
     */
    private Boolean deliver(SplitVirtqueue vq) {
        int len = rxPending;
        boolean mergeable = Virtio.has(ctx.features(), F_MRG_RXBUF);
        rxChains.clear();
        long room = 0;
        try {
            while (room < len) {
                DescriptorChain c = vq.pop();
                if (c == null) {
                    vq.rewind(rxChains.size());
                    rxChains.clear();
                    return false;
                }
                rxChains.add(c);
                long w = c.writableBytes();
                if (w == 0) {
                    return broken(vq, "virtio-net receive queue contains no in buffers (head " + c.head() + ")");
                }
                if (rxChains.size() == 1 && w < NetHeader.SIZE) {
                    return broken(vq, "virtio-net RX chain head " + c.head() + " has " + w
                            + " device-writable bytes, the header alone is " + NetHeader.SIZE);
                }
                if (!mergeable && w < len) {
                    return broken(vq, "virtio-net truncated non-mergeable packet: " + (len - NetHeader.SIZE)
                            + "-byte frame, RX chain head " + c.head() + " holds " + (w - NetHeader.SIZE));
                }
                room += w;
            }
        } catch (VirtqueueError e) {
            rxChains.clear();
            ctx.deviceError("queue " + RX + ": " + e.getMessage());
            return null;
        }
        NetHeader.setNumBuffers(rxBuf, rxChains.size());
        DeviceMemory m = ctx.memory();
        long off = 0;
        for (DescriptorChain c : rxChains) {
            ChainWriter w = c.writer();
            long base = off;
            long moved = w.transferFrom(len - off, (gpa, piece, done) -> {
                m.copyFromNative(rxBuf + base + done, gpa, piece);
                return piece;
            });
            off += moved;
            vq.push(c, moved);
        }
        rxChains.clear();
        rxPending = 0;
        stats.rxFrames.incrementAndGet();
        stats.rxBytes.addAndGet(len - NetHeader.SIZE);
        return true;
    }

    private Boolean broken(SplitVirtqueue vq, String reason) {
        vq.rewind(rxChains.size());
        rxChains.clear();
        rxPending = 0;
        ctx.deviceError(reason);
        return null;
    }

    // ---- announce ----

    private void sendRarp(int round) {
        if (!serving || (status & NetConfig.S_LINK_UP) == 0) {
            return;
        }
        byte[] f = Rarp.frame(mac);
        NetHeader.clear(txBuf);
        NativeMemory.copyFromArray(f, 0, txBuf + NetHeader.SIZE, f.length);
        try {
            if (backend.send(txBuf, NetHeader.SIZE + f.length)) {
                stats.rarpsSent.incrementAndGet();
                if (round == 0) {
                    Arrays.fill(rarpTimes, 0);
                }
                rarpTimes[round] = System.nanoTime();
            }
        } catch (NativeCallException e) {
            backendError(e);
        }
        LOG.debug("{}: announce round {}: RARP for {}", id, round, NetOptions.format(mac));
    }

    private void announceToGuest(int round) {
        if (!serving || ctx == null) {
            return;
        }
        status |= NetConfig.S_ANNOUNCE;
        stats.guestAnnounces.incrementAndGet();
        ctx.configChanged();
    }

    /** The self-announce schedule's state (tests, reports). */
    public AnnounceTimer.State selfAnnounceState() {
        return selfAnnounce == null ? AnnounceTimer.State.IDLE : selfAnnounce.state();
    }

    // ---- migration ----

    @Override
    public void save(SaveStream out) throws IOException {
        NetState.of(mac, status, filter).save(out, backend.vnetHeader());
    }

    @Override
    public void load(LoadStream in, int version) throws IOException, MigrationException {
        loaded = NetState.load(in, id, backend); // taken by commitLoad once the whole state checked out
    }

    @Override
    public void commitLoad() {
        NetState l = loaded;
        loaded = null;
        if (l == null) {
            return;
        }
        mac = l.mac().clone();
        status = l.status();
        l.applyTo(filter);
        announcePending = true;
        carriedIn = true;
    }

    @Override
    public void describe(Map<String, Object> into) {
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("backend", backend.describe());
        d.put("mac", NetOptions.format(mac));
        d.put("link", (status & NetConfig.S_LINK_UP) != 0 ? "up" : "down");
        d.put("status", status);
        d.put("promisc", filter.promisc);
        stats.describe(d);
        d.put("backend-failed", backendFailed);
        d.put("migrated-in", carriedIn);
        List<Long> offsets = new ArrayList<>();
        for (long t : rarpTimes.clone()) {
            if (t != 0) {
                offsets.add((t - rarpTimes[0]) / 1000);
            }
        }
        d.put("last-announce-us", offsets);
        into.put("virtio-net", d);
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        DeviceEventLoop loop = ctx != null ? ctx.loop() : null;
        try {
            if (loop != null) {
                loop.call(() -> {
                    watchRx(false);
                    stopAnnounce();
                    return null;
                });
            }
        } catch (RuntimeException e) {
            LOG.debug("{}: closing on a closed loop: {}", id, e.toString());
        }
        if (selfTimer != null) {
            selfTimer.close();
            guestTimer.close();
        }
        backend.close();
        NativeMemory.free(txBuf);
        NativeMemory.free(rxBuf);
    }
}
