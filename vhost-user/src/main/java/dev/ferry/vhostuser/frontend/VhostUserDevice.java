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
import dev.ferry.core.sys.EventFd;
import dev.ferry.core.sys.Linux;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.VirtioDeviceModel;
import dev.ferry.virtio.VirtioMmio;
import dev.ferry.virtio.queue.QueueConfig;
import dev.ferry.virtio.queue.SplitRing;
import dev.ferry.virtio.queue.SplitVirtqueue;
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
 * <h2>Life of the rings (QEMU's vhost_dev_start / vhost_dev_stop)</h2>
 * <pre>
 *   start (DRIVER_OK, VM start)  SET_FEATURES [+LOG_ALL] · SET_MEM_TABLE · [SET_LOG_BASE] · [SET_INFLIGHT_FD]
 *                                per ready queue: NUM · BASE(last_avail_idx) · ADDR [log] · KICK · CALL · ENABLE(1)
 *                                [SET_STATUS]
 *   quiesce (VM stop)            per ready queue: ENABLE(0) · GET_VRING_BASE → the transport's ring state
 *   reset (driver writes 0)      as quiesce, [SET_STATUS 0]
 * </pre>
 * GET_VRING_BASE's index (with the used index re-read from guest RAM) becomes the transport's
 * queue state, so the existing {@code virtio} field carries it and a destination resumes the
 * back-end there with SET_VRING_BASE.
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
 * migration thread on memory this object owns.
 */
public abstract class VhostUserDevice implements VirtioDeviceModel {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserDevice.class);
    static final long RECONNECT_FIRST_MS = 100;
    static final long RECONNECT_MAX_MS = 2_000;
    /**
     * How many reply timeouts a stop waits for the requests a back-end took to complete after
     * GET_VRING_BASE (a flush on a busy host disk takes a while; QEMU's own drain waits without a
     * bound, but a back-end that never completes them must not hang the VMM).
     */
    static final int DRAIN_REPLY_TIMEOUTS = 3;
    protected final String id;
    protected final VhostUserOptions options;
    final GuestMemory memory;
    final DeviceEventLoop loop;
    private final MigrationRegistry registry;
    private final int queueCount;
    /** Queues 0..backendQueues-1 are the back-end's. */
    private final int backendQueues;
    private final int queueSize;
    private final EventFd[] calls;
    private final DeviceEventLoop.Registration[] callRegs;
    private final BackendLog logSource;
    private final MigrationBlocker blocker;
    private final DeviceEventLoop.Timer reconnectTimer;
    final long offeredBackendFeatures;

    // Loop-thread state; describe reads the volatile ones from any thread (the transport calls
    // it holding its lock, which the loop thread takes too: describe must not wait for the loop).
    volatile VhostUserFrontend fe;
    private DeviceEventLoop.Registration hangupReg;
    VirtioContext ctx;
    volatile boolean running;
    volatile SharedDirtyLog log;
    volatile String lostReason;
    private volatile String reconnectError;
    private long reconnectDelayMs = RECONNECT_FIRST_MS;
    private volatile long reconnects;
    private volatile long interrupts;
    private volatile long lastDrainMicros;
    /** A ring whose stop failed with requests out (their state unknown), for {@link #backendLost}. */
    private String stopUnknown;
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
        this.fe = VhostUserFrontend.connect(id, options.socket(), options.replyTimeoutMs());
        this.offeredBackendFeatures = fe.backendFeatures();
        this.calls = new EventFd[backendQueues];
        this.callRegs = new DeviceEventLoop.Registration[backendQueues];
        try {
            long missing = VirtioMmio.TRANSPORT_FEATURES & ~fe.backendFeatures();
            if (missing != 0) {
                throw new VhostUserException(who() + ": the back-end lacks the ring features 0x"
                        + Long.toHexString(missing) + " (VERSION_1, EVENT_IDX, INDIRECT_DESC) the transport offers");
            }
            if (backendQueues > fe.queueNum()) {
                throw new VhostUserException(who() + ": " + backendQueues + " queues asked for; the back-end serves "
                        + fe.queueNum());
            }
            checkBackend(fe);
            for (int i = 0; i < backendQueues; i++) {
                calls[i] = new EventFd(Linux.EFD_NONBLOCK);
                int q = i;
                callRegs[i] = loop.add(calls[i], () -> routeCallToInterrupt(q));
            }
            this.reconnectTimer = loop.timer(this::reconnect);
            loop.call(() -> {
                watch();
                return null;
            });
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

    // ---- the rings (loop thread) ----

    @Override
    public void start(VirtioContext context) {
        this.ctx = context;
        if (running) {
            return;
        }
        if (fe == null) {
            reconnectNow();
            if (fe == null) {
                reconnectDelayMs = RECONNECT_FIRST_MS;
                reconnectTimer.arm(reconnectDelayMs * 1_000_000L);
                throw new IllegalStateException(who() + ": the vhost-user back-end at " + options.socket()
                        + " is not connected (" + (lostReason != null ? lostReason : reconnectError)
                        + "); the device serves nothing until it reconnects");
            }
        }
        try {
            startBackend();
        } catch (VhostUserException e) {
            backendLost(e.getMessage());
            throw new UncheckedIOException(who() + ": starting the back-end failed: " + e.getMessage(), e);
        }
    }

    private void startBackend() throws VhostUserException {
        VhostUserFrontend f = fe;
        f.setFeatures(ctx.features() & offeredBackendFeatures, log != null);
        f.setMemTable(memory);
        if (log != null) {
            f.setLogBase(log.fd(), log.size());
        }
        beforeRingsStart(f, ctx);
        for (int i = 0; i < backendQueues; i++) {
            SplitVirtqueue ring = ctx.queue(i);
            if (ring != null) {
                f.startRing(i, ring.size(), ring.lastAvailIdx(), addresses(ring), log != null, ctx.kickFd(i).fd(),
                        calls[i].fd());
            }
        }
        f.setStatus(Virtio.STATUS_ACKNOWLEDGE | Virtio.STATUS_DRIVER | Virtio.STATUS_FEATURES_OK
                | Virtio.STATUS_DRIVER_OK);
        running = true;
        afterStart(f, ctx);
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

    /** The ring's areas in this process's address space (what the back-end maps), and the used ring's GPA. */
    VhostUserFrontend.RingAddresses addresses(SplitVirtqueue ring) {
        QueueConfig c = ring.config();
        int n = c.size();
        return new VhostUserFrontend.RingAddresses(
                memory.hostAddress(dev.ferry.core.memory.Gpa.of(c.descGpa()), SplitRing.descTableBytes(n)),
                memory.hostAddress(dev.ferry.core.memory.Gpa.of(c.usedGpa()), SplitRing.usedBytes(n)),
                memory.hostAddress(dev.ferry.core.memory.Gpa.of(c.availGpa()), SplitRing.availBytes(n)),
                c.usedGpa());
    }

    /**
     * The back-end signalled queue {@code queue}'s call eventfd: raise the used-buffer interrupt.
     * On KVM this eventfd would be an irqfd on the device's GSI and never reach this loop (not
     * built: there is no in-kernel irqchip wiring yet, see docs/devices.md "Not built yet").
     */
    private void routeCallToInterrupt(int queue) {
        VirtioContext c = ctx;
        if (c != null) {
            interrupts++;
            c.interruptQueue(queue);
        }
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
        if (!running) {
            if (fe == null && log != null && ctx != null) {
                throw new IllegalStateException(who() + ": the vhost-user back-end at " + options.socket()
                        + " is gone (" + lostReason + "); its rings' state is unknown");
            }
            return;
        }
        running = false;
        String problem = stopRings();
        if (problem != null) {
            backendLost(problem);
            throw new IllegalStateException(who() + ": stopping the vhost-user back-end at " + options.socket()
                    + " failed: " + problem);
        }
    }

    /** GET_VRING_BASE for every ready ring into the transport's rings; the first problem, or null. */
    private String stopRings() {
        String problem = null;
        for (int i = 0; i < backendQueues; i++) {
            SplitVirtqueue ring = ctx == null ? null : ctx.queue(i);
            if (ring == null) {
                continue;
            }
            int used = usedIdxInRam(ring);
            if (problem != null) {
                ring.restore(used, used);
                continue;
            }
            try {
                if (completesOnItsOwn(i)) {
                    used = settle(i, ring, used);
                }
                int base = fe.stopRing(i);
                int inUse = (base - used) & 0xffff;
                if (inUse > ring.size()) {
                    problem = "GET_VRING_BASE for ring " + i + " returned 0x" + Integer.toHexString(base)
                            + " while the used index in guest memory is 0x" + Integer.toHexString(used)
                            + ": more requests in use than the ring holds (" + ring.size() + ")";
                    ring.restore(used, used);
                } else {
                    if (completesOnItsOwn(i)) {
                        used = awaitDrained(i, ring, base, used);
                    }
                    if (used != base && completesOnItsOwn(i)) {
                        problem = "ring " + i + ": " + ((base - used) & 0xffff) + " requests the back-end took "
                                + "were still not completed " + drainTimeoutMs() + " ms after GET_VRING_BASE";
                    }
                    ring.restore(base, used);
                }
            } catch (VhostUserException e) {
                problem = "stopping ring " + i + " (SET_VRING_ENABLE 0, GET_VRING_BASE): " + e.getMessage();
                int avail = RingDrain.availIdx(ctx, ring);
                if (used != avail && completesOnItsOwn(i) && !resubmitSafe()) {
                    stopUnknown = "ring " + i + " had " + ((avail - used) & 0xffff) + " requests out";
                }
                ring.restore(used, used); // QEMU: without the back-end's index, resume at the used index
            }
        }
        for (int i = 0; i < backendQueues && ctx != null; i++) {
            // completions the drain brought: their interrupt is part of stopping (the transport keeps it pending)
            if (calls[i] != null && calls[i].consumeOrZero() != 0 && ctx.queue(i) != null) {
                interrupts++;
                ctx.interruptQueue(i);
            }
        }
        return problem;
    }

    private int settle(int index, SplitVirtqueue ring, int used) {
        return RingDrain.settle(ctx, index, ring, used, drainTimeoutMs());
    }

    private int awaitDrained(int index, SplitVirtqueue ring, int base, int used) {
        long t0 = System.nanoTime();
        int u = RingDrain.awaitUsed(ctx, who(), index, ring, base, used, options.replyTimeoutMs(), drainTimeoutMs());
        lastDrainMicros = (System.nanoTime() - t0) / 1000;
        return u;
    }

    long drainTimeoutMs() {
        return DRAIN_REPLY_TIMEOUTS * options.replyTimeoutMs();
    }

    int usedIdxInRam(SplitVirtqueue ring) {
        return RingDrain.usedIdx(ctx, ring);
    }

    @Override
    public void reset() {
        if (running && fe != null) {
            running = false;
            String problem = stopRings();
            if (problem != null) {
                backendLost(problem);
            } else {
                try {
                    fe.setStatus(0);
                } catch (VhostUserException e) {
                    backendLost(e.getMessage());
                }
            }
        }
        running = false;
        ctx = null;
    }

    // ---- the back-end's connection (loop thread) ----

    /** Watches the socket: between requests the back-end has nothing to say, so readiness means it hung up or broke the protocol. */
    private void watch() {
        VhostUserFrontend f = fe;
        hangupReg = loop.addFd(f.socketFd(), Linux.EPOLLIN | Linux.EPOLLRDHUP, ev -> {
            if (fe == f) {
                backendLost((ev & (Linux.EPOLLHUP | Linux.EPOLLRDHUP | Linux.EPOLLERR)) != 0 ? "the back-end hung up"
                        : "the back-end sent a message nobody asked for");
            }
        });
    }

    /**
     * The back-end is gone or broke the protocol: the connection closes, the rings fall back to
     * the used index in guest RAM (with an in-flight region the back-end's successor resubmits
     * what was in flight), and a started device reconnects with backoff.
     */
    protected void backendLost(String reason) {
        if (fe == null) {
            return;
        }
        LOG.warn("{}: vhost-user back-end at {}: {}; {}", who(), options.socket(), reason,
                ctx != null ? "reconnecting" : "the device reconnects when it starts");
        lostReason = reason;
        if (hangupReg != null) {
            closeQuietly(hangupReg);
            hangupReg = null;
        }
        VhostUserFrontend f = fe;
        fe = null;
        String unknown = stopUnknown;
        stopUnknown = null;
        if (running && ctx != null) {
            for (int i = 0; i < backendQueues; i++) {
                SplitVirtqueue ring = ctx.queue(i);
                if (ring != null) {
                    int used = usedIdxInRam(ring);
                    int avail = RingDrain.availIdx(ctx, ring);
                    if (used != avail && completesOnItsOwn(i) && !resubmitSafe()) {
                        unknown = "ring " + i + " had " + ((avail - used) & 0xffff) + " requests out";
                    }
                    ring.restore(used, used);
                }
            }
        }
        running = false;
        f.close();
        if (unknown != null && ctx != null) {
            // Resubmitting from the used index could run a completed write again over a newer one.
            VirtioContext c = ctx;
            ctx = null;
            c.deviceError(who() + ": the vhost-user back-end was lost (" + reason + ") while " + unknown
                    + " and it keeps no in-flight region: their state is unknown");
        }
        reconnectDelayMs = RECONNECT_FIRST_MS;
        reconnectTimer.arm(reconnectDelayMs * 1_000_000L);
    }

    /**
     * Whether the requests a lost back-end had taken may be offered again from the used index:
     * blk only with an in-flight region (the new back-end knows which completed); otherwise the
     * device needs a reset ({@link VirtioContext#deviceError}) and the driver resubmits.
     */
    protected boolean resubmitSafe() {
        return true;
    }

    /** Timer: one reconnect attempt; the next after twice the delay (at most {@link #RECONNECT_MAX_MS}). */
    private void reconnect() {
        if (fe != null) {
            return;
        }
        reconnectNow();
        if (fe == null) {
            reconnectDelayMs = Math.min(reconnectDelayMs * 2, RECONNECT_MAX_MS);
            reconnectTimer.arm(reconnectDelayMs * 1_000_000L);
        } else if (ctx != null && !running) {
            try {
                startBackend();
                LOG.info("{}: reconnected to {}; rings restarted", who(), options.socket());
            } catch (VhostUserException e) {
                backendLost(e.getMessage());
            }
        }
    }

    /** Connects once and checks the back-end offers what the guest took; on failure {@code fe} stays null. */
    private void reconnectNow() {
        VhostUserFrontend f;
        try {
            f = VhostUserFrontend.connect(id, options.socket(), options.replyTimeoutMs());
        } catch (VhostUserException e) {
            reconnectError = e.getMessage();
            return;
        }
        long lacking = offeredBackendFeatures & ~f.backendFeatures();
        if (lacking != 0 || (log != null && !f.canLog())) {
            reconnectError = "the back-end at " + options.socket() + " now lacks features 0x" + Long.toHexString(lacking)
                    + (log != null && !f.canLog() ? " and logging" : "");
            f.close();
            return;
        }
        try {
            checkBackend(f);
        } catch (VhostUserException e) {
            reconnectError = e.getMessage();
            f.close();
            return;
        }
        fe = f;
        reconnects++;
        lostReason = null;
        reconnectError = null;
        watch();
        afterReconnect(f);
    }

    /** A new connection replaced a lost one (blk: the in-flight region goes to the new back-end). */
    protected void afterReconnect(VhostUserFrontend frontend) {
    }

    // ---- migration (the log itself: BackendLog) ----

    /** Pages the shared logs of finished migrations reported. Written on the loop thread. */
    volatile long loggedPagesBefore;

    /** SET_VRING_ADDR for every running ring, with or without the used-ring log flag. Loop thread. */
    void setLogFlag(boolean on) throws VhostUserException {
        for (int i = 0; i < backendQueues; i++) {
            SplitVirtqueue ring = ctx.queue(i);
            if (ring != null) {
                fe.setRingAddr(i, addresses(ring), on);
            }
        }
    }

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
        long n = DeviceStateTransfer.writeTo(out, fe, STATE_TIMEOUT_MS);
        if (n >= 0) {
            savedStateBytes = n;
        }
    }

    @Override
    public void load(LoadStream in, int version) throws IOException, MigrationException {
        long n = DeviceStateTransfer.readFrom(in, fe, who() + " (back-end at " + options.socket() + ")", STATE_TIMEOUT_MS);
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
        VhostUserFrontend f = fe;
        m.put("socket", options.socket().toString());
        m.put("connected", f != null);
        if (savedStateBytes >= 0 || loadedStateBytes >= 0) {
            m.put("device-state-saved-bytes", savedStateBytes);
            m.put("device-state-loaded-bytes", loadedStateBytes);
        }
        m.put("rings-running", running);
        m.put("backend-features", String.format("0x%x", offeredBackendFeatures));
        if (f != null) {
            m.put("protocol-features", String.format("0x%x", f.protocolFeatures()));
        }
        m.put("interrupts", interrupts);
        m.put("last-drain-us", lastDrainMicros);
        m.put("reconnects", reconnects);
        String lost = lostReason;
        if (lost != null) {
            m.put("lost", lost);
        }
        String re = reconnectError;
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
        return fe;
    }

    /** Runs {@code r} on the device's loop with the current front-end (tests: a request observer). */
    public void withFrontend(java.util.function.Consumer<VhostUserFrontend> r) {
        loop.call(() -> {
            if (fe != null) {
                r.accept(fe);
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
        if (reconnectTimer != null) {
            closeQuietly(reconnectTimer);
        }
        if (hangupReg != null) {
            closeQuietly(hangupReg);
            hangupReg = null;
        }
        for (int i = 0; i < backendQueues; i++) {
            if (callRegs[i] != null) {
                closeQuietly(callRegs[i]);
                callRegs[i] = null;
            }
            if (calls[i] != null) {
                calls[i].close();
                calls[i] = null;
            }
        }
        if (fe != null) {
            fe.close();
            fe = null;
        }
        if (log != null) {
            log.close();
            log = null;
        }
        closeDevice();
    }

    /** Device-specific resources (blk: the in-flight region). */
    protected void closeDevice() {
    }

    private static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception e) {
            LOG.debug("closing {} failed: {}", c, e.toString());
        }
    }
}
