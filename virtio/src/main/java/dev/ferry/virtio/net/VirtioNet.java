package dev.ferry.virtio.net;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.LinkedHashMap;
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
 * dirty-logged. The paths are this device's package-private collaborators: {@code NetTx},
 * {@code NetRx}, {@code NetControlQueue} and {@code NetAnnounce}; they share its state.
 *
 * <h2>Hostile drivers</h2>
 * A TX chain without the whole header or with a frame above {@link NetBackend#MAX_FRAME}, an RX
 * chain with no room for the header, an RX chain with no device-writable buffer, a control
 * request without its class/command or ack byte: NEEDS_RESET ({@link VirtioContext#deviceError}),
 * as QEMU's {@code virtio_error}. A well-formed control request the device does not serve (an
 * unknown class, a wrong data length, a feature not negotiated) is answered ERR. TX frames the
 * back-end cannot carry (shorter than an Ethernet header, a GSO type no feature allows,
 * NEEDS_CSUM towards a socket) are dropped and counted. A received frame bigger than the guest's
 * buffers (one RX chain without MRG_RXBUF, a full ring with it) is the network's doing, not the
 * driver's: dropped and counted ({@code rx-too-big}), the buffers kept, as QEMU drops it.
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
public final class VirtioNet extends NetDeviceModel {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioNet.class);
    public static final int F_CSUM = 0;
    public static final int F_GUEST_CSUM = 1;
    public static final int F_MAC = 5;
    public static final int F_MRG_RXBUF = 15;
    public static final int F_STATUS = 16;
    public static final int F_CTRL_VQ = 17;
    public static final int F_CTRL_RX = 18;
    public static final int F_GUEST_ANNOUNCE = 21;
    public static final int F_MQ = 22;
    public static final int F_CTRL_MAC_ADDR = 23;

    public static final int RX = 0;
    public static final int TX = 1;
    public static final int CTRL = 2;

    private final NetOptions options;
    final RxFilter filter = new RxFilter();

    // Read by config() on vCPU threads; written on the loop thread.
    volatile byte[] mac;
    volatile int status = NetConfig.S_LINK_UP;

    // Loop-thread state.
    boolean serving;
    /** What {@link #load} read, kept aside until {@link #commitLoad}. */
    private NetState loaded;

    final NetStats stats = new NetStats();
    private final NetControlQueue control;
    private final NetTx tx = new NetTx(this);
    private final NetRx rx = new NetRx(this);
    private final NetAnnounce announce = new NetAnnounce(this);
    private volatile boolean carriedIn;
    /** Whether a migrated-in state makes the device announce itself (not as a vhost-user back-end). */
    private volatile boolean announceAfterLoad = true;

    /** The device owns {@code backend} from here on and closes it in {@link #close}. */
    public VirtioNet(String id, NetOptions options, NetBackend backend) {
        super(id, backend);
        this.options = options;
        this.mac = options.mac();
        this.control = new NetControlQueue(filter, new NetControlQueue.Device() {
            @Override
            public void setMac(byte[] m) {
                mac = m;
            }

            @Override
            public boolean ackAnnounce() {
                return announce.ack();
            }
        }, stats);
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

    /**
     * Served as a vhost-user back-end, the device does not announce itself after its state came
     * with a migration: the front-end decides — the guest announces itself (GUEST_ANNOUNCE) or the
     * front-end asks for SEND_RARP — as a back-end behind QEMU's vhost-user-net is asked. Before
     * the device first starts.
     */
    public void leaveAnnounceToFrontEnd() {
        announceAfterLoad = false;
    }

    /** The MAC the device answers to now (the config's, or the one the driver set). */
    public byte[] mac() {
        return mac.clone();
    }

    public int status() {
        return status;
    }

    /** Frames received so far (delivered into the guest's RX queue). */
    public long rxFrames() {
        return stats.rxFrames.get();
    }

    /** Received frames dropped because the guest's RX buffers could not hold them. */
    public long rxTooBig() {
        return stats.rxTooBig.get();
    }

    /** Received frames that took more than one RX buffer (MRG_RXBUF, num_buffers above 1). */
    public long rxMultiBufferFrames() {
        return stats.rxMultiBuffer.get();
    }

    /** Frames sent whose TX chain held them in more than one device-readable buffer. */
    public long txMultiBufferFrames() {
        return stats.txMultiBuffer.get();
    }

    // ---- lifecycle (loop thread) ----

    @Override
    public void start(VirtioContext context) {
        this.ctx = context;
        this.serving = true;
        announce.start(context);
        rx.watch(true);
    }

    @Override
    public void queueNotified(int queue) {
        if (!serving || ctx == null) {
            return;
        }
        switch (queue) {
            case RX -> rx.kicked();
            case TX -> tx.transmit();
            case CTRL -> control.serve(ctx, CTRL);
            default -> { }
        }
    }

    @Override
    public void quiesce() {
        serving = false;
        rx.watch(false);
        announce.stop();
        rx.dropPendingAtStop();
    }

    @Override
    public void reset() {
        quiesce();
        ctx = null;
        filter.reset();
        mac = options.mac();
        status = status & NetConfig.S_LINK_UP; // the link stays as the host set it; ANNOUNCE clears
        announce.clearPending();
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
                    rx.linkChanged(up);
                }
            }
            return null;
        });
    }

    /** A back-end call failed; the first failure is logged, every one counted. Loop thread. */
    void backendError(RuntimeException e) {
        if (stats.backendErrors.getAndIncrement() == 0) {
            LOG.warn("{}: {}: {}", id, backend.describe(), e.getMessage());
        }
    }

    /** The self-announce schedule's state (tests, reports). */
    public AnnounceTimer.State selfAnnounceState() {
        return announce.selfState();
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
        if (announceAfterLoad) {
            announce.armAfterLoad();
        }
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
        d.put("backend-failed", rx.backendFailed());
        d.put("migrated-in", carriedIn);
        d.put("last-announce-us", announce.lastRoundOffsetsMicros());
        into.put("virtio-net", d);
    }

    @Override
    protected void stopOnLoop() {
        rx.watch(false);
        announce.stop();
    }

    @Override
    protected void closeDevice() {
        announce.closeTimers();
    }
}
