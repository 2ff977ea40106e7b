package dev.ferry.vhostuser.frontend;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.net.AnnounceTimer;
import dev.ferry.virtio.net.NetConfig;
import dev.ferry.virtio.net.NetControl;
import dev.ferry.virtio.net.NetControlQueue;
import dev.ferry.virtio.net.NetOptions;
import dev.ferry.virtio.net.NetState;
import dev.ferry.virtio.net.RxFilter;
import dev.ferry.virtio.net.VirtioNet;
import dev.ferry.virtio.queue.VirtqueueError;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserException;

import java.io.IOException;
import java.util.Arrays;
import java.util.Map;

/**
 * vhost-user-net: a virtio NIC (ID 1) whose rx and tx queues an external back-end (DPDK
 * testpmd, Ferry's own) serves, while the front-end keeps the config space and the whole
 * control queue, as QEMU's vhost-user-net does: the back-end never sees the control queue.
 *
 * <h2>Features</h2>
 * The front-end offers MAC, STATUS, CTRL_VQ, CTRL_RX and CTRL_MAC_ADDR itself; MRG_RXBUF and
 * GUEST_ANNOUNCE when the back-end offers them (QEMU passes both through its vhost-user feature
 * list: DPDK offers GUEST_ANNOUNCE, Ferry's back-end when its {@code NetOptions} say so); MQ with
 * more than one pair. SET_FEATURES never carries the front-end's own bits (MAC, STATUS, CTRL_VQ,
 * CTRL_RX, CTRL_MAC_ADDR; QEMU 7.2's SET_FEATURES carries none of them either); GUEST_ANNOUNCE
 * goes to a back-end that offered it, telling it that the guest announces itself.
 *
 * <h2>The control queue</h2>
 * At 2N with MQ negotiated, else at 2 (virtio 1.2, 5.1.2): a driver without MQ uses pair 0 and
 * the back-end gets rings 0 and 1 only; a driver without CTRL_VQ uses rings 0 and 1 and nothing
 * watches the control queue's doorbell. The commands are the built-in device's
 * ({@link NetControlQueue}, {@link NetControl}): RX mode (PROMISC, ALLMULTI), MAC_TABLE_SET and
 * MAC_ADDR_SET (the config's {@code mac} follows), ANNOUNCE ACK, and MQ VQ_PAIRS_SET with 1..N
 * pairs, which enables those pairs' rings at the back-end (SET_VRING_ENABLE 1) and disables the
 * rest (SET_VRING_ENABLE 0). A request that is well formed but not served, has the wrong data
 * length, a count out of range or data above {@link NetControl#MAX_DATA} bytes is answered ERR
 * and changes nothing; a chain without class and command or without a writable ack byte, or a
 * malformed ring, is a protocol error: NEEDS_RESET. The RX mode and the MAC table are recorded
 * only — the data plane is the back-end's, and a vhost-user back-end filters nothing (QEMU's
 * vhost-user-net does the same: the filter state lives in the front-end and migrates).
 *
 * <h2>Queue pairs</h2>
 * With {@code queues} = N above 1 the NIC has N pairs (queues rx0 0, tx0 1, ... rxN−1 2N−2,
 * txN−1 2N−1) and the control queue at 2N; its config grows by {@code le16 max_virtqueue_pairs =
 * N}. The back-end must serve 2N queues (GET_QUEUE_NUM with protocol feature MQ) or the device is
 * refused. Every pair is set up at the back-end when the rings start, enabled or not, so a stop's
 * GET_VRING_BASE covers every ring the driver made ready.
 *
 * <h2>Migration and announce</h2>
 * The device state (version 3) is the base state, then
 * <pre>
 *   be16 enabled pairs (1..N) | mac[6] configured | virtio-net control state ({@link NetState}:
 *   the MAC in use, status with ANNOUNCE, RX mode, MAC table)
 * </pre>
 * checked whole before any of it is used: pairs outside 1..N, another configured MAC, a
 * multicast MAC, a status without LINK_UP or with unknown bits, a table above 64 entries are
 * refused with the reason. Versions 1 and 2 are not loadable (a section's version must be 3).
 * After a migration, once the rings run on the destination: with GUEST_ANNOUNCE (and CTRL_VQ)
 * negotiated the guest announces itself on QEMU's schedule ({@link AnnounceTimer}: each round sets
 * {@code VIRTIO_NET_S_ANNOUNCE} with a config interrupt, the driver's ANNOUNCE ACK clears it and
 * lets the next round come) and no SEND_RARP is sent; without it, the back-end is asked to
 * announce the guest's MAC with SEND_RARP (when it offers RARP) in each of the same schedule's
 * five rounds, without acks — QEMU's announce timer, whose RARP its vhost-user net client turns
 * into SEND_RARP every round. A round whose SEND_RARP fails drops the back-end (reconnect rules).
 */
public final class VhostUserNet extends VhostUserDevice {
    public static final String NAME = "vhost-user-net";
    public static final int QUEUE_SIZE = 256;
    public static final int F_MQ = VirtioNet.F_MQ;
    /** The most queue pairs a {@code vhost-user-net} may have ({@code queues}). */
    public static final int MAX_PAIRS = 8;
    /** The state version: 3 adds the control queue's state to version 2's pairs. */
    public static final int STATE_VERSION = 3;
    private final byte[] configuredMac;
    private final int pairs;
    private final RxFilter filter = new RxFilter();
    private final NetControlQueue control;
    private volatile long rarpsSent;
    private volatile long ctrlCommands;
    private volatile long ctrlErrors;
    private volatile long guestAnnounces;
    private volatile long announceAcks;

    // Read by config() on vCPU threads; written on the loop thread (and by commitLoad, VM stopped).
    private volatile byte[] mac;
    private volatile int status = NetConfig.S_LINK_UP;

    // Loop-thread state (volatile: describe reads it).
    private volatile int enabledPairs = 1;
    private DeviceEventLoop.Registration ctrlWatch;
    private DeviceEventLoop.Timer announceTimer;
    private AnnounceTimer announce;
    private DeviceEventLoop.Timer rarpTimer;
    private AnnounceTimer rarpAnnounce;
    /** What {@link #load} read, kept aside until {@link #commitLoad}. */
    private int loadedPairs = 1;
    private NetState loadedControl;

    public VhostUserNet(String id, VhostUserOptions options, Machine machine) throws VhostUserException {
        super(id, options, machine, 2 * options.queues() + 1, 2 * options.queues(), QUEUE_SIZE);
        this.configuredMac = options.mac().clone();
        this.mac = configuredMac.clone();
        this.pairs = options.queues();
        this.control = new NetControlQueue(filter, new NetControlQueue.Device() {
            @Override
            public void setMac(byte[] m) {
                mac = m;
            }

            @Override
            public boolean ackAnnounce() {
                return VhostUserNet.this.ackAnnounce();
            }

            @Override
            public int setQueuePairs(int n) {
                return n >= 1 && n <= pairs && setEnabledPairs(n) ? NetControl.OK : NetControl.ERR;
            }
        }, ack -> {
            ctrlCommands++;
            if (ack != NetControl.OK) {
                ctrlErrors++;
            }
        });
    }

    @Override
    protected void checkBackend(VhostUserFrontend f) throws VhostUserException {
        if (f.queueNum() < 2 * options.queues()) {
            throw new VhostUserException(who() + ": " + options.queues() + " queue pairs (" + 2 * options.queues()
                    + " queues) asked for; the back-end at " + options.socket() + " serves " + f.queueNum()
                    + (f.hasProtocol(dev.ferry.vhostuser.proto.VhostUser.PF_MQ) ? "" : " (it does not offer protocol feature MQ)"));
        }
    }

    /**
     * Receive buffers wait for frames and a back-end sends what it took at once (DPDK uses a
     * buffer as it pops it): the stop takes GET_VRING_BASE as it comes.
     */
    @Override
    protected boolean completesOnItsOwn(int queue) {
        return false;
    }

    /**
     * A stop sends GET_VRING_BASE alone, as QEMU's vhost-net does: a back-end that forwards a
     * pair's TX frames into RX rings (testpmd) still takes TX from a pair whose RX ring a lone
     * SET_VRING_ENABLE(0) disabled, and drops every frame it took in between (a whole window of
     * one flow at each migration). GET_VRING_BASE stops the ring by itself; DPDK stops every
     * ring of the device at the first one.
     */
    @Override
    protected boolean disablesRingsAtStop() {
        return false;
    }

    /**
     * Every TX ring stops before any RX ring: a back-end that stops ring by ring takes no frame
     * from the guest once it can no longer deliver into the RX rings.
     */
    @Override
    protected int stopOrder(int k, int n) {
        int half = n / 2;
        return k < half ? 2 * k + 1 : 2 * (k - half);
    }

    /** MRG_RXBUF and GUEST_ANNOUNCE: offered when the back-end offers them (QEMU's vhost-user list). */
    @Override
    protected long deviceFeatureMask() {
        return 1L << VirtioNet.F_MRG_RXBUF | 1L << VirtioNet.F_GUEST_ANNOUNCE;
    }

    @Override
    protected long frontendFeatures() {
        long f = frontendOnlyFeatures();
        return pairs > 1 ? f | 1L << F_MQ : f;
    }

    /** The config space's and the control queue's bits: never told to the back-end, as QEMU tells it none of them. */
    @Override
    protected long frontendOnlyFeatures() {
        return 1L << VirtioNet.F_MAC | 1L << VirtioNet.F_STATUS | 1L << VirtioNet.F_CTRL_VQ | 1L << VirtioNet.F_CTRL_RX
                | 1L << VirtioNet.F_CTRL_MAC_ADDR;
    }

    /** Queue pairs configured (N). */
    public int pairs() {
        return pairs;
    }

    /** Pairs the driver enabled (1 until VQ_PAIRS_SET; restored by a migration). */
    public int enabledPairs() {
        return enabledPairs;
    }

    /** The MAC in use: the configured one, or the one the driver set (MAC_ADDR_SET). */
    public byte[] mac() {
        return mac.clone();
    }

    /** The config's {@code status}: LINK_UP, and ANNOUNCE while the guest is asked to announce itself. */
    public int status() {
        return status;
    }

    /** The control queue's index under {@code guestFeatures}: 2N with MQ, else 2. */
    int controlQueue(long guestFeatures) {
        return Virtio.has(guestFeatures, F_MQ) ? 2 * pairs : 2;
    }

    @Override
    protected int backendRings(long guestFeatures) {
        return Virtio.has(guestFeatures, F_MQ) ? 2 * pairs : 2;
    }

    @Override
    protected boolean ringEnabled(int ring) {
        return ring / 2 < enabledPairs;
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public int deviceId() {
        return Virtio.ID_NET;
    }

    @Override
    public int stateVersion() {
        return STATE_VERSION;
    }

    /** {@code mac[6] | le16 status}, then with N above 1 {@code le16 max_virtqueue_pairs}. */
    @Override
    public byte[] config() {
        byte[] c = Arrays.copyOf(mac, pairs > 1 ? 10 : 8);
        int s = status;
        c[NetConfig.STATUS_OFFSET] = (byte) s;
        c[NetConfig.STATUS_OFFSET + 1] = (byte) (s >>> 8);
        if (pairs > 1) {
            c[8] = (byte) pairs; // le16 max_virtqueue_pairs
        }
        return c;
    }

    /** Called after {@link #load}: the config must agree with the loaded state's MAC and this NIC's pairs. */
    @Override
    public void restoreConfig(byte[] c) throws MigrationException {
        if (c.length != config().length) {
            throw new MigrationException(who() + ": the source's NIC config has " + c.length + " bytes, this one "
                    + config().length + " (10 with more than one queue pair): the source's queues differ");
        }
        NetState l = loadedControl;
        byte[] expected = l != null ? l.mac() : configuredMac;
        if (!Arrays.equals(Arrays.copyOf(c, 6), expected)) {
            throw new MigrationException(who() + ": the source's NIC config carries MAC "
                    + NetOptions.format(Arrays.copyOf(c, 6)) + ", its state " + NetOptions.format(expected));
        }
        if (pairs > 1 && ((c[8] & 0xff) | (c[9] & 0xff) << 8) != pairs) {
            throw new MigrationException(who() + ": the source's NIC has " + ((c[8] & 0xff) | (c[9] & 0xff) << 8)
                    + " queue pairs, this one " + pairs + " (queues)");
        }
    }

    @Override
    public void writeConfig(int offset, int size, long value) {
        // Read-only for a VERSION_1 driver: the MAC changes through VIRTIO_NET_CTRL_MAC_ADDR_SET.
    }

    // ---- the control queue (served here, never by the back-end) ----

    @Override
    public void start(VirtioContext context) {
        if (announceTimer == null) {
            announceTimer = loop.timer(() -> announce.expired());
            announce = new AnnounceTimer(true, AnnounceTimer.Scheduler.of(announceTimer), this::announceRound);
            rarpTimer = loop.timer(() -> rarpAnnounce.expired());
            rarpAnnounce = new AnnounceTimer(false, AnnounceTimer.Scheduler.of(rarpTimer), this::rarpRound);
        }
        long f = context.features();
        if (Virtio.has(f, VirtioNet.F_CTRL_VQ) && ctrlWatch == null) {
            int q = controlQueue(f);
            // The transport leaves every doorbell to the model (external data plane): this one is
            // served here, back-end or not. Kicks that came while unwatched wait in the eventfd.
            ctrlWatch = loop.add(context.kickFd(q), () -> serveControl(context, q));
        }
        super.start(context);
    }

    private void serveControl(VirtioContext context, int q) {
        try {
            control.serve(context, q);
        } catch (VirtqueueError e) {
            context.deviceError("queue " + q + ": " + e.getMessage());
        }
    }

    @Override
    public void quiesce() {
        unwatchControl();
        stopAnnounce();
        super.quiesce();
    }

    @Override
    public void reset() {
        unwatchControl();
        stopAnnounce();
        super.reset();
        enabledPairs = 1;
        filter.reset();
        mac = configuredMac.clone();
        status = NetConfig.S_LINK_UP;
        loadedFromMigration = false;
    }

    private void unwatchControl() {
        if (ctrlWatch != null) {
            closeQuietly(ctrlWatch);
            ctrlWatch = null;
        }
    }

    private void stopAnnounce() {
        if (announce != null) {
            announce.stop();
            rarpAnnounce.stop();
        }
    }

    /**
     * VQ_PAIRS_SET: the driver wants {@code n} pairs (1..N, checked by the caller). With the rings
     * running, the pairs that change are enabled or disabled at the back-end. False when the
     * back-end failed (it is dropped; the driver gets ERR).
     */
    boolean setEnabledPairs(int n) {
        int old = enabledPairs;
        enabledPairs = n;
        VhostUserFrontend f = frontend();
        if (!rings.running() || f == null || old == n) {
            return true;
        }
        try {
            for (int p = Math.min(old, n); p < Math.max(old, n); p++) {
                f.enableRing(2 * p, n > old);
                f.enableRing(2 * p + 1, n > old);
            }
            return true;
        } catch (VhostUserException e) {
            backendLost("SET_VRING_ENABLE for " + n + " queue pairs: " + e.getMessage());
            return false;
        }
    }

    // ---- announce (loop thread) ----

    /** One round of the guest's announce: ANNOUNCE in the status and a config interrupt. */
    private void announceRound(int round) {
        VirtioContext c = ctx;
        if (c == null) {
            return;
        }
        status |= NetConfig.S_ANNOUNCE;
        guestAnnounces++;
        c.configChanged();
    }

    /** One round of the back-end's announce: SEND_RARP for the guest's MAC. */
    private void rarpRound(int round) {
        VhostUserFrontend f = frontend();
        if (f == null) {
            return; // disconnected: the reconnect does not announce again
        }
        try {
            if (f.sendRarp(mac)) {
                rarpsSent++;
            }
        } catch (VhostUserException e) {
            rarpAnnounce.stop();
            backendLost("SEND_RARP (announce round " + (round + 1) + "): " + e.getMessage());
        }
    }

    /** ANNOUNCE ACK: clears ANNOUNCE (before the ack completes, as the spec asks); false when none was raised. */
    private boolean ackAnnounce() {
        if ((status & NetConfig.S_ANNOUNCE) == 0) {
            return false;
        }
        status &= ~NetConfig.S_ANNOUNCE;
        announceAcks++;
        announce.acked();
        return true;
    }

    /** The guest announce schedule's state (tests, reports). */
    public AnnounceTimer.State announceState() {
        return loop.call(() -> announce == null ? AnnounceTimer.State.IDLE : announce.state());
    }

    /** The SEND_RARP schedule's state (tests, reports). */
    public AnnounceTimer.State rarpAnnounceState() {
        return loop.call(() -> rarpAnnounce == null ? AnnounceTimer.State.IDLE : rarpAnnounce.state());
    }

    // ---- migration ----

    /** The base state, {@code be16} enabled pairs, the configured MAC and the control state ({@link NetState}). */
    @Override
    public void save(SaveStream out) throws IOException {
        super.save(out);
        out.putBe16(enabledPairs);
        for (byte b : configuredMac) {
            out.putU8(b & 0xff);
        }
        NetState.of(mac, status, filter).save(out, true);
    }

    @Override
    public void load(LoadStream in, int version) throws IOException, MigrationException {
        if (version != STATE_VERSION) {
            throw new MigrationException(who() + ": state version " + version + "; this NIC loads " + STATE_VERSION);
        }
        super.load(in, version);
        int n = in.getBe16();
        if (n < 1 || n > pairs) {
            throw new MigrationException(who() + ": the source enabled " + n + " queue pairs; this NIC has "
                    + pairs + " (queues), 1.." + pairs + " accepted");
        }
        byte[] configured = new byte[6];
        for (int i = 0; i < 6; i++) {
            configured[i] = (byte) in.getU8();
        }
        if (!Arrays.equals(configured, configuredMac)) {
            throw new MigrationException(who() + ": the source's NIC was configured with MAC "
                    + NetOptions.format(configured) + ", this one with " + NetOptions.format(configuredMac));
        }
        NetState s = NetState.load(in, who(), true, "the vhost-user back-end");
        if ((s.status() & NetConfig.S_LINK_UP) == 0) {
            throw new MigrationException(who() + ": status 0x" + Integer.toHexString(s.status())
                    + " without LINK_UP; a vhost-user-net link is always up");
        }
        loadedPairs = n;
        loadedControl = s;
    }

    @Override
    public void commitLoad() {
        super.commitLoad();
        enabledPairs = loadedPairs;
        NetState s = loadedControl;
        loadedControl = null;
        if (s != null) {
            mac = s.mac().clone();
            status = s.status();
            s.applyTo(filter);
        }
    }

    /**
     * A migrated guest is announced once the rings run on the destination: by itself when it
     * negotiated GUEST_ANNOUNCE (with CTRL_VQ), else by the back-end with SEND_RARP, five rounds
     * (the first now) when it offers RARP.
     */
    @Override
    protected void afterStart(VhostUserFrontend f, VirtioContext context) throws VhostUserException {
        if (!loadedFromMigration) {
            return;
        }
        loadedFromMigration = false;
        long g = context.features();
        if (Virtio.has(g, VirtioNet.F_GUEST_ANNOUNCE) && Virtio.has(g, VirtioNet.F_CTRL_VQ)) {
            announce.begin();
        } else if (f.hasProtocol(VhostUser.PF_RARP)) {
            rarpAnnounce.begin();
        }
    }

    @Override
    protected void describeDevice(Map<String, Object> into) {
        into.put("mac", NetOptions.format(mac));
        into.put("status", status);
        into.put("rarps-sent", rarpsSent);
        into.put("guest-announces", guestAnnounces);
        into.put("announce-acks", announceAcks);
        into.put("queue-pairs", pairs);
        into.put("queue-pairs-enabled", enabledPairs);
        into.put("ctrl-commands", ctrlCommands);
        into.put("ctrl-errors", ctrlErrors);
        into.put("promisc", filter.promisc());
        into.put("mac-table-entries", filter.tableEntries());
    }

    @Override
    protected void closeDevice() {
        if (announceTimer != null) {
            announceTimer.close();
            announceTimer = null;
            rarpTimer.close();
            rarpTimer = null;
        }
    }
}
