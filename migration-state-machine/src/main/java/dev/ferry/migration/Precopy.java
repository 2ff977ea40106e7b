package dev.ferry.migration;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.migration.LiveSaveHandler;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveEntry;
import dev.ferry.migration.ram.RamMigration;
import dev.ferry.migration.stream.BandwidthLimiter;
import dev.ferry.migration.stream.ChannelSaveStream;
import dev.ferry.migration.stream.Qevm;
import dev.ferry.migration.stream.SectionWriter;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.function.LongSupplier;

/**
 * The source's pre-copy: every live handler's START section (QEMU's
 * {@code qemu_savevm_state_setup}), then rounds of their PART sections
 * ({@code migration_iteration_run}) within the bandwidth limit, until the pending bytes fit the
 * downtime budget (and the destination approved the switchover when asked to) by the
 * {@link SwitchoverRule}; then, with a return path, one PING whose PONG says the destination
 * caught up with the backlog in the buffers between the two, so that it does not read it inside
 * the guest's pause.
 *
 * <p>Thread: the migration thread; a cancel from another thread is checked before each section
 * of the setup and once a round.
 */
final class Precopy {
    /** A round that sent less than this with every handler done counts as idle. */
    private static final long IDLE_ROUND_BYTES = 64 << 10;
    /** How long an idle round waits before the next look at the dirty logs. */
    private static final long IDLE_PAUSE_MS = 5;
    /** The longest the source waits for the destination to catch up before the switchover. */
    static final long CATCH_UP_WAIT_MS = 2000;
    /** Pending bytes the link moves within this are left to the final pass. */
    static final long TRAILING_MIN_MS = 1;
    /** The most rounds after the catch-up. */
    static final int TRAILING_MAX_ROUNDS = 8;
    /** Logs under the engine's name, as before the engine was split by role. */
    private static final Logger LOG = LoggerFactory.getLogger(SourceMigration.class);

    private final SourceMigration migration;
    private final Machine machine;
    private final MigrationParameters params;
    private final SourceProgress progress;
    private final BandwidthLimiter limiter;
    private final RamMigration ram;
    private final LongSupplier clock;
    private final SwitchoverRule switchover = new SwitchoverRule();

    Precopy(SourceMigration migration, Machine machine, MigrationParameters params, SourceProgress progress,
            BandwidthLimiter limiter, RamMigration ram, LongSupplier clock) {
        this.migration = migration;
        this.machine = machine;
        this.params = params;
        this.progress = progress;
        this.limiter = limiter;
        this.ram = ram;
        this.clock = clock;
    }

    /**
     * QEMU's {@code qemu_savevm_state_setup}: every live handler's START section; a handler joins
     * {@code setupDone} before its setup runs, so that it is cleaned up whatever happens.
     */
    void setup(List<SaveEntry> entries, Map<SaveEntry, Integer> ids, SectionWriter w, ChannelSaveStream out,
               List<LiveSaveHandler> setupDone) throws IOException, MigrationException {
        for (SaveEntry e : entries) {
            if (e instanceof SaveEntry.Live live) {
                migration.checkCancel();
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
    }

    /**
     * Lets the destination catch up before the VM stops: PING, and wait for its PONG (at most
     * {@link #CATCH_UP_WAIT_MS}; not hearing it is no failure).
     */
    void catchUp(SectionWriter w, ChannelSaveStream out, ReturnPathReader rp)
            throws IOException, InterruptedException {
        long t0 = clock.getAsLong();
        int ping = 0x46525259; // "FRRY"
        w.command(Qevm.CMD_PING, new byte[] {0x46, 0x52, 0x52, 0x59});
        out.flush();
        boolean caughtUp = rp.awaitPong(ping, CATCH_UP_WAIT_MS);
        LOG.debug("{}: destination {} in {} µs before the switchover", machine.name(),
                caughtUp ? "caught up" : "did not catch up", (clock.getAsLong() - t0) / 1000);
    }

    /**
     * Rounds after {@link #catchUp}, while the guest still runs: what it dirtied during the wait
     * would otherwise all go in the final pass, inside its pause (QEMU's scenario: 40 MB/s over a
     * wait of 25-150 ms is 1-6 MB, 1-6 ms of downtime). They go on while the link needs more than
     * {@value #TRAILING_MIN_MS} ms for what is pending and each round still shrinks it, at most
     * {@value #TRAILING_MAX_ROUNDS}; none once the bandwidth limit is reached. The destination
     * reads them as they come: it has just caught up.
     */
    void trailingRounds(List<SaveEntry> entries, Map<SaveEntry, Integer> ids, SectionWriter w, ChannelSaveStream out)
            throws IOException, MigrationException {
        long t0 = clock.getAsLong();
        long before = migration.sent(out);
        long last = -1; // none yet
        int rounds = 0;
        while (rounds < TRAILING_MAX_ROUNDS) {
            migration.checkCancel();
            long pending = pending(entries, true);
            boolean shrank = last < 0 || pending * 100 <= last * (100 - SwitchoverRule.SHRINK_PERCENT);
            if (pending <= progress.switchoverBytesPerMs() * TRAILING_MIN_MS || !shrank || out.rateLimitReached()) {
                break;
            }
            last = pending;
            round(entries, ids, w, out);
            rounds++;
        }
        progress.catchUpRounds(migration.sent(out) - before);
        LOG.debug("{}: {} round(s) after the catch-up sent {} bytes in {} µs", machine.name(), rounds,
                migration.sent(out) - before, (clock.getAsLong() - t0) / 1000);
    }

    /**
     * Pre-copy rounds until the {@link SwitchoverRule} says switch over; {@code ackNeeded}: a
     * device asked for the destination's switchover-ack, which {@code rp} reports.
     */
    void iterate(List<SaveEntry> entries, Map<SaveEntry, Integer> ids, SectionWriter w, ChannelSaveStream out,
                         ReturnPathReader rp, boolean ackNeeded)
            throws IOException, MigrationException, InterruptedException {
        long downtimeLimit = params.downtimeLimitMs();
        progress.maxBandwidth(limiter.bytesPerSecond());
        progress.availSwitchoverBandwidth(params.availSwitchoverBandwidth());
        progress.newWindow(migration.sent(out));
        while (true) {
            migration.checkCancel();
            long pending = pending(entries, false);
            double rate = progress.switchoverBytesPerMs();
            long threshold = SwitchoverRule.budgetBytes(rate, downtimeLimit);
            if (pending < threshold || pending == 0) {
                pending = pending(entries, true);
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
            long roundStart = migration.sent(out);
            long roundNanos = System.nanoTime();
            boolean allDone = round(entries, ids, w, out);
            progress.busy(System.nanoTime() - roundNanos);
            limiter.awaitNextWindow();
            if (allDone) {
                // Nothing is left to pre-copy, yet what must go in the downtime (a device's
                // stop-copy state, say) is more than the link is believed to move within the
                // limit, or the ack is outstanding. An idle link measures the supply, not the
                // bandwidth: keep the estimate, and do not spin re-syncing dirty logs.
                progress.idleWindow();
                if (migration.sent(out) - roundStart < IDLE_ROUND_BYTES) {
                    Thread.sleep(IDLE_PAUSE_MS);
                }
            }
            progress.updateWindow(migration.sent(out), downtimeLimit, ram.counters());
        }
    }

    /**
     * What the live handlers have pending: their cheap estimates, or ({@code exact}) the exact
     * figures, for which RAM syncs its dirty logs.
     */
    private static long pending(List<SaveEntry> entries, boolean exact) throws MigrationException {
        long pending = 0;
        for (SaveEntry e : entries) {
            if (e instanceof SaveEntry.Live live) {
                pending += exact ? live.handler().pendingExact() : live.handler().pendingEstimate();
            }
        }
        return pending;
    }

    /**
     * One PART section per live handler, the stream flushed after them; stops early at the
     * bandwidth limit. True when every handler sent all it had.
     */
    private boolean round(List<SaveEntry> entries, Map<SaveEntry, Integer> ids, SectionWriter w, ChannelSaveStream out)
            throws IOException, MigrationException {
        boolean allDone = true;
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
        return allDone;
    }
}
