package dev.ferry.vmm.run;

import dev.ferry.core.cpu.soft.SoftCpuEngine;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.transport.MigrationTransports;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Warming a fresh {@code ferry run} up for its migrations: before the VMM opens QMP, a few small
 * throwaway VMs migrate to each other through the VMM's own transports over a UNIX socket, so the
 * JIT compiles the engine's send and receive paths, and the transports keep their stream chunks
 * faulted in, before the real migration instead of during it. Measured on this project's hosts: a
 * fresh destination otherwise compiles ~500 methods (~75 with C2) while it receives, on the same
 * two cores the migration runs on.
 *
 * <p>Nothing of the warm-up outlives it: its VMs, memory, sockets and threads are closed before
 * {@link #run} returns.
 */
final class MigrationWarmUp {
    /** Each throwaway VM's RAM; its working set is three quarters of it, the rest goes as zero pages. */
    static final long RAM = 32L << 20;
    /**
     * Migrations: enough pages through the hot loops for C2 (tier 4) to compile them; the last
     * one over two multifd channels, whose send and receive paths are their own.
     */
    static final int ROUNDS = 3;

    private MigrationWarmUp() {
    }

    /**
     * What the warm-up did: the normal pages its sources sent and its destinations loaded (a
     * multifd destination counts zero pages its channels loaded too), and its wall time.
     */
    record Result(long pagesSent, long pagesLoaded, long nanos) {
    }

    /** Runs the warm-up migrations. */
    static Result run(MigrationTransports transports) throws IOException, InterruptedException {
        long start = System.nanoTime();
        long[] pages = new long[2];
        Path dir = Files.createTempDirectory("ferry-warm-up");
        try {
            for (int i = 0; i < ROUNDS; i++) {
                once(transports, dir.resolve("m" + i + ".sock"), i == ROUNDS - 1, pages);
            }
        } finally {
            try (var files = Files.list(dir)) {
                files.forEach(p -> p.toFile().delete());
            }
            Files.deleteIfExists(dir);
        }
        return new Result(pages[0], pages[1], System.nanoTime() - start);
    }

    private static void once(MigrationTransports transports, Path socket, boolean multifd, long[] pages)
            throws IOException, InterruptedException {
        SoftWorkload w = SoftWorkload.of(1, 4L << 20, RAM / 4 * 3, 7);
        GuestMemory sm = GuestMemory.ofSize(RAM);
        Machine src;
        try {
            SoftCpuEngine cpus = new SoftCpuEngine(sm, w);
            src = new Machine("warm-up-source", sm, cpus, RunState.PRELAUNCH);
            cpus.registerMigration(src.migration());
            cpus.populate(1.0);
        } catch (RuntimeException e) {
            sm.close();
            throw e;
        }
        try (src; Machine dst = destination(w)) {
            src.vmStart();
            MigrationCapabilities caps = MigrationCapabilities.defaults().withMultifd(multifd);
            DestinationMigration in = new DestinationMigration(dst, transports, caps, MigrationEventSink.NONE, false);
            in.setMultifdChannels(2);
            String bound = in.listen("unix:" + socket);
            SourceMigration out = new SourceMigration(src, transports,
                    MigrationParameters.defaults().withMaxBandwidth(0).withMultifdChannels(2), caps, MigrationEventSink.NONE);
            out.start(bound);
            MigrationStatus s = out.await(Duration.ofSeconds(30));
            MigrationStatus d = in.await(Duration.ofSeconds(10));
            if (s != MigrationStatus.COMPLETED || d != MigrationStatus.COMPLETED) {
                throw new IOException("warm-up migration ended " + s + " / " + d + ": " + out.info().errorDesc());
            }
            pages[0] += out.info().ram().normal();
            pages[1] += in.info().ram().normal();
        } catch (dev.ferry.core.machine.VmStateChangeException | dev.ferry.core.migration.MigrationException
                 | java.util.concurrent.TimeoutException e) {
            throw new IOException("warm-up migration: " + e.getMessage(), e);
        }
    }

    private static Machine destination(SoftWorkload w) {
        GuestMemory dm = GuestMemory.ofSize(RAM);
        try {
            SoftCpuEngine cpus = new SoftCpuEngine(dm, w);
            Machine dst = new Machine("warm-up-destination", dm, cpus, RunState.INMIGRATE);
            cpus.registerMigration(dst.migration());
            return dst;
        } catch (RuntimeException e) {
            dm.close();
            throw e;
        }
    }
}
