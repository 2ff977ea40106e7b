package dev.ferry.migration;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.migration.LiveSaveHandler;
import dev.ferry.core.migration.LoadContext;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.migration.ram.RamMigration;
import dev.ferry.migration.stream.ChannelLoadStream;
import dev.ferry.migration.transport.MigrationListener;
import dev.ferry.migration.transport.MigrationTransports;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.EOFException;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
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
 *
 * <p>Roles: {@link IncomingChannels} accepts the connections, {@link StreamLoader} reads the
 * stream, {@link ReturnPathWriter} writes the return path; this class holds the status, runs the
 * incoming thread ({@code ferry-incoming}) and decides how the migration ends ({@code finish}).
 * The setters and queries are for any thread (QMP's, the VMM's); {@link #abort} may come from
 * any thread while the incoming thread runs.
 */
public final class DestinationMigration implements LoadContext {
    private static final Logger LOG = LoggerFactory.getLogger(DestinationMigration.class);
    private final Machine machine;
    private final MigrationTransports transports;
    private final MigrationCapabilities caps;
    private final MigrationEventSink events;
    private volatile boolean autostart;
    private final RamMigration ram;
    private final ReturnPathWriter returnPath;
    private volatile MigrationStatus status = MigrationStatus.NONE;
    private volatile String errorDesc;
    /** The listener and the connections, from {@link #listen} on. */
    private volatile IncomingChannels channels;
    private volatile long endNanos;
    private volatile Long memoryDigestAtLoad;
    private volatile boolean digestAtLoad;
    private volatile long digestNanos;
    private volatile ReturnPath.DestinationTimings timings = ReturnPath.DestinationTimings.NONE;
    private volatile Runnable beforeStart = () -> { };
    private Thread thread;
    private volatile boolean closing;
    private volatile int multifdChannels = 2;
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
        this.returnPath = new ReturnPathWriter(caps);
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
        channels = new IncomingChannels(l, ram, caps.multifd(), multifdChannels);
        machine.addActivity(activity);
        setStatus(MigrationStatus.SETUP);
        thread = new Thread(this::run, "ferry-incoming");
        thread.setDaemon(true);
        thread.start();
        return l.boundUri();
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
     * This side's phases after the stream's end (load cleanup, verification, VM start), in
     * microseconds by their {@code query-migrate} names; all 0 until the migration ended. They
     * are this side's share of the source's {@code destination-*} phases.
     */
    public java.util.Map<String, Long> phasesMicros() {
        ReturnPath.DestinationTimings t = timings;
        java.util.Map<String, Long> m = new java.util.LinkedHashMap<>();
        m.put("destination-load", t.loadNanos() / 1000);
        m.put("destination-verify", t.verifyNanos() / 1000);
        m.put("destination-start", t.startNanos() / 1000);
        return m;
    }

    /**
     * Runs {@code hook} on the incoming thread once the state is loaded and before the VM starts
     * (while nothing runs): to record what was loaded. A hook that throws fails the migration.
     */
    public void beforeStart(Runnable hook) {
        this.beforeStart = hook;
    }

    public MigrationInfo info() {
        IncomingChannels ch = channels;
        long startNanos = ch == null ? 0 : ch.startNanos();
        long end = endNanos != 0 ? endNanos : System.nanoTime();
        long total = startNanos == 0 ? 0 : (end - startNanos) / 1_000_000;
        var rc = ram.counters();
        MigrationInfo.Ram r = new MigrationInfo.Ram(rc.transferred(), 0, machine.memory().totalSize(), 0,
                rc.normal(), rc.normalBytes(), 0, 0, 0, rc.pageSize(), 0, 0, 0, rc.multifdBytes());
        return new MigrationInfo(status, total, 0, 0, 0, 0, errorDesc, List.of(), r, List.of(), null, 0);
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
        IncomingChannels ch = channels;
        if (ch != null) {
            ch.closeListener();
            ch.closeConnection();
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
        returnPath.approveSwitchover();
    }

    @Override
    public boolean switchoverAck() {
        return caps.switchoverAck();
    }

    private void run() {
        IncomingChannels ch = channels;
        List<LiveSaveHandler> setupDone = new ArrayList<>();
        StreamLoader loader = null;
        String failure = null;
        try {
            ChannelLoadStream in = ch.accept();
            try (in) {
                loader = new StreamLoader(machine, this, returnPath, ch.connection(),
                        () -> setStatus(MigrationStatus.ACTIVE));
                loader.load(in, setupDone);
            }
        } catch (MigrationException e) {
            failure = e.getMessage();
        } catch (EOFException e) {
            failure = e.getMessage() + " without its end (the source stopped sending: it failed, was cancelled or died)";
            int refused = ch.refusedConnections();
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
        String channelFailure = ch.multifdFailure();
        if (failure != null && channelFailure != null && !closing) {
            failure = channelFailure; // the cause, not the main connection it closed
        }
        finish(failure, setupDone, ch, loader == null ? 0 : loader.switchoverSeenNanos());
    }

    /**
     * Ends the incoming migration on the incoming thread: cleans the handlers up, decides whether
     * the VM starts (it does not when anything failed, the migration was aborted or the source
     * hung up before hearing the verdict), sends SHUT, closes the connections and sets the final
     * status last, so a caller that sees it may rely on all of that.
     */
    private void finish(String failure, List<LiveSaveHandler> setupDone, IncomingChannels ch, long switchoverSeenNanos) {
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
        if (ok && returnPath.isOpen() && ch.connection().peerGone()) {
            // The source hung up after sending everything (cancelled, or died) and before it
            // heard that we run: it will run the guest itself, so this side must not.
            ok = false;
            failure = "the source closed the connection before the destination started; the source keeps the VM";
        }
        long t1 = System.nanoTime();
        if (ok) {
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
        long t2 = System.nanoTime();
        if (ok) {
            boolean sourceTakesOver = returnPath.isOpen();
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
        long t3 = System.nanoTime();
        timings = new ReturnPath.DestinationTimings(t1 - t0, t2 - t1, t3 - t2);
        returnPath.shut(ok, timings);
        ch.closeConnection();
        ch.closeListener();
        endNanos = System.nanoTime();
        machine.removeActivity(activity);
        if (!ok) {
            errorDesc = failure;
            LOG.warn("{}: incoming migration failed: {}", machine.name(), failure);
        }
        setStatus(ok ? MigrationStatus.COMPLETED : MigrationStatus.FAILED);
    }
}