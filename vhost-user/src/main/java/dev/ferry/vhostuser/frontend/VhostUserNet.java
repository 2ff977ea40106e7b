package dev.ferry.vhostuser.frontend;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.net.VirtioNet;
import dev.ferry.vhostuser.proto.VhostUserException;

import java.io.IOException;
import java.util.Arrays;
import java.util.Map;

/**
 * vhost-user-net: a virtio NIC (ID 1) whose rx and tx queues an external back-end (DPDK
 * testpmd, Ferry's own) serves. The front-end provides MAC and STATUS itself (config
 * {@code mac[6] | le16 status = LINK_UP}); MRG_RXBUF when the back-end offers it. After a
 * migration the destination asks the back-end to announce the guest with SEND_RARP (when it
 * offers RARP), as QEMU does: GUEST_ANNOUNCE is not offered.
 *
 * <h2>Queue pairs</h2>
 * With {@code queues} = N above 1 the NIC has N pairs (queues rx0 0, tx0 1, ... rxN−1 2N−2,
 * txN−1 2N−1) and a control queue at 2N; it offers CTRL_VQ and MQ, and its config grows by
 * {@code le16 max_virtqueue_pairs = N}. The back-end must serve 2N queues (GET_QUEUE_NUM with
 * protocol feature MQ) or the device is refused. The control queue never goes to the back-end:
 * the front-end serves it ({@link MqControlQueue}); VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET with 1..N
 * pairs enables those pairs' rings at the back-end (SET_VRING_ENABLE 1) and disables the rest
 * (SET_VRING_ENABLE 0), anything else is answered ERR. A driver that does not negotiate MQ uses
 * pair 0 and finds the control queue at 2 (virtio 1.2, 5.1.2); the back-end then gets rings 0
 * and 1 only. Every pair is set up at the back-end when the rings start, enabled or not, so a
 * stop's GET_VRING_BASE covers every ring the driver made ready. With N = 1 the NIC is the
 * single-pair one it always was: no control queue offered, an 8-byte config, state version 1.
 *
 * <p>The enabled pair count is device state: with N above 1 the state (version 2) ends with
 * {@code be16 enabled pairs}, and a destination takes it only when it lies within its own
 * 1..N.
 */
public final class VhostUserNet extends VhostUserDevice {
    public static final String NAME = "vhost-user-net";
    public static final int QUEUE_SIZE = 256;
    public static final int F_MQ = 22;
    /** The most queue pairs a {@code vhost-user-net} may have ({@code queues}). */
    public static final int MAX_PAIRS = 8;
    private final byte[] mac;
    private final int pairs;
    private final MqControlQueue control;
    private volatile long rarpsSent;

    // Loop-thread state (volatile: describe reads it).
    private volatile int enabledPairs = 1;
    private DeviceEventLoop.Registration ctrlWatch;
    /** What {@link #load} read, kept aside until {@link #commitLoad}. */
    private int loadedPairs = 1;

    public VhostUserNet(String id, VhostUserOptions options, Machine machine) throws VhostUserException {
        super(id, options, machine, 2 * options.queues() + 1, 2 * options.queues(), QUEUE_SIZE);
        this.mac = options.mac().clone();
        this.pairs = options.queues();
        this.control = new MqControlQueue(this);
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

    @Override
    protected long deviceFeatureMask() {
        return 1L << VirtioNet.F_MRG_RXBUF;
    }

    @Override
    protected long frontendFeatures() {
        long f = 1L << VirtioNet.F_MAC | 1L << VirtioNet.F_STATUS;
        return pairs > 1 ? f | 1L << VirtioNet.F_CTRL_VQ | 1L << F_MQ : f;
    }

    /** Queue pairs configured (N). */
    public int pairs() {
        return pairs;
    }

    /** Pairs the driver enabled (1 until VQ_PAIRS_SET; restored by a migration). */
    public int enabledPairs() {
        return enabledPairs;
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
        return pairs > 1 ? 2 : 1;
    }

    @Override
    public byte[] config() {
        byte[] c = Arrays.copyOf(mac, pairs > 1 ? 10 : 8);
        c[6] = 1; // VIRTIO_NET_S_LINK_UP
        if (pairs > 1) {
            c[8] = (byte) pairs; // le16 max_virtqueue_pairs
        }
        return c;
    }

    @Override
    public void restoreConfig(byte[] c) throws MigrationException {
        if (c.length != config().length) {
            throw new MigrationException(who() + ": the source's NIC config has " + c.length + " bytes, this one "
                    + config().length + " (10 with more than one queue pair): the source's queues differ");
        }
        if (!Arrays.equals(Arrays.copyOf(c, 6), mac)) {
            throw new MigrationException(who() + ": the source's NIC config does not carry this NIC's MAC");
        }
        if (pairs > 1 && ((c[8] & 0xff) | (c[9] & 0xff) << 8) != pairs) {
            throw new MigrationException(who() + ": the source's NIC has " + ((c[8] & 0xff) | (c[9] & 0xff) << 8)
                    + " queue pairs, this one " + pairs + " (queues)");
        }
    }

    @Override
    public void writeConfig(int offset, int size, long value) {
        // read-only
    }

    // ---- the control queue (served here, never by the back-end) ----

    @Override
    public void start(VirtioContext context) {
        long f = context.features();
        if (pairs > 1 && Virtio.has(f, VirtioNet.F_CTRL_VQ) && ctrlWatch == null) {
            int q = controlQueue(f);
            // The transport leaves every doorbell to the model (external data plane): this one is
            // served here, back-end or not. Kicks that came while unwatched wait in the eventfd.
            ctrlWatch = loop.add(context.kickFd(q), () -> control.serve(context, q));
        }
        super.start(context);
    }

    @Override
    public void quiesce() {
        unwatchControl();
        super.quiesce();
    }

    @Override
    public void reset() {
        unwatchControl();
        super.reset();
        enabledPairs = 1;
    }

    private void unwatchControl() {
        if (ctrlWatch != null) {
            closeQuietly(ctrlWatch);
            ctrlWatch = null;
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

    // ---- migration ----

    /** The base state, then (N above 1, version 2) {@code be16} enabled pairs. */
    @Override
    public void save(SaveStream out) throws IOException {
        super.save(out);
        if (pairs > 1) {
            out.putBe16(enabledPairs);
        }
    }

    @Override
    public void load(LoadStream in, int version) throws IOException, MigrationException {
        super.load(in, version);
        int n = 1;
        if (version >= 2) {
            n = in.getBe16();
            if (n < 1 || n > pairs) {
                throw new MigrationException(who() + ": the source enabled " + n + " queue pairs; this NIC has "
                        + pairs + " (queues), 1.." + pairs + " accepted");
            }
        }
        loadedPairs = n;
    }

    @Override
    public void commitLoad() {
        super.commitLoad();
        enabledPairs = loadedPairs;
    }

    /** A migrated guest is announced by the back-end: SEND_RARP once the rings run on the destination. */
    @Override
    protected void afterStart(VhostUserFrontend f, VirtioContext context) throws VhostUserException {
        if (loadedFromMigration && !Virtio.has(context.features(), VirtioNet.F_GUEST_ANNOUNCE)) {
            loadedFromMigration = false;
            if (f.sendRarp(mac)) {
                rarpsSent++;
            }
        }
    }

    @Override
    protected void describeDevice(Map<String, Object> into) {
        into.put("rarps-sent", rarpsSent);
        into.put("queue-pairs", pairs);
        into.put("queue-pairs-enabled", enabledPairs);
        if (pairs > 1) {
            into.put("ctrl-commands", control.commands());
            into.put("ctrl-errors", control.errors());
        }
    }
}
