package dev.ferry.vhostuser.backend;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.EventFd;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.VirtioDeviceModel;
import dev.ferry.virtio.queue.QueueConfig;
import dev.ferry.virtio.queue.SplitRing;
import dev.ferry.virtio.queue.SplitVirtqueue;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserChannel;
import dev.ferry.vhostuser.proto.VhostUserException;
import dev.ferry.vhostuser.proto.VhostUserMessage;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * What a device model served over vhost-user stands on: the front-end's mapped memory, its
 * vrings and the dirty log. Implements {@link VirtioContext} for an unchanged Ferry device model
 * ({@code VirtioBlk}): queues are {@link SplitVirtqueue}s over the mapped memory table; a
 * notification signals the ring's call eventfd when the ring asks for one; every write the model
 * makes through its {@link DeviceMemory} sets the log's bit (while LOG_ALL is on) before the used
 * index that publishes it.
 *
 * <h2>Stopping</h2>
 * Disabling a ring, stopping it (GET_VRING_BASE) and changing the memory table first
 * <em>drain</em> the model — {@link VirtioDeviceModel#quiesce}: every request in flight completes
 * to its used ring — and then restart it for the rings still served. So a disabled or stopped ring
 * sees no write after the reply, and GET_VRING_BASE's index has nothing popped and unfinished.
 *
 * <p>Loop thread only, except the write observer (any writing thread). Owns the memory table,
 * the logs, the inflight region and the rings' fds.
 */
final class DeviceRings implements VirtioContext {
    private static final Logger LOG = LoggerFactory.getLogger(DeviceRings.class);
    private final String name;
    private final VirtioDeviceModel model;
    private final DeviceEventLoop loop;
    private final Set<BackendFaults> faults;
    private final BackendStats stats;
    final Vring[] rings;
    private MemoryTable table = MemoryTable.empty();
    private long features;
    private boolean protocolFeatures;
    private VhostLog log;
    private final List<VhostLog> retiredLogs = new ArrayList<>();
    /** The log writes go to: the mapped log while LOG_ALL is negotiated, else null. Read by writers. */
    private volatile VhostLog activeLog;
    private InflightRegion inflight;
    /** The front-end's request channel (BACKEND_REQ), when it gave one. */
    private volatile VhostUserChannel backendRequests;
    private boolean modelRunning;
    private String deviceError;

    DeviceRings(String name, VirtioDeviceModel model, DeviceEventLoop loop, Set<BackendFaults> faults,
                BackendStats stats) {
        this.name = name;
        this.model = model;
        this.loop = loop;
        this.faults = faults;
        this.stats = stats;
        this.rings = new Vring[model.queueCount()];
        for (int i = 0; i < rings.length; i++) {
            rings[i] = new Vring(i);
        }
    }

    // ---- VirtioContext (what the model sees) ----

    @Override
    public DeviceMemory memory() {
        return table.device();
    }

    @Override
    public DeviceEventLoop loop() {
        return loop;
    }

    @Override
    public long features() {
        return features;
    }

    @Override
    public SplitVirtqueue queue(int index) {
        return queueEnabled(index) ? rings[index].queue : null;
    }

    @Override
    public boolean queueEnabled(int index) {
        return index >= 0 && index < rings.length && deviceError == null
                && (rings[index].enabled || faults.contains(BackendFaults.WRITE_AFTER_DISABLE));
    }

    @Override
    public void notifyQueue(int index) {
        Vring r = rings[index];
        SplitVirtqueue q = r.queue;
        if (q != null && q.shouldNotify() && r.call != null) {
            r.call.signal();
            stats.calls.incrementAndGet();
        }
    }

    /**
     * The channel to the front-end (SET_BACKEND_REQ_FD), replacing and closing the one before;
     * null closes it (session end). Loop thread.
     */
    void backendRequests(VhostUserChannel channel) {
        VhostUserChannel old = backendRequests;
        backendRequests = channel;
        if (old != null) {
            old.close();
        }
    }

    /**
     * The model's config changed (a disk grew): CONFIG_CHANGE_MSG to the front-end on its request
     * channel, without NEED_REPLY — a reply awaited here could deadlock against a front-end that
     * is itself waiting for this back-end's reply on the main socket. Without the channel the
     * front-end sees the change at its next GET_CONFIG. Any thread (the channel's send is
     * serialized).
     */
    @Override
    public void configChanged() {
        VhostUserChannel c = backendRequests;
        if (c == null) {
            LOG.info("{}: config changed; the front-end gave no request channel to tell it", name);
            return;
        }
        try {
            c.send(VhostUserMessage.request(VhostUser.BACKEND_CONFIG_CHANGE_MSG, false, new byte[0]));
            stats.configChanges.incrementAndGet();
        } catch (VhostUserException e) {
            LOG.warn("{}: telling the front-end its config changed failed: {}", name, e.getMessage());
        }
    }

    @Override
    public void deviceError(String reason) {
        if (deviceError == null) {
            LOG.warn("{}: the driver broke the virtio protocol: {}; the device needs a reset", name, reason);
            deviceError = reason;
            stats.lastDeviceError = reason;
            for (Vring r : rings) {
                if (r.err != null) {
                    r.err.signal();
                }
            }
        }
    }

    String deviceError() {
        return deviceError;
    }

    // ---- negotiation ----

    /** SET_FEATURES: {@code f} already checked against the offer; LOG_ALL turns the log on or off. */
    void setFeatures(long f, boolean logAll, boolean protocol) {
        this.features = f;
        this.protocolFeatures = protocol;
        this.activeLog = logAll ? log : null;
        if (logAll) {
            stats.logAllSeen = true;
        }
    }

    boolean anyStarted() {
        for (Vring r : rings) {
            if (r.started()) {
                return true;
            }
        }
        return false;
    }

    // ---- memory and log ----

    /** Replaces the memory table; {@code release} then closes what the old table alone held. */
    void replaceMemory(MemoryTable next, Runnable release) {
        drain();
        MemoryTable old = table;
        table = next;
        next.observeWrites(this::written);
        old.observeWrites(null);
        for (Vring r : rings) {
            if (r.started()) {
                SplitVirtqueue q = r.queue;
                r.queue = null;
                try {
                    enableQueue(r, q.lastAvailIdx(), q.usedIdx());
                } catch (VhostUserException | RuntimeException e) {
                    stopRegistration(r);
                    r.base = q.lastAvailIdx();
                    deviceError("vq" + r.index + " is not in the new memory table: " + e.getMessage());
                }
            }
        }
        release.run();
        resumeIfAny();
    }

    MemoryTable table() {
        return table;
    }

    /** SET_LOG_BASE: the new log takes over at once; the old one is closed with the session. */
    void setLog(VhostLog l, boolean logAll) {
        if (log != null) {
            retiredLogs.add(log);
        }
        log = l;
        activeLog = logAll ? l : null;
        stats.logBases.incrementAndGet();
    }

    VhostLog log() {
        return log;
    }

    /** The write observer: any thread writing guest memory through the model's view. */
    private void written(long gpa, long length) {
        VhostLog l = activeLog;
        if (l == null) {
            return;
        }
        if (faults.contains(BackendFaults.LOG_OMIT) && !inUsedRing(gpa, length)) {
            return;
        }
        if (l.mark(gpa, length)) {
            stats.loggedWrites.incrementAndGet();
        } else {
            stats.unloggable.incrementAndGet();
        }
    }

    private boolean inUsedRing(long gpa, long length) {
        for (Vring r : rings) {
            if (r.usedBytes > 0 && gpa - r.usedGpa >= 0 && gpa - r.usedGpa + length <= r.usedBytes) {
                return true;
            }
        }
        return false;
    }

    void setInflight(InflightRegion region) {
        if (inflight != null && inflight != region) {
            inflight.close();
        }
        inflight = region;
        for (int q = 0; q < Math.min(region.queues(), rings.length); q++) {
            int left = region.inflightCount(q);
            if (left > 0) {
                LOG.info("{}: vq{}: {} request(s) were in flight when the previous back-end stopped; they are "
                        + "resubmitted when the ring starts", name, q, left);
            }
            if (rings[q].started()) {
                rings[q].queue.observe(region.tracker(q, rings[q].num));
            }
        }
    }

    InflightRegion inflight() {
        return inflight;
    }

    // ---- rings ----

    /** SET_VRING_KICK on a stopped ring: builds its queue on the mapped memory and serves it. */
    void start(Vring r, EventFd kick) throws VhostUserException {
        if (r.num == 0 || r.addr == null) {
            kick.close();
            throw new VhostUserException("SET_VRING_KICK vq" + r.index + " before its "
                    + (r.num == 0 ? "size (SET_VRING_NUM)" : "addresses (SET_VRING_ADDR)"));
        }
        try {
            int usedIdx = enableQueue(r, r.base, -1);
            LOG.debug("{}: vq{} started at avail {} used {}", name, r.index, r.base, usedIdx);
        } catch (VhostUserException | RuntimeException e) {
            kick.close();
            throw e instanceof VhostUserException v ? v : new VhostUserException("vq" + r.index + ": " + e.getMessage(), e);
        }
        r.kick = kick;
        r.kickRegistration = loop.add(kick, () -> kicked(r.index));
        if (!protocolFeatures) {
            r.enabled = true;
        }
        resumeIfAny();
    }

    /** A new kick fd for a started ring (the old one is closed). */
    void replaceKick(Vring r, EventFd kick) {
        stopRegistration(r);
        r.kick = kick;
        r.kickRegistration = loop.add(kick, () -> kicked(r.index));
        lookAt(r.index);
    }

    /**
     * Builds the ring's queue over the current table at {@code lastAvail}; {@code usedIdx} −1
     * reads it from the used ring (a ring starting afresh or on a migration destination).
     */
    private int enableQueue(Vring r, int lastAvail, int usedIdx) throws VhostUserException {
        long desc = table.toGpa(r.addr.desc(), SplitRing.descTableBytes(r.num), "vq" + r.index + " descriptor table");
        long avail = table.toGpa(r.addr.avail(), SplitRing.availBytes(r.num), "vq" + r.index + " available ring");
        long used = table.toGpa(r.addr.used(), SplitRing.usedBytes(r.num), "vq" + r.index + " used ring");
        long ringFeatures = features & (Virtio.bit(SplitRing.F_EVENT_IDX) | Virtio.bit(SplitRing.F_INDIRECT_DESC));
        SplitVirtqueue q = SplitVirtqueue.enable(table.device(), name + " vq" + r.index, r.index,
                new QueueConfig(r.num, desc, avail, used, ringFeatures));
        int u = usedIdx >= 0 ? usedIdx : table.device().readU16(SplitRing.usedIdx(used));
        q.restore(lastAvail, u);
        if (inflight != null && usedIdx < 0 && r.index < inflight.queues()) {
            int[] heads = inflight.pendingHeads(r.index, u, r.num);
            if (heads.length > 0) {
                LOG.info("{}: vq{}: resubmitting {} request(s) the previous back-end left in flight (heads {})", name,
                        r.index, heads.length, java.util.Arrays.toString(heads));
                q.resubmit(heads);
                stats.resubmitted.addAndGet(heads.length);
            }
        }
        if (inflight != null) {
            q.observe(inflight.tracker(r.index, r.num));
        }
        r.usedGpa = used;
        r.usedBytes = SplitRing.usedBytes(r.num);
        r.queue = q;
        return u;
    }

    /** GET_VRING_BASE: drains, stops the ring and returns the index to resume from. */
    int stop(Vring r) {
        if (!r.started()) {
            return r.base;
        }
        drain();
        r.base = r.queue.lastAvailIdx();
        stopRegistration(r);
        r.queue = null;
        r.usedBytes = 0;
        resumeIfAny();
        return r.base;
    }

    private void stopRegistration(Vring r) {
        if (r.kickRegistration != null) {
            r.kickRegistration.close();
            r.kickRegistration = null;
        }
        Vring.closeQuietly(r.kick);
        r.kick = null;
    }

    /** SET_VRING_ENABLE. Disabling drains first: no write reaches the ring after the reply. */
    void enable(Vring r, boolean on) {
        if (on == r.enabled) {
            return;
        }
        if (!on && !faults.contains(BackendFaults.WRITE_AFTER_DISABLE)) {
            drain();
            r.enabled = false;
            resumeIfAny();
            return;
        }
        r.enabled = on;
        if (on && r.started()) {
            if (modelRunning) {
                lookAt(r.index);
            } else {
                resumeIfAny();
            }
        }
    }

    /** A look at a ring without a kick (it started, was enabled, got a new kick fd); none with {@link BackendFaults#KICK_ONLY}. */
    private void lookAt(int index) {
        if (!faults.contains(BackendFaults.KICK_ONLY)) {
            kicked(index);
        }
    }

    private void kicked(int index) {
        if (!modelRunning) {
            return;
        }
        stats.kicks.incrementAndGet();
        try {
            model.queueNotified(index);
        } catch (RuntimeException e) {
            deviceError("vq" + index + ": " + e.getMessage());
        }
    }

    /** Every request in flight completes; the model writes nothing more until {@link #resumeIfAny}. */
    void drain() {
        if (modelRunning) {
            modelRunning = false;
            model.quiesce();
        }
    }

    /** Starts the model again if any ring is served, and lets it look at every ring. */
    void resumeIfAny() {
        if (modelRunning || deviceError != null) {
            return;
        }
        boolean any = false;
        for (Vring r : rings) {
            any |= r.started() && (r.enabled || faults.contains(BackendFaults.WRITE_AFTER_DISABLE));
        }
        if (!any) {
            return;
        }
        model.start(this);
        modelRunning = true;
        for (Vring r : rings) {
            if (r.started()) {
                lookAt(r.index);
            }
        }
    }

    /** RESET_DEVICE / RESET_OWNER and the session's end: the device as new, rings forgotten. */
    void reset() {
        drain();
        model.reset();
        for (Vring r : rings) {
            r.clear();
            r.usedBytes = 0;
        }
        deviceError = null;
        features = 0;
        activeLog = null;
    }

    /** Session end: reset, then unmap and close everything this connection brought. */
    void close() {
        reset();
        table.observeWrites(null);
        table.close();
        table = MemoryTable.empty();
        activeLog = null;
        if (log != null) {
            log.close();
            log = null;
        }
        retiredLogs.forEach(VhostLog::close);
        retiredLogs.clear();
        if (inflight != null) {
            inflight.close();
            inflight = null;
        }
    }

    /** Regions dropped from the table, closed once the model is off them (it is drained here). */
    static Runnable closing(List<GuestRegion> regions) {
        return () -> regions.forEach(GuestRegion::close);
    }
}
