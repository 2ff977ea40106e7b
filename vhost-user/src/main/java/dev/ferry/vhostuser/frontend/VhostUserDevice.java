package dev.ferry.vhostuser.frontend;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.memory.DirtyLogSource;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationBlocker;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.MigrationRegistry;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.VirtioDeviceModel;
import dev.ferry.virtio.VirtioMmio;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Map;

/**
 * A virtio device whose queues an external vhost-user back-end serves (the front-end): the
 * transport ({@link VirtioMmio}) keeps the registers, features and the generic migration state;
 * this model hands the rings, their doorbells and guest memory to the back-end and turns the
 * back-end's call eventfds into the device's interrupt. Subclasses add what is device-specific
 * (device ID, feature mask, config space, what happens after a start): {@link VhostUserBlk},
 * {@link VhostUserNet}.
 *
 * <p>This class is the device model's face — start, quiesce, reset, the migration hooks,
 * describe — over three parts by role: {@link BackendLink} (the connection: watch, loss,
 * reconnect with backoff, the checks a reconnected back-end passes), {@link RingControl} (ring
 * start and stop, the drain, the log flag, the call eventfds; the sequence is drawn there) and
 * {@link BackendLog} (the dirty log during a migration). The table of the device's connection and
 * ring states is in docs/vhost-user.md.
 *
 * <h2>Migration</h2>
 * A back-end with LOG_ALL and LOG_SHMFD gets a {@link DirtyLogSource} ({@link SharedDirtyLog}):
 * its start sends SET_LOG_BASE, LOG_ALL and the used-ring log flag (now, or at the rings' next
 * start), its sync harvests the shared log, its stop clears LOG_ALL and the flag. Any other
 * back-end is a migration blocker with the reason. A back-end that hangs up or misbehaves while a
 * migration logs fails that migration (its sync, or the stop's GET_VRING_BASE, throws naming the
 * device and the reason); the source VM keeps running and the device reconnects
 * ({@link #backendLost}).
 *
 * <h2>Threads</h2>
 * Every request to the back-end is sent on the machine's device event loop (the transport calls
 * start, quiesce and reset there; the migration thread's log start and stop go through
 * {@link DeviceEventLoop#call}), so requests never interleave. The log's harvest runs on the
 * migration thread on memory this object owns. {@link #describe} reads volatile state only.
 */
public abstract class VhostUserDevice implements VirtioDeviceModel {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserDevice.class);
    protected final String id;
    protected final VhostUserOptions options;
    final GuestMemory memory;
    final DeviceEventLoop loop;
    private final MigrationRegistry registry;
    private final int queueCount;
    /**
     * Queues 0..backendQueues-1 can be the back-end's; which of them it serves under the
     * negotiated features is {@link #backendRings} (net without MQ: the first two).
     */
    final int backendQueues;
    private final int queueSize;
    private final BackendLog logSource;
    private final MigrationBlocker blocker;
    final long offeredBackendFeatures;
    final BackendLink link;
    final RingControl rings;

    // Loop-thread state; describe reads the volatile ones from any thread (the transport calls
    // it holding its lock, which the loop thread takes too: describe must not wait for the loop).
    VirtioContext ctx;
    volatile SharedDirtyLog log;
    protected boolean loadedFromMigration;
    /** How long a DEVICE_STATE transfer may take either way. */
    static final long STATE_TIMEOUT_MS = 10_000;
    /** Bytes of back-end state the last save sent and the last load gave the back-end (describe). */
    private volatile long savedStateBytes = -1;
    private volatile long loadedStateBytes = -1;

    /**
     * Connects to the back-end and negotiates (the transport asks for the features as it is
     * built). Throws when the back-end cannot be reached or cannot serve this device.
     */
    protected VhostUserDevice(String id, VhostUserOptions options, Machine machine, int queueCount, int queueSize)
            throws VhostUserException {
        this(id, options, machine, queueCount, queueCount, queueSize);
    }

    /**
     * As above, with the first {@code backendQueues} of the device's {@code queueCount} queues
     * served by the back-end (net: rx and tx; a control queue stays in the VMM).
     */
    protected VhostUserDevice(String id, VhostUserOptions options, Machine machine, int queueCount, int backendQueues,
                              int queueSize) throws VhostUserException {
        this.id = id;
        this.options = options;
        this.memory = machine.memory();
        this.loop = machine.eventLoop();
        this.registry = machine.migration();
        this.queueCount = queueCount;
        this.backendQueues = backendQueues;
        this.queueSize = queueSize;
        VhostUserFrontend fe = VhostUserFrontend.connect(id, options.socket(), options.replyTimeoutMs(),
                VhostUserFrontend.DEVICE_PROTOCOL);
        this.link = new BackendLink(this, fe);
        this.offeredBackendFeatures = fe.backendFeatures();
        this.rings = new RingControl(this);
        try {
            long missing = VirtioMmio.TRANSPORT_FEATURES & ~fe.backendFeatures();
            if (missing != 0) {
                throw new VhostUserException(who() + ": the back-end lacks the ring features 0x"
                        + Long.toHexString(missing) + " (VERSION_1, EVENT_IDX, INDIRECT_DESC) the transport offers");
            }
            checkBackend(fe);
            if (backendQueues > fe.queueNum()) {
                throw new VhostUserException(who() + ": " + backendQueues + " queues asked for; the back-end serves "
                        + fe.queueNum());
            }
            rings.openCalls();
            link.open();
        } catch (VhostUserException | RuntimeException e) {
            closeResources();
            throw e;
        }
        if (fe.canLog()) {
            logSource = new BackendLog(this);
            blocker = null;
            registry.addDirtyLogSource(logSource);
            registry.addNotifier(logSource);
        } else {
            logSource = null;
            blocker = new MigrationBlocker(who() + ": the vhost-user back-end at " + options.socket() + " lacks "
                    + (VhostUser.has(fe.backendFeatures(), VhostUser.F_LOG_ALL) ? "" : "LOG_ALL ")
                    + (fe.hasProtocol(VhostUser.PF_LOG_SHMFD) ? "" : "LOG_SHMFD ")
                    + "and cannot log its writes to guest memory");
            registry.addBlocker(blocker);
        }
    }

    /** A device-specific check of a freshly negotiated back-end (a disk needs CONFIG); throws to refuse it. */
    protected abstract void checkBackend(VhostUserFrontend frontend) throws VhostUserException;

    /** The device-specific feature bits (below 24) this device may offer when the back-end does. */
    protected abstract long deviceFeatureMask();

    /** Feature bits the front-end provides itself whatever the back-end says (net: MAC, STATUS). */
    protected long frontendFeatures() {
        return 0;
    }

    /**
     * Feature bits the front-end serves alone and never tells the back-end in SET_FEATURES (net:
     * MAC, STATUS and the control queue's CTRL_VQ, CTRL_RX and CTRL_MAC_ADDR, as QEMU keeps them
     * from it).
     */
    protected long frontendOnlyFeatures() {
        return 0;
    }

    /** What SET_FEATURES tells the back-end when the driver negotiated {@code guestFeatures}. */
    final long backendAcked(long guestFeatures) {
        return guestFeatures & offeredBackendFeatures & ~frontendOnlyFeatures();
    }

    /**
     * How many of the first queues the back-end serves when the driver negotiated
     * {@code guestFeatures} (net without MQ: rx0 and tx0 only, the control queue then sits at 2).
     */
    protected int backendRings(long guestFeatures) {
        return backendQueues;
    }

    /** Whether ring {@code ring} is enabled at the back-end when the rings start (net: the enabled pairs). */
    protected boolean ringEnabled(int ring) {
        return true;
    }

    /**
     * Whether a stop disables each ring (SET_VRING_ENABLE 0) before its GET_VRING_BASE, as QEMU's
     * vhost-user-blk does (the default). Net answers false: see {@link VhostUserNet}.
     */
    protected boolean disablesRingsAtStop() {
        return true;
    }

    /**
     * The ring a stop takes {@code k}-th of the {@code n} the back-end serves (the default: by
     * index; net: every TX ring before any RX ring).
     */
    protected int stopOrder(int k, int n) {
        return k;
    }

    /**
     * The back-end said its config changed (CONFIG_CHANGE_MSG on its request channel; loop
     * thread): the device takes what it uses of the new config from {@code frontend} and tells
     * the driver. Returns false to refuse it; the default refuses (the device takes no config from
     * its back-end). Throws when the back-end fails the request that follows.
     */
    protected boolean backendConfigChanged(VhostUserFrontend frontend) throws VhostUserException {
        LOG.info("{}: the back-end at {} says its config changed; this device takes no config from it", who(),
                options.socket());
        return false;
    }

    /** After the rings started (loop thread): net announces a migrated guest here. */
    protected void afterStart(VhostUserFrontend frontend, VirtioContext context) throws VhostUserException {
    }

    /** "disk0 (vhost-user-blk)", for messages. */
    protected final String who() {
        return id + " (" + name() + ")";
    }

    @Override
    public long features() {
        return offeredBackendFeatures & deviceFeatureMask() | frontendFeatures();
    }

    @Override
    public int queueCount() {
        return queueCount;
    }

    @Override
    public int queueMaxSize() {
        return queueSize;
    }

    @Override
    public boolean externalDataPlane() {
        return true;
    }

    // ---- the rings (loop thread; the sequence itself: RingControl) ----

    @Override
    public void start(VirtioContext context) {
        this.ctx = context;
        if (rings.running()) {
            return;
        }
        if (link.frontend() == null) {
            link.reconnectNow();
            if (link.frontend() == null) {
                link.scheduleReconnect();
                String lost = link.lostReason();
                throw new IllegalStateException(who() + ": the vhost-user back-end at " + options.socket()
                        + " is not connected (" + (lost != null ? lost : link.reconnectError())
                        + "); the device serves nothing until it reconnects");
            }
        }
        try {
            rings.start();
        } catch (VhostUserException e) {
            backendLost(e.getMessage());
            throw new UncheckedIOException(who() + ": starting the back-end failed: " + e.getMessage(), e);
        }
    }

    /**
     * Whether every buffer the driver makes available on queue {@code queue} completes without
     * anything from outside (a disk's requests: yes; a NIC's receive buffers wait for frames).
     * Only such queues are drained at a stop.
     */
    protected abstract boolean completesOnItsOwn(int queue);

    /** Before the rings start (blk: SET_INFLIGHT_FD). */
    protected void beforeRingsStart(VhostUserFrontend frontend, VirtioContext context) throws VhostUserException {
    }

    @Override
    public void queueNotified(int queue) {
        // Never called: the back-end reads the doorbells (externalDataPlane).
    }

    /**
     * VM stop: ENABLE(0) and GET_VRING_BASE per ring; the index, checked against the used index
     * in guest RAM, becomes the transport's ring state. A back-end that fails here is dropped and
     * the stop throws, naming the device: a migration's switchover fails with it.
     */
    @Override
    public void quiesce() {
        if (!rings.running()) {
            if (link.frontend() == null && log != null && ctx != null) {
                throw new IllegalStateException(who() + ": the vhost-user back-end at " + options.socket()
                        + " is gone (" + link.lostReason() + "); its rings' state is unknown");
            }
            return;
        }
        String problem = rings.stop();
        if (problem != null) {
            backendLost(problem);
            throw new IllegalStateException(who() + ": stopping the vhost-user back-end at " + options.socket()
                    + " failed: " + problem);
        }
    }

    @Override
    public void reset() {
        VhostUserFrontend f = link.frontend();
        if (rings.running() && f != null) {
            String problem = rings.stop();
            ctx = null; // what the back-end had taken is the resetting driver's to submit again: no NEEDS_RESET
            if (problem != null) {
                backendLost(problem);
            } else {
                try {
                    f.setStatus(0);
                } catch (VhostUserException e) {
                    backendLost(e.getMessage());
                }
            }
        }
        rings.markStopped();
        ctx = null;
    }

    // ---- the back-end's connection (loop thread; watch and reconnect: BackendLink) ----

    /**
     * The back-end is gone or broke the protocol: the connection closes, the rings fall back to
     * the used index in guest RAM (with an in-flight region the back-end's successor resubmits
     * what was in flight), and a started device reconnects with backoff.
     */
    protected void backendLost(String reason) {
        VhostUserFrontend f = link.drop(reason);
        if (f == null) {
            return;
        }
        String unknown = rings.fallBackToUsedIndex();
        f.close();
        if (unknown != null && ctx != null) {
            // Resubmitting from the used index could run a completed write again over a newer one.
            VirtioContext c = ctx;
            ctx = null;
            c.deviceError(who() + ": the vhost-user back-end was lost (" + reason + ") while " + unknown
                    + " and it keeps no in-flight region: their state is unknown");
        }
        link.scheduleReconnect();
    }

    /**
     * The rings' state is unknown though the back-end is fine (a start found a ring served
     * behind the front-end's back): the device goes NEEDS_RESET with {@code what}, the rings stay
     * stopped, and the driver's reset starts them afresh. Loop thread.
     */
    void ringStateUnknown(String what) {
        VirtioContext c = ctx;
        rings.markStopped();
        if (c != null) {
            ctx = null;
            c.deviceError(who() + ": " + what + ": their state is unknown");
        }
    }

    /**
     * Whether the requests a lost back-end had taken may be offered again from the used index:
     * blk only with an in-flight region (the new back-end knows which completed); otherwise the
     * device needs a reset ({@link VirtioContext#deviceError}) and the driver resubmits.
     */
    protected boolean resubmitSafe() {
        return true;
    }

    /** A new connection replaced a lost one (blk: the in-flight region goes to the new back-end). */
    protected void afterReconnect(VhostUserFrontend frontend) {
    }

    // ---- migration (the log itself: BackendLog) ----

    /** Pages the shared logs of finished migrations reported. Written on the loop thread. */
    volatile long loggedPagesBefore;

    /** The pages the back-end's shared logs reported, over every migration so far. */
    public long loggedPages() {
        return loop.call(() -> loggedPagesBefore + (log == null ? 0L : log.pagesReported()));
    }

    /**
     * The device part of the {@code virtio} field: {@code u8 0} — the rings' indices travel in the
     * transport's queue state and this front-end carries no back-end state yet (DEVICE_STATE,
     * protocol bit 19, is not negotiated). A stream with anything else is refused.
     */
    @Override
    public void save(SaveStream out) throws IOException {
        long n = DeviceStateTransfer.writeTo(out, link.frontend(), STATE_TIMEOUT_MS);
        if (n >= 0) {
            savedStateBytes = n;
        }
    }

    @Override
    public void load(LoadStream in, int version) throws IOException, MigrationException {
        long n = DeviceStateTransfer.readFrom(in, link.frontend(), who() + " (back-end at " + options.socket() + ")",
                STATE_TIMEOUT_MS);
        if (n >= 0) {
            loadedStateBytes = n;
        }
    }

    @Override
    public void commitLoad() {
        loadedFromMigration = true;
    }

    /** Any thread; reads a snapshot of volatile fields (never waits for the loop). */
    @Override
    public void describe(Map<String, Object> into) {
        Map<String, Object> m = new java.util.LinkedHashMap<>();
        VhostUserFrontend f = link.frontend();
        m.put("socket", options.socket().toString());
        m.put("connected", f != null);
        if (savedStateBytes >= 0 || loadedStateBytes >= 0) {
            m.put("device-state-saved-bytes", savedStateBytes);
            m.put("device-state-loaded-bytes", loadedStateBytes);
        }
        m.put("rings-running", rings.running());
        m.put("backend-features", String.format("0x%x", offeredBackendFeatures));
        if (f != null) {
            m.put("protocol-features", String.format("0x%x", f.protocolFeatures()));
        }
        m.put("interrupts", rings.interrupts());
        m.put("last-drain-us", rings.lastDrainMicros());
        m.put("reconnects", link.reconnects());
        String lost = link.lostReason();
        if (lost != null) {
            m.put("lost", lost);
        }
        String re = link.reconnectError();
        if (re != null) {
            m.put("reconnect-error", re);
        }
        if (blocker != null) {
            m.put("migration-blocker", blocker.reason());
        }
        SharedDirtyLog l = log;
        m.put("logged-pages", loggedPagesBefore + (l == null ? 0 : l.pagesReported()));
        describeDevice(m);
        into.put(name(), m);
    }

    /** Device-specific counters (any thread: read volatile state only). */
    protected void describeDevice(Map<String, Object> into) {
    }

    /** The front-end, on the loop thread (null while disconnected). Test and subclass use. */
    protected VhostUserFrontend frontend() {
        return link.frontend();
    }

    /** Runs {@code r} on the device's loop with the current front-end (tests: a request observer). */
    public void withFrontend(java.util.function.Consumer<VhostUserFrontend> r) {
        loop.call(() -> {
            VhostUserFrontend f = link.frontend();
            if (f != null) {
                r.accept(f);
            }
            return null;
        });
    }

    @Override
    public void close() {
        if (logSource != null) {
            registry.removeDirtyLogSource(logSource);
            registry.removeNotifier(logSource);
        }
        if (blocker != null) {
            registry.removeBlocker(blocker);
        }
        try {
            loop.call(() -> {
                closeResources();
                return null;
            });
        } catch (RuntimeException e) { // the loop closed first: nothing runs on it any more
            closeResources();
        }
    }

    private void closeResources() {
        link.closeWatch();
        rings.closeCalls();
        link.closeFrontend();
        if (log != null) {
            log.close();
            log = null;
        }
        closeDevice();
    }

    /** Device-specific resources (blk: the in-flight region). */
    protected void closeDevice() {
    }

    static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception e) {
            LOG.debug("closing {} failed: {}", c, e.toString());
        }
    }
}
