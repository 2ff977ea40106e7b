package dev.ferry.migration;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.migration.LiveSaveHandler;
import dev.ferry.core.migration.MigrationBlocker;
import dev.ferry.core.migration.MigrationEvent;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.MigrationNotifier;
import dev.ferry.core.migration.SaveEntry;
import dev.ferry.migration.ram.RamCounters;
import dev.ferry.migration.ram.RamMigration;
import dev.ferry.migration.stream.BandwidthLimiter;
import dev.ferry.migration.stream.ChannelSaveStream;
import dev.ferry.migration.stream.Qevm;
import dev.ferry.migration.stream.SectionWriter;
import dev.ferry.migration.transport.MigrationConnection;
import dev.ferry.migration.transport.MigrationTransports;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.LongSupplier;

/**
 * One outgoing migration of a {@link Machine}: QEMU's migration thread. {@link #start} checks
 * blockers and starts the thread; the thread connects, sends every live handler's setup, iterates
 * until the pending bytes fit {@code bandwidth × downtime-limit} (and the destination approved
 * switchover when asked to), stops the VM, sends the rest and the device states, and waits for
 * the destination's "loaded and running" on the return path before it reports completed.
 *
 * <p>Any failure or cancel, in any phase, ends with the source VM running (restarted if the
 * migration had stopped it), every handler cleaned up, the failed/cancelled notifiers run, the
 * connection closed, and the reason in {@link MigrationInfo#errorDesc()}. The status becomes
 * final only after all of that, so a caller that sees it may rely on it.
 *
 * <p>Roles: this class holds the status, opens the connections (the main one, the return path's
 * {@link ReturnPathReader}, the multifd channels), runs the migration thread
 * ({@code ferry-migration}) through {@link Precopy} and {@link StopAndCopy}, and decides how the
 * migration ends ({@code finish}: which failure is reported, the VM restarted, everything closed).
 * {@link #cancel}, {@link #info} and {@link #setMaxBandwidth} come from any thread (QMP's); the
 * return path's threads and the multifd channel threads fail the migration by closing the
 * connection, and the migration thread reports the cause they recorded.
 */
public final class SourceMigration {
    private static final Logger LOG = LoggerFactory.getLogger(SourceMigration.class);
    /** Written in the CONFIGURATION section. */
    public static final String MACHINE_TYPE = "ferry";

    private final Machine machine;
    private final MigrationTransports transports;
    private final MigrationParameters params;
    private final MigrationCapabilities caps;
    private final MigrationEventSink events;
    private final LongSupplier clock;
    private final RamMigration ram;
    private final SourceProgress progress;
    private final BandwidthLimiter limiter;
    private volatile MigrationStatus status = MigrationStatus.NONE;
    private volatile boolean cancelRequested;
    private volatile MigrationConnection connection;
    /** The multifd channels while the migration has them open (the capability on). */
    private volatile dev.ferry.migration.ram.MultifdSend multifd;
    private volatile String errorDesc;
    private volatile int finalThrottle;
    private Thread thread;
    /** Registered with the machine while the thread runs, so closing the machine ends us first. */
    private final AutoCloseable activity = this::shutdown;

    public SourceMigration(Machine machine, MigrationTransports transports, MigrationParameters params,
                           MigrationCapabilities caps, MigrationEventSink events) {
        this(machine, transports, params, caps, events, System::nanoTime);
    }

    public SourceMigration(Machine machine, MigrationTransports transports, MigrationParameters params,
                           MigrationCapabilities caps, MigrationEventSink events, LongSupplier nanoClock) {
        caps.validate();
        this.machine = machine;
        this.transports = transports;
        this.params = params;
        this.caps = caps;
        this.events = events;
        this.clock = nanoClock;
        this.ram = RamMigration.attach(machine);
        this.progress = new SourceProgress(nanoClock);
        this.limiter = new BandwidthLimiter(params.maxBandwidth(), nanoClock);
    }

    /**
     * Starts migrating to {@code uri} on a new thread. Throws {@link MigrationException} at once
     * if a blocker forbids migration or the VM is not in a state that can migrate.
     */
    public synchronized void start(String uri) throws MigrationException {
        if (status != MigrationStatus.NONE) {
            throw new IllegalStateException("this migration was already started (status " + status.qapiName() + ")");
        }
        List<MigrationBlocker> blockers = machine.migration().blockers();
        if (!blockers.isEmpty()) {
            StringBuilder sb = new StringBuilder("migration is blocked: ");
            for (int i = 0; i < blockers.size(); i++) {
                sb.append(i == 0 ? "" : "; ").append(blockers.get(i).reason());
            }
            throw new MigrationException(sb.toString());
        }
        try {
            transports.checkUri(uri);
        } catch (IllegalArgumentException e) {
            throw new MigrationException(e.getMessage());
        }
        if (caps.multifd() && uri.startsWith("file:")) {
            throw new MigrationException("multifd needs a socket migration (tcp: or unix:), not " + uri);
        }
        RunState rs = machine.runState();
        // A VM stopped on a disk error migrates as QEMU migrates it: its devices carry the
        // requests they parked, and a failed migration leaves it in io-error again.
        if (rs != RunState.RUNNING && rs != RunState.PAUSED && rs != RunState.PRELAUNCH && rs != RunState.IO_ERROR) {
            throw new MigrationException("cannot migrate a VM in run state " + rs.qapiName());
        }
        progress.begin();
        setStatus(MigrationStatus.SETUP);
        machine.addActivity(activity);
        thread = new Thread(() -> {
            try {
                run(uri);
            } finally {
                // The stream's chunks came from Netty's pool through this thread's cache: give
                // them back now, not when a finalizer notices the thread is gone.
                io.netty.util.concurrent.FastThreadLocal.removeAll();
            }
        }, "ferry-migration");
        thread.setDaemon(true);
        thread.start();
    }

    /** migrate_cancel: the migration ends as cancelled with the source running (no-op once final). */
    public void cancel() {
        synchronized (this) {
            if (!status.isRunning()) {
                return;
            }
            cancelRequested = true;
            setStatus(MigrationStatus.CANCELLING);
        }
        MigrationConnection c = connection;
        if (c != null) {
            c.close();
        }
        dev.ferry.migration.ram.MultifdSend m = multifd;
        if (m != null) {
            m.close();
        }
    }

    /** Cancels and waits for the migration thread to end (the machine is closing). */
    private void shutdown() throws InterruptedException {
        cancel();
        Thread t;
        synchronized (this) {
            t = thread;
        }
        if (t != null && t != Thread.currentThread()) {
            t.join(30_000);
        }
    }

    /** Changes max-bandwidth while the migration runs. */
    public void setMaxBandwidth(long bytesPerSecond) {
        limiter.setBytesPerSecond(bytesPerSecond);
    }

    public MigrationStatus status() {
        return status;
    }

    /** Waits until the migration reached a final state; returns it. */
    public MigrationStatus await(Duration timeout) throws InterruptedException, TimeoutException {
        Thread t;
        synchronized (this) {
            t = thread;
        }
        if (t == null) {
            return status;
        }
        t.join(timeout.toMillis());
        if (t.isAlive()) {
            throw new TimeoutException("migration still " + status.qapiName() + " after " + timeout);
        }
        return status;
    }

    public MigrationInfo info() {
        RamCounters rc = ram.counters();
        MigrationStatus st = status;
        int throttle = st.isFinal() ? finalThrottle : machine.cpus().throttlePercentage();
        return progress.snapshot(st, errorDesc, throttle, rc);
    }

    /** Moves along the table of {@link MigrationStatus#canBecome}; once cancelling, only to the end. */
    synchronized void setStatus(MigrationStatus s) {
        if (status == s || (status == MigrationStatus.CANCELLING && !s.isFinal())) {
            return;
        }
        if (!status.canBecome(s)) {
            throw new IllegalStateException("migration status " + status.qapiName() + " → " + s.qapiName());
        }
        status = s;
        events.status(s);
    }

    /** Throws once {@link #cancel} was asked (any thread); the migration thread checks between steps. */
    void checkCancel() throws MigrationException {
        if (cancelRequested) {
            throw new MigrationException("migration cancelled by the user");
        }
    }

    private void run(String uri) {
        List<LiveSaveHandler> setupDone = new ArrayList<>();
        Precopy precopy = new Precopy(this, machine, params, progress, limiter, ram, clock);
        StopAndCopy stopAndCopy = new StopAndCopy(this, machine, params, progress, ram, clock);
        RunState runStateBefore = machine.runState();
        ChannelSaveStream out = null;
        ReturnPathReader rp = null;
        String failure = null;
        Throwable failureCause = null;
        try {
            notifyAll(MigrationEvent.SETUP, true);
            checkCancel();
            MigrationConnection conn = transports.connect(uri);
            connection = conn;
            if (cancelRequested) {
                conn.close();
            }
            checkCancel();
            out = new ChannelSaveStream(conn, limiter);
            SectionWriter w = new SectionWriter(out);
            w.fileHeader();
            w.configuration(MACHINE_TYPE);
            boolean useReturnPath = caps.returnPath() && conn.hasReturnPath();
            out.switchoverAck(caps.switchoverAck() && useReturnPath);
            if (useReturnPath) {
                w.command(Qevm.CMD_OPEN_RETURN_PATH, new byte[0]);
                rp = new ReturnPathReader(conn, params.heartbeatTimeoutMs());
                rp.start();
            }
            if (caps.multifd()) {
                out.flush(); // the destination tells the main channel from the others by its first bytes
                // The channels end with the main connection: a destination the return path gave up
                // on (its heartbeat went silent) closes only that one, and a stalled network would
                // otherwise leave this thread waiting for room in a channel forever.
                multifd = dev.ferry.migration.ram.MultifdSend.open(transports, uri, params.multifdChannels(), limiter,
                        () -> conn.peerGone() ? "the main channel to " + uri + " closed" : null);
                if (cancelRequested) {
                    multifd.close();
                }
                checkCancel();
                ram.useMultifd(multifd);
            }
            List<SaveEntry> entries = machine.migration().entries();
            Map<SaveEntry, Integer> ids = new LinkedHashMap<>();
            for (SaveEntry e : entries) {
                ids.put(e, ids.size());
            }
            precopy.setup(entries, ids, w, out, setupDone);
            VmdescBuilder.warm(entries);
            progress.setupDone();
            setStatus(MigrationStatus.ACTIVE);

            AutoConverge ac = new AutoConverge(machine.cpus(), caps.autoConverge(), params, clock.getAsLong(),
                    sent(out));
            ChannelSaveStream o = out;
            ram.setSyncListener((count, newly) -> {
                ac.afterSync(newly, clock.getAsLong(), sent(o));
                progress.dirtyPagesRate(ac.dirtyPagesRate());
                events.pass(count);
            });
            boolean ackNeeded = caps.switchoverAck() && useReturnPath
                    && setupDone.stream().anyMatch(LiveSaveHandler::switchoverAckNeeded);
            precopy.iterate(entries, ids, w, out, rp, ackNeeded);

            // Before stopping the VM, let the destination catch up with what the buffers between
            // us hold (socket buffers, its receive queue: up to ~20 MB): PING, and wait for its
            // PONG. Otherwise it reads that backlog inside the guest's pause (measured: ~40-120 ms).
            if (rp != null && machine.runState().isRunning()) {
                precopy.catchUp(w, out, rp);
                precopy.trailingRounds(entries, ids, w, out);
            }

            // Switchover: stop the VM, send what is left, then the device states.
            stopAndCopy.run(entries, ids, w, out, rp);
        } catch (MigrationException e) {
            failure = e.getMessage();
            failureCause = e;
        } catch (IOException e) {
            failure = cancelRequested ? "migration cancelled by the user" : "migration stream to " + uri + " failed: " + e.getMessage();
            failureCause = e;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            failure = "migration thread interrupted";
            failureCause = e;
        } catch (NotifierFailure | dev.ferry.migration.ram.DirtyLogFailure e) {
            failure = e.getMessage();
            failureCause = e;
        } catch (RuntimeException | Error e) {
            failure = "internal error: " + e;
            failureCause = e;
        }
        if (failure != null && rp != null && rp.lostReason() != null && !cancelRequested) {
            failure = "migration to " + uri + " failed: " + rp.lostReason(); // the cause, not the closed socket it left
        }
        if (failure != null && failureCause instanceof IOException && rp != null && !cancelRequested) {
            Integer verdict = destinationVerdict(rp);
            if (verdict != null && verdict != 0) {
                // The destination refused the stream and hung up; the write that then failed is not the cause.
                failure = "the destination failed to load the migration stream (it reported " + verdict
                        + "); see the destination's query-migrate";
            }
        }
        finish(failure, failureCause, stopAndCopy.stoppedVm(), runStateBefore, setupDone, out, rp);
    }

    /**
     * After a failed write: the SHUT the destination may have sent just before it hung up (it is
     * read by the return-path thread, which sees the end of the connection at once), or null.
     */
    private static Integer destinationVerdict(ReturnPathReader rp) {
        try {
            return rp.shut().get(500, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        } catch (ExecutionException | TimeoutException e) {
            return null;
        }
    }

    /** Bytes sent on every channel: the main stream's and the multifd channels'. */
    long sent(ChannelSaveStream out) {
        dev.ferry.migration.ram.MultifdSend m = multifd;
        return out.bytesWritten() + (m == null ? 0 : m.bytesSent());
    }

    private void finish(String failure, Throwable cause, boolean stoppedVm, RunState runStateBefore,
                        List<LiveSaveHandler> setupDone, ChannelSaveStream out, ReturnPathReader rp) {
        boolean ok = failure == null;
        ram.setSyncListener((c, n) -> { });
        if (!ok) {
            if (cause != null && !(cause instanceof MigrationException) && !cancelRequested) {
                LOG.warn("{}: migration failed", machine.name(), cause);
            }
            if (stoppedVm) {
                try {
                    machine.vmStart();
                } catch (dev.ferry.core.machine.VmStateChangeException e) {
                    failure += "; restarting the source VM reported: " + e.getMessage();
                }
            } else if (machine.runState() == RunState.FINISH_MIGRATE) {
                machine.setRunState(runStateBefore);
            }
        }
        finalThrottle = machine.cpus().throttlePercentage();
        machine.cpus().setThrottlePercentage(0);
        for (LiveSaveHandler h : setupDone) {
            try {
                h.saveCleanup(ok);
            } catch (RuntimeException e) {
                LOG.warn("{}: cleanup of {} failed: {}", machine.name(), h.idstr(), e.toString());
            }
        }
        dev.ferry.migration.ram.MultifdSend m = multifd;
        if (m != null) {
            m.close();
        }
        ram.useMultifd(null);
        if (out != null) {
            out.close();
        }
        MigrationConnection c = connection;
        if (c != null) {
            c.close();
        }
        if (rp != null) {
            try {
                rp.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        MigrationEvent ev = ok ? MigrationEvent.COMPLETED
                : cancelRequested ? MigrationEvent.CANCELLED : MigrationEvent.FAILED;
        List<String> rollbackFailures = notifyAll(ev, false);
        if (!ok) {
            String desc = cancelRequested ? "migration cancelled by the user"
                    + (failure.startsWith("migration cancelled") ? "" : " (" + failure + ")") : failure;
            for (String f : rollbackFailures) {
                desc += "; " + f;
            }
            errorDesc = desc;
        }
        progress.end();
        machine.removeActivity(activity);
        setStatus(ok ? MigrationStatus.COMPLETED : cancelRequested ? MigrationStatus.CANCELLED : MigrationStatus.FAILED);
    }

    /**
     * Runs the notifiers; for SETUP a failure aborts the migration, otherwise it is logged and its
     * message returned (a device that could not roll back says so in the migration's error).
     */
    private List<String> notifyAll(MigrationEvent ev, boolean propagate) {
        List<String> failures = new ArrayList<>();
        for (MigrationNotifier n : machine.migration().notifiers()) {
            try {
                n.onMigrationEvent(ev);
            } catch (MigrationException | RuntimeException e) {
                if (propagate) {
                    throw new NotifierFailure(e);
                }
                LOG.warn("{}: migration notifier for {} failed: {}", machine.name(), ev, e.toString());
                failures.add(e.getMessage());
            }
        }
        return failures;
    }

    /** Carries a SETUP notifier's veto out of {@link #notifyAll}. */
    private static final class NotifierFailure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        NotifierFailure(Exception cause) {
            super("migration setup refused: " + cause.getMessage(), cause);
        }
    }
}
