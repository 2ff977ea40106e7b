package dev.ferry.migration;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.migration.LiveSaveHandler;
import dev.ferry.core.migration.LoadContext;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveEntry;
import dev.ferry.core.migration.StreamText;
import dev.ferry.migration.ram.RamMigration;
import dev.ferry.migration.stream.ChannelLoadStream;
import dev.ferry.migration.stream.ChannelSaveStream;
import dev.ferry.migration.stream.BandwidthLimiter;
import dev.ferry.migration.stream.Qevm;
import dev.ferry.migration.transport.MigrationConnection;
import dev.ferry.migration.transport.MigrationListener;
import dev.ferry.migration.transport.MigrationTransports;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.EOFException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeoutException;

/**
 * One incoming migration: QEMU's {@code process_incoming_migration}. The VM waits in
 * {@code inmigrate}; the incoming thread accepts the connection, checks the header, calls every
 * live handler's load setup, then reads sections until EOF, checking each footer, and asks every
 * live handler to accept what it loaded ({@code loadComplete}: a VFIO device validates its state
 * there) before anything is answered or started. On success it starts the VM (or leaves it
 * paused) and sends SHUT(0) on the return path; on any error it says
 * what was wrong in {@link MigrationInfo#errorDesc()}, sends SHUT(1) and leaves the VM stopped.
 *
 * <p>The input is hostile: magic, version, section types, section ids, idstrs, versions,
 * footers and lengths are all checked; nothing read from the stream sizes an allocation beyond
 * fixed caps.
 */
public final class DestinationMigration implements LoadContext {
    private static final Logger LOG = LoggerFactory.getLogger(DestinationMigration.class);
    private final Machine machine;
    private final MigrationTransports transports;
    private final MigrationCapabilities caps;
    private final MigrationEventSink events;
    private volatile boolean autostart;
    private final RamMigration ram;
    private volatile MigrationStatus status = MigrationStatus.NONE;
    private volatile String errorDesc;
    private volatile MigrationListener listener;
    private volatile MigrationConnection connection;
    private volatile long startNanos;
    private volatile long endNanos;
    private volatile Long memoryDigestAtLoad;
    private volatile boolean digestAtLoad;
    /** When the first END section arrived: the source had stopped the VM (0 until then). */
    private volatile long switchoverSeenNanos;
    private volatile long digestNanos;
    private volatile Runnable beforeStart = () -> { };
    private final Object rpLock = new Object();
    private ChannelSaveStream rpOut;
    private int ackPending;
    private boolean ackSent;
    private Thread thread;
    private volatile boolean closing;
    private volatile int multifdChannels = 2;
    /** The first multifd channel error (it closes the main connection to wake the incoming thread). */
    private volatile String multifdFailure;
    /** How long, once the first connection is in, the multifd channels may take to connect. */
    static final long MULTIFD_CONNECT_MS = 10_000;
    /** Registered with the machine while the thread runs, so closing the machine ends us first. */
    private final AutoCloseable activity = this::shutdown;

    /**
     * QEMU's {@code multifd-channels} on the destination: how many RAM channels to accept when
     * the multifd capability is on (must equal the source's). Before {@link #listen}.
     */
    public void setMultifdChannels(int n) {
        if (n < 1 || n > 255) {
            throw new IllegalArgumentException("multifd-channels must be in 1..255, got " + n);
        }
        this.multifdChannels = n;
    }

    /** QEMU's autostart: whether the VM runs once the state is loaded (cont during inmigrate sets it). */
    public void setAutostart(boolean v) {
        this.autostart = v;
    }

    public DestinationMigration(Machine machine, MigrationTransports transports, MigrationCapabilities caps,
                                MigrationEventSink events, boolean autostart) {
        this.machine = machine;
        this.transports = transports;
        this.caps = caps;
        this.events = events;
        this.autostart = autostart;
        this.ram = RamMigration.attach(machine);
    }

    /**
     * Binds {@code uri} and starts waiting for the source on the incoming thread. Returns the
     * bound URI (the real port when port 0 was asked).
     */
    public synchronized String listen(String uri) throws IOException {
        if (status != MigrationStatus.NONE) {
            throw new IllegalStateException("incoming migration already started");
        }
        if (caps.multifd() && uri.startsWith("file:")) {
            throw new IOException("multifd needs a socket migration (tcp: or unix:), not " + uri);
        }
        MigrationListener l = transports.listen(uri);
        if (caps.multifd()) {
            try {
                l.expectConnections(1 + multifdChannels);
            } catch (IOException | RuntimeException e) {
                l.close();
                throw e;
            }
        }
        machine.setRunState(RunState.INMIGRATE);
        listener = l;
        machine.addActivity(activity);
        setStatus(MigrationStatus.SETUP);
        thread = new Thread(this::run, "ferry-incoming");
        thread.setDaemon(true);
        thread.start();
        return listener.boundUri();
    }

    public MigrationStatus status() {
        return status;
    }

    public String errorDesc() {
        return errorDesc;
    }

    /**
     * Asks for a digest of guest memory when loading finished, before the VM starts — for tests
     * and the demo's verification. It runs inside the downtime window, so it is off by default.
     */
    public void digestMemoryAtLoad(boolean v) {
        this.digestAtLoad = v;
    }

    /**
     * How the digest at load is taken (default: all of guest memory); a guest that declared some
     * memory free, whose contents a migration need not carry, digests without it.
     */
    public void memoryDigest(java.util.function.LongSupplier digest) {
        this.digest = digest;
    }

    private volatile java.util.function.LongSupplier digest;

    /** The digest taken when loading finished (null unless asked for and the load succeeded). */
    public Long memoryDigestAtLoad() {
        return memoryDigestAtLoad;
    }

    /** How long the digest at load took (it lies inside the downtime window). */
    public long digestNanos() {
        return digestNanos;
    }

    /**
     * Runs {@code hook} on the incoming thread once the state is loaded and before the VM starts
     * (while nothing runs): to record what was loaded. A hook that throws fails the migration.
     */
    public void beforeStart(Runnable hook) {
        this.beforeStart = hook;
    }

    public MigrationInfo info() {
        long end = endNanos != 0 ? endNanos : System.nanoTime();
        long total = startNanos == 0 ? 0 : (end - startNanos) / 1_000_000;
        var rc = ram.counters();
        MigrationInfo.Ram r = new MigrationInfo.Ram(rc.transferred(), 0, machine.memory().totalSize(), 0,
                rc.normal(), rc.normalBytes(), 0, 0, 0, rc.pageSize(), 0, 0, 0, rc.multifdBytes());
        return new MigrationInfo(status, total, 0, 0, 0, 0, errorDesc, List.of(), r, List.of(), null);
    }

    public MigrationStatus await(Duration timeout) throws InterruptedException, TimeoutException {
        Thread t;
        synchronized (this) {
            t = thread;
        }
        if (t != null) {
            t.join(timeout.toMillis());
            if (t.isAlive()) {
                throw new TimeoutException("incoming migration still " + status.qapiName() + " after " + timeout);
            }
        }
        return status;
    }

    /** Aborts the incoming migration (e.g. the VMM quits); the status ends as failed. */
    public void abort() {
        closing = true;
        MigrationListener l = listener;
        if (l != null) {
            l.close();
        }
        MigrationConnection c = connection;
        if (c != null) {
            c.close();
        }
    }

    private void shutdown() throws InterruptedException {
        abort();
        Thread t;
        synchronized (this) {
            t = thread;
        }
        if (t != null && t != Thread.currentThread()) {
            t.join(30_000);
        }
    }

    private synchronized void setStatus(MigrationStatus s) {
        if (status == s) {
            return;
        }
        if (!status.canBecome(s)) {
            throw new IllegalStateException("incoming migration status " + status.qapiName() + " → " + s.qapiName());
        }
        status = s;
        events.status(s);
    }

    @Override
    public void approveSwitchover() {
        synchronized (rpLock) {
            if (ackPending > 0) {
                ackPending--;
            }
            if (ackPending == 0) {
                sendSwitchoverAck();
            }
        }
    }

    @Override
    public boolean switchoverAck() {
        return caps.switchoverAck();
    }

    private boolean rpOutOpen() {
        synchronized (rpLock) {
            return rpOut != null;
        }
    }

    /** One heartbeat on the return path; false once it is closed (the heartbeat thread then ends). */
    private boolean sendHeartbeat() throws IOException {
        synchronized (rpLock) {
            if (rpOut == null) {
                return false;
            }
            rpOut.putBe16(ReturnPath.MSG_PONG);
            rpOut.putBe16(4);
            rpOut.putBe32(ReturnPath.HEARTBEAT);
            rpOut.flush();
            return true;
        }
    }

    private void sendSwitchoverAck() {
        if (ackSent || rpOut == null) {
            return;
        }
        ackSent = true;
        try {
            rpOut.putBe16(ReturnPath.MSG_SWITCHOVER_ACK);
            rpOut.putBe16(0);
            rpOut.flush();
        } catch (IOException e) {
            LOG.warn("sending switchover-ack failed: {}", e.toString());
        }
    }

    private void run() {
        List<LiveSaveHandler> setupDone = new ArrayList<>();
        String failure = null;
        try {
            ChannelLoadStream in;
            if (caps.multifd()) {
                try {
                    in = acceptWithMultifd();
                } finally {
                    listener.close();
                }
            } else {
                // The listener stays open (closing whatever else connects) until the load ends, so
                // that a source with multifd on meets a refusal this side can count and explain.
                in = acceptOne();
            }
            try (in) {
                load(in, setupDone);
            }
        } catch (MigrationException e) {
            failure = e.getMessage();
        } catch (EOFException e) {
            failure = e.getMessage() + " without its end (the source stopped sending: it failed, was cancelled or died)";
            int refused = listener.refusedConnections();
            if (refused > 0 && !caps.multifd()) {
                failure += "; it had opened " + refused + " more connection(s), refused here: multifd is on at the source"
                        + " only? Turn the multifd capability on here too, with the same multifd-channels";
            }
        } catch (IOException e) {
            failure = closing ? "incoming migration aborted" : "reading the migration stream failed: " + e.getMessage();
        } catch (RuntimeException e) {
            LOG.warn("incoming migration failed", e);
            failure = "internal error: " + e;
        }
        String channelFailure = multifdFailure;
        if (failure != null && channelFailure != null && !closing) {
            failure = channelFailure; // the cause, not the main connection it closed
        }
        finish(failure, setupDone);
    }

    private ChannelLoadStream acceptOne() throws IOException, MigrationException {
        MigrationConnection conn = listener.accept(Duration.ofDays(365));
        connection = conn;
        startNanos = System.nanoTime();
        ChannelLoadStream in = new ChannelLoadStream(conn);
        try {
            checkMagic(in.getBe32());
        } catch (IOException | MigrationException | RuntimeException e) {
            in.close();
            throw e;
        }
        return in;
    }

    /**
     * With multifd: accepts the main channel and {@code multifd-channels} RAM channels, told apart
     * by their first bytes (QEVM's magic or a multifd opening), in whatever order they come; the
     * RAM channels start with the RAM handler's load setup.
     */
    private ChannelLoadStream acceptWithMultifd() throws IOException, MigrationException {
        List<dev.ferry.migration.ram.MultifdReceive.Incoming> channels = new ArrayList<>();
        ChannelLoadStream main = null;
        long deadline = 0;
        boolean handedOver = false;
        try {
            while (main == null || channels.size() < multifdChannels) {
                Duration wait = deadline == 0 ? Duration.ofDays(365)
                        : Duration.ofNanos(Math.max(1, deadline - System.nanoTime()));
                MigrationConnection c;
                try {
                    c = listener.accept(wait);
                } catch (java.net.SocketTimeoutException e) {
                    throw new MigrationException("multifd: " + channels.size() + " of " + multifdChannels
                            + " RAM channels and " + (main == null ? "no" : "the") + " main channel connected within "
                            + MULTIFD_CONNECT_MS + " ms; the multifd capability and multifd-channels must be the same"
                            + " at both ends");
                }
                if (deadline == 0) {
                    deadline = System.nanoTime() + MULTIFD_CONNECT_MS * 1_000_000;
                    startNanos = System.nanoTime();
                }
                ChannelLoadStream in = new ChannelLoadStream(c);
                int magic;
                try {
                    magic = in.getBe32();
                    if (dev.ferry.migration.ram.MultifdReceive.isChannelMagic(magic)) {
                        var next = dev.ferry.migration.ram.MultifdReceive.readOpening(c, in);
                        channels.add(next);
                        dev.ferry.migration.ram.MultifdReceive.checkSet(channels.subList(0, channels.size() - 1), next,
                                multifdChannels);
                        continue;
                    }
                    if (main != null) {
                        throw new MigrationException(String.format("a second main channel (magic 0x%08x) connected", magic));
                    }
                    checkMagic(magic);
                } catch (IOException | MigrationException | RuntimeException e) {
                    if (!channels.isEmpty() && channels.get(channels.size() - 1).connection() == c) {
                        channels.remove(channels.size() - 1).close();
                    } else {
                        in.close();
                        c.close();
                    }
                    throw e;
                }
                main = in;
                connection = c;
            }
            ram.prepareMultifd(channels, this::multifdFailed);
            handedOver = true;
            return main;
        } finally {
            if (!handedOver) {
                channels.forEach(dev.ferry.migration.ram.MultifdReceive.Incoming::close);
                if (main != null) {
                    main.close();
                }
            }
        }
    }

    /** A channel thread: the first multifd error; the incoming thread wakes from its read and reports it. */
    private void multifdFailed(String why) {
        multifdFailure = why;
        MigrationConnection c = connection;
        if (c != null) {
            c.close();
        }
    }

    private static void checkMagic(int magic) throws MigrationException {
        if (magic != Qevm.FILE_MAGIC) {
            throw new MigrationException(String.format("not a migration stream: magic 0x%08x, expected 0x%08x (QEVM)",
                    magic, Qevm.FILE_MAGIC));
        }
    }

    /** Reads the stream after its magic. */
    private void load(ChannelLoadStream in, List<LiveSaveHandler> setupDone) throws IOException, MigrationException {
        int version = in.getBe32();
        if (version != Qevm.FILE_VERSION) {
            throw new MigrationException("unsupported migration stream version " + version + " (expected 3)");
        }
        List<SaveEntry> entries = machine.migration().entries();
        synchronized (rpLock) {
            for (SaveEntry e : entries) {
                if (e instanceof SaveEntry.Live live && caps.switchoverAck() && live.handler().switchoverAckNeeded()) {
                    ackPending++;
                }
            }
        }
        for (SaveEntry e : entries) {
            if (e instanceof SaveEntry.Live live) {
                setupDone.add(live.handler());
                live.handler().loadSetup(this);
            }
        }
        setStatus(MigrationStatus.ACTIVE);
        Map<Integer, SaveEntry> sections = new HashMap<>();
        Map<Integer, Integer> versions = new HashMap<>();
        java.util.Set<SaveEntry> complete = new java.util.HashSet<>();
        while (true) {
            long offset = in.bytesRead();
            int type = in.getU8();
            switch (type) {
                case Qevm.EOF -> {
                    requireComplete(entries, complete);
                    readVmdesc(in);
                    // Every participant accepts what it loaded before anyone hears "done".
                    for (LiveSaveHandler h : setupDone) {
                        h.loadComplete();
                    }
                    return;
                }
                case Qevm.CONFIGURATION -> {
                    int len = in.getBe32();
                    if (len < 0 || len > Qevm.MAX_CONFIGURATION_LENGTH) {
                        throw new MigrationException("configuration section of " + (len & 0xffffffffL) + " bytes");
                    }
                    in.skip(len);
                }
                case Qevm.SECTION_START, Qevm.SECTION_FULL -> {
                    int id = in.getBe32();
                    int n = in.getU8();
                    byte[] name = new byte[n];
                    in.getBytes(name, 0, n);
                    String idstr = new String(name, StandardCharsets.UTF_8);
                    int instance = in.getBe32();
                    int ver = in.getBe32();
                    SaveEntry e = find(entries, idstr, name, instance);
                    idstr = e.idstr(); // ours from here on: the stream's bytes never reach a message
                    if (ver > e.version() || ver < 1) {
                        throw new MigrationException("section '" + idstr + "' instance " + instance + ": stream version "
                                + ver + ", this VM supports up to " + e.version());
                    }
                    if (type == Qevm.SECTION_START) {
                        if (!(e instanceof SaveEntry.Live)) {
                            throw new MigrationException("section '" + idstr + "' is not iterable but came as SECTION_START");
                        }
                        if (sections.containsKey(id)) {
                            throw new MigrationException("section id " + id + " started twice");
                        }
                        sections.put(id, e);
                        versions.put(id, ver);
                    }
                    loadSection(e, in, ver);
                    footer(in, id, idstr);
                    if (type == Qevm.SECTION_FULL) {
                        complete.add(e);
                    }
                }
                case Qevm.SECTION_PART, Qevm.SECTION_END -> {
                    int id = in.getBe32();
                    SaveEntry e = sections.get(id);
                    if (e == null) {
                        throw new MigrationException(Qevm.sectionTypeName(type) + " for unknown section id " + id);
                    }
                    if (complete.contains(e)) {
                        throw new MigrationException(Qevm.sectionTypeName(type) + " for section '" + e.idstr()
                                + "' after its END");
                    }
                    if (type == Qevm.SECTION_END && switchoverSeenNanos == 0) {
                        switchoverSeenNanos = System.nanoTime();
                    }
                    loadSection(e, in, versions.get(id));
                    footer(in, id, e.idstr());
                    if (type == Qevm.SECTION_END) {
                        complete.add(e);
                    }
                }
                case Qevm.COMMAND -> command(in);
                default -> throw new MigrationException(String.format(
                        "unknown section type 0x%02x at stream offset %d", type, offset));
            }
        }
    }

    /**
     * Refuses a stream that reached EOF without every participant's whole state: starting a VM
     * whose RAM or device state never arrived would run a guest on garbage.
     */
    private static void requireComplete(List<SaveEntry> entries, java.util.Set<SaveEntry> complete)
            throws MigrationException {
        List<String> missing = new ArrayList<>();
        for (SaveEntry e : entries) {
            if (!complete.contains(e) && !(e instanceof SaveEntry.VmState<?> vs && vs.optional())) {
                missing.add("'" + e.idstr() + "' instance " + e.instanceId());
            }
        }
        if (!missing.isEmpty()) {
            throw new MigrationException("the stream ended (EOF) without the complete state of " + String.join(", ", missing));
        }
    }

    private SaveEntry find(List<SaveEntry> entries, String idstr, byte[] raw, int instance) throws MigrationException {
        for (SaveEntry e : entries) {
            if (e.idstr().equals(idstr) && e.instanceId() == instance) {
                return e;
            }
        }
        throw new MigrationException("unknown section '" + StreamText.escape(raw) + "' instance " + instance
                + ": this VM has no such device");
    }

    private void loadSection(SaveEntry e, ChannelLoadStream in, int version) throws IOException, MigrationException {
        if (e instanceof SaveEntry.Live live) {
            live.handler().loadState(in, version);
        } else if (e instanceof SaveEntry.VmState<?> vs) {
            vs.load(in, version);
        }
    }

    private void footer(ChannelLoadStream in, int id, String idstr) throws IOException, MigrationException {
        int t = in.getU8();
        if (t != Qevm.SECTION_FOOTER) {
            throw new MigrationException(String.format("section '%s' (id %d): expected footer 0x7e, found 0x%02x after %d bytes"
                    + " — the section data does not match this VM's layout", idstr, id, t, in.bytesRead() - 1));
        }
        int fid = in.getBe32();
        if (fid != id) {
            throw new MigrationException("section '" + idstr + "': footer names section " + fid + ", expected " + id);
        }
    }

    private void command(ChannelLoadStream in) throws IOException, MigrationException {
        int cmd = in.getBe16();
        int len = in.getBe16(); // each command checks its exact payload length; unknown ones are refused
        switch (cmd) {
            case Qevm.CMD_OPEN_RETURN_PATH -> {
                if (len != 0) { // QEMU's mig_cmd_args: no payload; never skip sections as "payload"
                    throw new MigrationException("OPEN_RETURN_PATH command with " + len + " bytes");
                }
                if (!connection.hasReturnPath()) {
                    throw new MigrationException("the source asked for a return path this transport lacks");
                }
                synchronized (rpLock) {
                    rpOut = new ChannelSaveStream(connection, new BandwidthLimiter(0, System::nanoTime));
                    if (caps.switchoverAck() && ackPending == 0) {
                        sendSwitchoverAck();
                    }
                }
                ReturnPath.startHeartbeat(this::sendHeartbeat);
            }
            case Qevm.CMD_PING -> {
                if (len != 4) {
                    throw new MigrationException("PING command with " + len + " bytes");
                }
                int v = in.getBe32();
                synchronized (rpLock) {
                    if (rpOut != null) {
                        rpOut.putBe16(ReturnPath.MSG_PONG);
                        rpOut.putBe16(4);
                        rpOut.putBe32(v);
                        rpOut.flush();
                    }
                }
            }
            case Qevm.CMD_SWITCHOVER_START -> {
                if (len != 0) {
                    throw new MigrationException("SWITCHOVER_START command with " + len + " bytes");
                }
            }
            default -> throw new MigrationException("unsupported migration command " + cmd);
        }
    }

    /** Reads the optional trailing vmdesc; Ferry does not need it, but must not leave it unread. */
    private void readVmdesc(ChannelLoadStream in) throws IOException, MigrationException {
        if (connection.hasReturnPath()) {
            int t = in.getU8();
            if (t != Qevm.VMDESCRIPTION) {
                throw new MigrationException(String.format("expected the vmdesc after EOF, found 0x%02x", t));
            }
            int len = in.getBe32();
            if (len < 0 || len > Qevm.MAX_VMDESC_LENGTH) {
                throw new MigrationException("vmdesc of " + (len & 0xffffffffL) + " bytes");
            }
            in.skip(len);
        }
    }

    private void finish(String failure, List<LiveSaveHandler> setupDone) {
        boolean ok = failure == null;
        long t0 = System.nanoTime();
        ram.discardMultifd(); // accepted channels the load never got to
        for (LiveSaveHandler h : setupDone) {
            try {
                h.loadCleanup(ok);
            } catch (RuntimeException e) {
                LOG.warn("load cleanup of {} failed: {}", h.idstr(), e.toString());
            }
        }
        if (ok && closing) {
            ok = false;
            failure = "incoming migration aborted";
        }
        if (ok && rpOutOpen() && connection.peerGone()) {
            // The source hung up after sending everything (cancelled, or died) and before it
            // heard that we run: it will run the guest itself, so this side must not.
            ok = false;
            failure = "the source closed the connection before the destination started; the source keeps the VM";
        }
        if (ok) {
            long t1 = System.nanoTime();
            if (digestAtLoad) {
                java.util.function.LongSupplier d = digest;
                memoryDigestAtLoad = d != null ? d.getAsLong() : machine.memory().digest();
                digestNanos = System.nanoTime() - t1;
            }
            LOG.debug("{}: load cleanup {} µs, digest {} µs", machine.name(), (t1 - t0) / 1000,
                    (System.nanoTime() - t1) / 1000);
            try {
                beforeStart.run();
            } catch (RuntimeException e) {
                failure = "preparing to start the VM failed: " + e.getMessage();
                ok = false;
            }
        }
        if (ok) {
            boolean sourceTakesOver = rpOutOpen();
            RunState carried = machine.incomingRunState();
            try {
                if (carried != null && carried != RunState.RUNNING) {
                    // QEMU's globalstate: a source that was paused or stopped on an I/O error
                    // stays so here; `cont` starts it (and retries a disk's parked requests).
                    machine.setRunState(carried == RunState.FINISH_MIGRATE ? RunState.PAUSED : carried);
                } else if (!autostart) {
                    machine.setRunState(RunState.PAUSED);
                } else if (sourceTakesOver) {
                    // The source hears SHUT(1) below and runs the guest again if the start fails:
                    // then this side must not have run it at all, not even until a stop — the
                    // two share the guest's disks.
                    machine.vmStartOrStayStopped(RunState.INTERNAL_ERROR);
                } else {
                    machine.vmStart(); // a file: this VM is the only copy and runs
                }
            } catch (dev.ferry.core.machine.VmStateChangeException e) {
                failure = "starting the VM after migration failed: " + e.getMessage();
                ok = false;
                if (sourceTakesOver) {
                    failure += "; the destination VM is stopped (internal-error), the source keeps the guest";
                }
            }
        }
        LOG.debug("{}: VM started {} µs after EOF, {} µs after the first END section", machine.name(),
                (System.nanoTime() - t0) / 1000, switchoverSeenNanos == 0 ? -1 : (System.nanoTime() - switchoverSeenNanos) / 1000);
        synchronized (rpLock) {
            if (rpOut != null) {
                try {
                    rpOut.putBe16(ReturnPath.MSG_SHUT);
                    rpOut.putBe16(4);
                    rpOut.putBe32(ok ? 0 : 1);
                    // Flush, not drain: the source closes as soon as it reads SHUT, which would
                    // race a drain's check of the channel. Closing below writes what is flushed.
                    rpOut.flush();
                } catch (IOException e) {
                    LOG.warn("sending SHUT on the return path failed: {}", e.toString());
                }
                rpOut.close();
                rpOut = null; // the heartbeat stops
            }
        }
        MigrationConnection c = connection;
        if (c != null) {
            c.close();
        }
        MigrationListener l = listener;
        if (l != null) {
            l.close();
        }
        endNanos = System.nanoTime();
        machine.removeActivity(activity);
        if (!ok) {
            errorDesc = failure;
            LOG.warn("{}: incoming migration failed: {}", machine.name(), failure);
        }
        setStatus(ok ? MigrationStatus.COMPLETED : MigrationStatus.FAILED);
    }
}
