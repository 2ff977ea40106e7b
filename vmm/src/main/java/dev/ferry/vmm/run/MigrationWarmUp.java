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
     * one over two multifd channels, whose send and receive paths are their own. (Those run once
     * per packet of 128 pages, so C2 compiles them during a real migration anyway: two more
     * multifd rounds doubled the warm-up's time and left the compiler's share of a 1 GiB
     * migration's CPU as it was.)
     */
    static final int ROUNDS = 3;
    static final int SINGLE_STREAM_ROUNDS = 2;

    private MigrationWarmUp() {
    }

    /**
     * What the warm-up did: the normal pages its sources sent and its destinations loaded (a
     * multifd destination counts zero pages its channels loaded too), and its wall time.
     */
    record Result(long pagesSent, long pagesLoaded, long nanos) {
    }

    /** Runs the warm-up migrations with 4 KiB-page RAM. */
    static Result run(MigrationTransports transports) throws IOException, InterruptedException {
        return run(transports, false);
    }

    /**
     * Runs the warm-up migrations; with {@code hugePages} (the VM's RAM is on huge pages) the last
     * multifd one takes its RAM from the huge page pool too, when the pool has room left, so the
     * channels' path for huge-page RAM (straight between guest memory and the socket) is
     * compiled as well.
     */
    static Result run(MigrationTransports transports, boolean hugePages) throws IOException, InterruptedException {
        long start = System.nanoTime();
        long[] pages = new long[2];
        Path dir = Files.createTempDirectory("ferry-warm-up");
        try {
            for (int i = 0; i < ROUNDS; i++) {
                boolean huge = hugePages && i == ROUNDS - 1
                        && dev.ferry.core.memory.HugePages.available() >= 2 * RAM / dev.ferry.core.memory.HugePages.SIZE;
                once(transports, dir.resolve("m" + i + ".sock"), i >= SINGLE_STREAM_ROUNDS, huge, pages);
            }
        } finally {
            try (var files = Files.list(dir)) {
                files.forEach(p -> p.toFile().delete());
            }
            Files.deleteIfExists(dir);
        }
        return new Result(pages[0], pages[1], System.nanoTime() - start);
    }

    private static void once(MigrationTransports transports, Path socket, boolean multifd, boolean huge, long[] pages)
            throws IOException, InterruptedException {
        SoftWorkload w = SoftWorkload.of(1, 4L << 20, RAM / 4 * 3, 7);
        GuestMemory sm = memory(huge);
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
        try (src; Machine dst = destination(w, huge)) {
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

    private static GuestMemory memory(boolean huge) {
        return huge ? GuestMemory.builder().hugetlb(true).region("pc.ram", 0, RAM).build() : GuestMemory.ofSize(RAM);
    }

    private static Machine destination(SoftWorkload w, boolean huge) {
        GuestMemory dm = memory(huge);
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
