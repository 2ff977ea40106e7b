package dev.ferry.migration;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.NonIterableSave;
import dev.ferry.core.migration.SaveEntry;
import dev.ferry.migration.ram.RamMigration;
import dev.ferry.migration.stream.ChannelSaveStream;
import dev.ferry.migration.stream.Qevm;
import dev.ferry.migration.stream.SectionWriter;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.LongSupplier;

/**
 * The source's switchover, QEMU's {@code migration_completion}: stops the VM, sends every live
 * handler's END section (what is still dirty, a device's stop-copy data), then the FULL sections
 * (device states), EOF and the vmdesc; drains the stream (a file) or waits for the destination's
 * SHUT on the return path, and measures where the pause went ({@link DowntimeBreakdown}). The VM
 * ends in {@code postmigrate}; on a failure it stays stopped and {@link SourceMigration} restarts
 * it when {@link #stoppedVm()} says this stopped it.
 *
 * <p>Thread: the migration thread; a cancel from another thread closes the connection, which
 * fails the write in progress, and is checked between sections.
 */
final class StopAndCopy {
    /** Logs under the engine's name, as before the engine was split by role. */
    private static final Logger LOG = LoggerFactory.getLogger(SourceMigration.class);
    private final SourceMigration migration;
    private final Machine machine;
    private final MigrationParameters params;
    private final SourceProgress progress;
    private final RamMigration ram;
    private final LongSupplier clock;
    private boolean stoppedVm;

    StopAndCopy(SourceMigration migration, Machine machine, MigrationParameters params, SourceProgress progress,
                RamMigration ram, LongSupplier clock) {
        this.migration = migration;
        this.machine = machine;
        this.params = params;
        this.progress = progress;
        this.ram = ram;
        this.clock = clock;
    }

    /** Whether the switchover stopped a running VM (then a failure must start it again). */
    boolean stoppedVm() {
        return stoppedVm;
    }

    /**
     * Stops the VM and sends the rest of the stream; returns once the destination runs the VM
     * (with a return path) or the stream reached the kernel (a file). {@code rp} is null without
     * a return path.
     */
    void run(List<SaveEntry> entries, Map<SaveEntry, Integer> ids, SectionWriter w, ChannelSaveStream out,
             ReturnPathReader rp) throws IOException, MigrationException, InterruptedException {
        migration.checkCancel();
        progress.downtimeStarts();
        stoppedVm = machine.runState().isRunning();
        try {
            machine.vmStop(RunState.FINISH_MIGRATE);
        } catch (dev.ferry.core.machine.VmStateChangeException e) {
            throw new MigrationException("stopping the VM for switchover failed: " + e.getMessage(), e);
        }
        long stopped = clock.getAsLong();
        migration.setStatus(MigrationStatus.DEVICE);
        VmdescBuilder vmdesc = new VmdescBuilder();
        long ramNanos = 0;
        for (SaveEntry e : entries) {
            migration.checkCancel();
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
                migration.checkCancel();
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
        DowntimeBreakdown b = DowntimeBreakdown.of(cpusNanos, stopNanos - cpusNanos, syncNanos, ramNanos - syncNanos,
                sent - stopped - ramNanos, drained - sent, running - drained,
                rp != null ? rp.destinationTimings() : ReturnPath.DestinationTimings.NONE);
        LOG.debug("{}: switchover phases (µs): {}", machine.name(), b.phasesMicros());
        progress.downtimeEnds(b);
        machine.setRunState(RunState.POSTMIGRATE);
    }

    private void awaitDestination(ReturnPathReader rp) throws MigrationException, InterruptedException {
        try {
            int code = rp.shut().get(params.returnPathTimeoutMs(), TimeUnit.MILLISECONDS);
            if (code != 0) {
                throw new MigrationException("the destination failed to load the migration stream (it reported "
                        + code + "); see the destination's query-migrate");
            }
        } catch (ExecutionException e) {
            migration.checkCancel();
            throw new MigrationException("the destination did not confirm it runs: " + e.getCause().getMessage(), e);
        } catch (TimeoutException e) {
            throw new MigrationException("the destination did not confirm it runs within "
                    + params.returnPathTimeoutMs() + " ms");
        }
    }
}
