package dev.ferry.migration;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.migration.LiveSaveHandler;
import dev.ferry.core.migration.MigrationBlocker;
import dev.ferry.core.migration.MigrationEvent;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.MigrationNotifier;
import dev.ferry.core.migration.NonIterableSave;
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
 */
public final class SourceMigration {
    /** A round that sent less than this with every handler done counts as idle. */
    private static final long IDLE_ROUND_BYTES = 64 << 10;
    /** How long an idle round waits before the next look at the dirty logs. */
    private static final long IDLE_PAUSE_MS = 5;

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
        thread = new Thread(() -> run(uri), "ferry-migration");
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
    private synchronized void setStatus(MigrationStatus s) {
        if (status == s || (status == MigrationStatus.CANCELLING && !s.isFinal())) {
            return;
        }
        if (!status.canBecome(s)) {
            throw new IllegalStateException("migration status " + status.qapiName() + " → " + s.qapiName());
        }
        status = s;
        events.status(s);
    }

    private void checkCancel() throws MigrationException {
        if (cancelRequested) {
            throw new MigrationException("migration cancelled by the user");
        }
    }

    private void run(String uri) {
        List<LiveSaveHandler> setupDone = new ArrayList<>();
        boolean stoppedVm = false;
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
                multifd = dev.ferry.migration.ram.MultifdSend.open(transports, uri, params.multifdChannels(), limiter);
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
            for (SaveEntry e : entries) {
                if (e instanceof SaveEntry.Live live) {
                    checkCancel();
                    int id = ids.get(e);
                    long before = out.bytesWritten();
                    w.sectionHeader(Qevm.SECTION_START, id, e.idstr(), e.instanceId(), e.version());
                    setupDone.add(live.handler());
                    live.handler().saveSetup(out);
                    w.footer(id);
                    progress.addPrecopy(e, out.bytesWritten() - before);
                }
            }
            out.flush();
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
            iterate(entries, ids, w, out, rp, ackNeeded);

            // Before stopping the VM, let the destination catch up with what the buffers between
            // us hold (socket buffers, its receive queue: up to ~20 MB): PING, and wait for its
            // PONG. Otherwise it reads that backlog inside the guest's pause (measured: ~40-120 ms).
            if (rp != null && machine.runState().isRunning()) {
                catchUp(w, out, rp);
            }

            // Switchover: stop the VM, send what is left, then the device states.
            checkCancel();
            progress.downtimeStarts();
            stoppedVm = machine.runState().isRunning();
            try {
                machine.vmStop(RunState.FINISH_MIGRATE);
            } catch (dev.ferry.core.machine.VmStateChangeException e) {
                throw new MigrationException("stopping the VM for switchover failed: " + e.getMessage(), e);
            }
            long stopped = clock.getAsLong();
            setStatus(MigrationStatus.DEVICE);
            VmdescBuilder vmdesc = new VmdescBuilder();
            long ramNanos = 0;
            for (SaveEntry e : entries) {
                checkCancel();
                int id = ids.get(e);
                long before = out.bytesWritten();
                long t0 = clock.getAsLong();
                if (e instanceof SaveEntry.Live live) {
                    w.sectionHeader(Qevm.SECTION_END, id);
                    live.handler().saveComplete(out);
                    w.footer(id);
                    long spent = clock.getAsLong() - t0;
                    progress.addDowntime(e, out.bytesWritten() - before, spent);
                    if (live.handler() == ram) {
                        ramNanos += spent;
                    }
                }
            }
            for (SaveEntry e : entries) {
                NonIterableSave part = e instanceof SaveEntry.Live live && live.handler() instanceof NonIterableSave n
                        ? n : null;
                if (e instanceof SaveEntry.VmState<?> || part != null) {
                    checkCancel();
                    int id = ids.get(e);
                    long before = out.bytesWritten();
                    long t0 = clock.getAsLong();
                    w.sectionHeader(Qevm.SECTION_FULL, id, e.idstr(), e.instanceId(), e.version());
                    if (e instanceof SaveEntry.VmState<?> vs) {
                        vs.save(out);
                        vmdesc.vmState(vs);
                    } else {
                        long dataStart = out.bytesWritten();
                        part.saveState(out);
                        vmdesc.oldStyle(e, out.bytesWritten() - dataStart);
                    }
                    w.footer(id);
                    progress.addDowntime(e, out.bytesWritten() - before, clock.getAsLong() - t0);
                }
            }
            w.eof();
            w.vmdesc(vmdesc.toJson());
            long sent = clock.getAsLong();
            if (rp != null) {
                // The destination's SHUT proves delivery; a drain would race its close once it
                // has read everything and answered.
                out.flush();
            } else {
                out.drain(); // a file: everything must reach the kernel before we report completed
            }
            long drained = clock.getAsLong();
            if (rp != null) {
                awaitDestination(rp);
            }
            long running = rp != null ? clock.getAsLong() : drained; // a file: no destination to wait for
            // The clock may be a test's: split the stop and RAM's share by the parts' own timings,
            // so the phases add up on the clock the downtime is measured with.
            long stopNanos = stopped - progress.downtimeStartNanos();
            long cpusNanos = stoppedVm ? Math.min(stopNanos, machine.lastStopTimings().cpusNanos()) : 0;
            long syncNanos = Math.min(ramNanos, ram.finalSyncNanos());
            DowntimeBreakdown b = new DowntimeBreakdown(cpusNanos, stopNanos - cpusNanos, syncNanos, ramNanos - syncNanos,
                    sent - stopped - ramNanos, drained - sent, running - drained);
            LOG.debug("{}: switchover phases (µs): {}", machine.name(), b.phasesMicros());
            progress.downtimeEnds(b);
            machine.setRunState(RunState.POSTMIGRATE);
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
        } catch (NotifierFailure e) {
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
        finish(failure, failureCause, stoppedVm, runStateBefore, setupDone, out, rp);
    }

    private final SwitchoverRule switchover = new SwitchoverRule();

    /** The longest the source waits for the destination to catch up before the switchover. */
    static final long CATCH_UP_WAIT_MS = 2000;

    private void catchUp(SectionWriter w, ChannelSaveStream out, ReturnPathReader rp)
            throws IOException, InterruptedException {
        long t0 = clock.getAsLong();
        int ping = 0x46525259; // "FRRY"
        w.command(Qevm.CMD_PING, new byte[] {0x46, 0x52, 0x52, 0x59});
        out.flush();
        boolean caughtUp = rp.awaitPong(ping, CATCH_UP_WAIT_MS);
        LOG.debug("{}: destination {} in {} µs before the switchover", machine.name(),
                caughtUp ? "caught up" : "did not catch up", (clock.getAsLong() - t0) / 1000);
    }

    private void iterate(List<SaveEntry> entries, Map<SaveEntry, Integer> ids, SectionWriter w, ChannelSaveStream out,
                         ReturnPathReader rp, boolean ackNeeded)
            throws IOException, MigrationException, InterruptedException {
        long downtimeLimit = params.downtimeLimitMs();
        progress.maxBandwidth(limiter.bytesPerSecond());
        progress.availSwitchoverBandwidth(params.availSwitchoverBandwidth());
        progress.newWindow(sent(out));
        while (true) {
            checkCancel();
            long pending = 0;
            for (SaveEntry e : entries) {
                if (e instanceof SaveEntry.Live live) {
                    pending += live.handler().pendingEstimate();
                }
            }
            double rate = progress.switchoverBytesPerMs();
            long threshold = SwitchoverRule.budgetBytes(rate, downtimeLimit);
            if (pending < threshold || pending == 0) {
                pending = 0;
                for (SaveEntry e : entries) {
                    if (e instanceof SaveEntry.Live live) {
                        pending += live.handler().pendingExact();
                    }
                }
            }
            progress.pending(pending);
            // QEMU's migration_can_switchover: a stopped VM has no downtime to protect, and a
            // device that could not pre-copy (it was stopped) never sends what the ack waits for.
            boolean running = machine.runState().isRunning();
            boolean acked = !ackNeeded || rp.switchoverAcked() || !running;
            SwitchoverRule.Verdict verdict = switchover.decide(pending, rate, downtimeLimit, acked, running);
            if (verdict.switchover) {
                LOG.debug("{}: switchover ({}) with {} bytes pending, budget {} bytes", machine.name(), verdict, pending,
                        threshold);
                return;
            }
            boolean allDone = true;
            long roundStart = sent(out);
            long roundNanos = System.nanoTime();
            for (SaveEntry e : entries) {
                if (e instanceof SaveEntry.Live live) {
                    if (out.rateLimitReached()) {
                        allDone = false;
                        break;
                    }
                    int id = ids.get(e);
                    long before = out.bytesWritten();
                    w.sectionHeader(Qevm.SECTION_PART, id);
                    allDone &= live.handler().saveIterate(out);
                    w.footer(id);
                    progress.addPrecopy(e, out.bytesWritten() - before);
                }
            }
            out.flush();
            progress.busy(System.nanoTime() - roundNanos);
            limiter.awaitNextWindow();
            if (allDone) {
                // Nothing is left to pre-copy, yet what must go in the downtime (a device's
                // stop-copy state, say) is more than the link is believed to move within the
                // limit, or the ack is outstanding. An idle link measures the supply, not the
                // bandwidth: keep the estimate, and do not spin re-syncing dirty logs.
                progress.idleWindow();
                if (sent(out) - roundStart < IDLE_ROUND_BYTES) {
                    Thread.sleep(IDLE_PAUSE_MS);
                }
            }
            progress.updateWindow(sent(out), downtimeLimit, ram.counters());
        }
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
    private long sent(ChannelSaveStream out) {
        dev.ferry.migration.ram.MultifdSend m = multifd;
        return out.bytesWritten() + (m == null ? 0 : m.bytesSent());
    }

    private void awaitDestination(ReturnPathReader rp) throws MigrationException, InterruptedException {
        try {
            int code = rp.shut().get(params.returnPathTimeoutMs(), TimeUnit.MILLISECONDS);
            if (code != 0) {
                throw new MigrationException("the destination failed to load the migration stream (it reported "
                        + code + "); see the destination's query-migrate");
            }
        } catch (ExecutionException e) {
            checkCancel();
            throw new MigrationException("the destination did not confirm it runs: " + e.getCause().getMessage(), e);
        } catch (TimeoutException e) {
            throw new MigrationException("the destination did not confirm it runs within "
                    + params.returnPathTimeoutMs() + " ms");
        }
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
