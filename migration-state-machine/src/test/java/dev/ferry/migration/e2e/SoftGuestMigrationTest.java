package dev.ferry.migration.e2e;

import dev.ferry.core.cpu.soft.ContinuationCheck;
import dev.ferry.core.cpu.soft.SoftCpuEngine;
import dev.ferry.core.cpu.soft.SoftVcpuState;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.machine.RunState;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.DowntimeBreakdown;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationInfo;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.transport.NettyMigrationTransports;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The engine end to end, in one process over real loopback sockets: a soft guest that keeps
 * dirtying memory migrates; at switchover the destination's RAM equals the source's, and the
 * workload goes on on the destination exactly where it stopped.
 */
@Timeout(120)
class SoftGuestMigrationTest {
    static final long MiB = 1L << 20;
    static NettyMigrationTransports transports;

    @TempDir
    Path tmp;

    @BeforeAll
    static void transports() {
        transports = new NettyMigrationTransports();
    }

    @AfterAll
    static void close() {
        transports.close();
    }

    static String uri(String kind, Path tmp) {
        return kind.equals("tcp") ? "tcp:127.0.0.1:0" : "unix:" + tmp.resolve("mig.sock");
    }

    @ParameterizedTest
    @ValueSource(strings = {"tcp", "unix"})
    void oneGibGuestDirtying50MBpsMigratesAndContinues(String kind) throws Exception {
        SoftWorkload w = SoftWorkload.of(2, 50_000_000, 256 * MiB, 42);
        try (SoftVmPair pair = new SoftVmPair(1024 * MiB, w)) {
            pair.startSourcePopulated();
            Thread.sleep(300); // let the guest dirty its working set for a while
            List<Long> passes = new CopyOnWriteArrayList<>();
            List<MigrationStatus> statuses = new CopyOnWriteArrayList<>();
            MigrationEventSink events = new MigrationEventSink() {
                @Override
                public void status(MigrationStatus s) {
                    statuses.add(s);
                }

                @Override
                public void pass(long pass) {
                    passes.add(pass);
                }
            };
            MigrationCapabilities caps = MigrationCapabilities.defaults().withEvents(true);
            DestinationMigration dst = pair.destination(transports, caps);
            String bound = dst.listen(uri(kind, tmp));
            SourceMigration src = pair.source(transports, MigrationParameters.defaults().withMaxBandwidth(0), caps, events);
            src.start(bound);

            assertEquals(MigrationStatus.COMPLETED, src.await(Duration.ofSeconds(90)), () -> src.info().errorDesc());
            assertEquals(MigrationStatus.COMPLETED, dst.await(Duration.ofSeconds(10)));
            MigrationInfo info = src.info();

            // At switchover: the stopped source's RAM is what the destination loaded.
            assertEquals(RunState.POSTMIGRATE, pair.source.runState());
            assertEquals(pair.source.memory().digest(), dst.memoryDigestAtLoad().longValue(),
                    "destination RAM differs from the source's at switchover");
            List<SoftVcpuState> saved = pair.sourceState();

            // The guest runs on the destination and continues exactly where it stopped.
            assertEquals(RunState.RUNNING, pair.destination.runState());
            long before = pair.destinationCpus.pagesWritten();
            long deadline = System.nanoTime() + 20_000_000_000L;
            while (pair.destinationCpus.pagesWritten() < before + 2000 && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            pair.destination.vmStop(RunState.PAUSED);
            List<SoftVcpuState> now = pair.destinationCpus.snapshot();
            ContinuationCheck check = SoftCpuEngine.verifyContinuation(pair.destination.memory(), w, saved, now);
            assertTrue(check.ok(), check::toString);
            assertTrue(check.stepsReplayed() >= 2000, "the destination guest made progress: " + check);
            assertTrue(SoftCpuEngine.verifyWorkingSet(pair.destination.memory(), w).intact());

            // Statistics as query-migrate reports them.
            assertEquals(1024 * MiB, info.ram().total());
            assertTrue(info.ram().normal() >= 256 * MiB / 4096, "the working set was sent as PAGE records: " + info);
            assertTrue(info.ram().duplicate() > 0, "zero pages were sent as ZERO records");
            assertTrue(info.ram().dirtySyncCount() >= 1);
            assertTrue(info.downtimeMs() >= 0 && info.totalTimeMs() >= info.downtimeMs());
            assertBreakdownAddsUp(info);
            DowntimeBreakdown b = info.breakdown();
            // The destination may have read the stream's end, and begun its digest, while the
            // source's last flush was returning: the digest lies in the drain and destination phases.
            assertTrue(b.drainNanos() + b.destinationNanos() >= dst.digestNanos(),
                    "the destination's digest at load lies after the source's last byte: " + b + ", digest "
                            + dst.digestNanos() + " ns");
            assertTrue(b.vcpuStopNanos() > 0 && b.finalSyncNanos() > 0 && b.finalRamPassNanos() > 0 && b.deviceStateNanos() > 0,
                    "every source phase was timed: " + b);
            // The destination's own phases came back over the return path and split its share.
            Map<String, Long> reported = dst.phasesMicros();
            assertTrue(reported.get("destination-verify") >= dst.digestNanos() / 1000,
                    "the destination's verification holds its digest: " + reported);
            assertTrue(reported.get("destination-start") > 0, "the destination timed its VM start: " + reported);
            Map<String, Long> phases = b.phasesMicros();
            if (b.ackNanos() > 0) { // nothing was cut to fit the share (see DowntimeBreakdown.of)
                for (String k : reported.keySet()) {
                    assertEquals(reported.get(k), phases.get(k), 1, k + " as the destination reported it: "
                            + reported + " vs " + phases);
                }
            }
            assertEquals(List.of(MigrationStatus.SETUP, MigrationStatus.ACTIVE, MigrationStatus.DEVICE,
                    MigrationStatus.COMPLETED), statuses);
            assertEquals(info.ram().dirtySyncCount(), passes.size(), "one MIGRATION_PASS per dirty sync");
        }
    }

    /**
     * The phases are consecutive, so in query-migrate's units (µs per phase, ms totals) they add up
     * to QEMU's downtime and to the guest-visible pause within a millisecond.
     */
    static void assertBreakdownAddsUp(MigrationInfo info) {
        DowntimeBreakdown b = info.breakdown();
        assertNotNull(b, "a completed migration reports its switchover phases");
        long sourceUs = 0;
        long pauseUs = 0;
        for (Map.Entry<String, Long> p : b.phasesMicros().entrySet()) {
            assertTrue(p.getValue() >= 0, "negative phase " + p.getKey() + " in " + b);
            boolean destination = p.getKey().startsWith("destination-") || p.getKey().equals("ack");
            sourceUs += destination ? 0 : p.getValue();
            pauseUs += p.getValue();
        }
        assertEquals(info.downtimeMs(), sourceUs / 1000.0, 1.0, "QEMU's downtime = vcpu-stop .. drain: " + b);
        assertEquals(b.guestPauseNanos() / 1e3, pauseUs, 7.0, "the guest pause = all phases: " + b);
        assertEquals(info.downtimeMs(), b.downtimeNanos() / 1_000_000);
        assertTrue(b.guestPauseNanos() >= b.downtimeNanos());
    }

    /** {@code file:} saves a running guest to a file (a snapshot) that a second VM loads and runs on. */
    @Test
    void savesToAFileAndLoadsItBack() throws Exception {
        SoftWorkload w = SoftWorkload.of(2, 20_000_000, 32 * MiB, 9);
        Path file = tmp.resolve("guest.qevm");
        try (SoftVmPair pair = new SoftVmPair(128 * MiB, w)) {
            pair.startSourcePopulated();
            Thread.sleep(100);
            SourceMigration src = pair.source(transports, MigrationParameters.defaults().withMaxBandwidth(0),
                    MigrationCapabilities.defaults(), MigrationEventSink.NONE);
            src.start("file:" + file);
            assertEquals(MigrationStatus.COMPLETED, src.await(Duration.ofSeconds(60)), () -> src.info().errorDesc());
            assertEquals(RunState.POSTMIGRATE, pair.source.runState());
            long sourceDigest = pair.source.memory().digest();
            List<SoftVcpuState> saved = pair.sourceState();
            assertTrue(java.nio.file.Files.size(file) > 32 * MiB, "the file holds the working set");
            assertBreakdownAddsUp(src.info());
            assertEquals(0, src.info().breakdown().destinationNanos(), "a file has no destination to wait for");
            assertEquals(src.info().breakdown().downtimeNanos(), src.info().breakdown().guestPauseNanos());

            DestinationMigration dst = pair.destination(transports, MigrationCapabilities.defaults());
            dst.listen("file:" + file);
            assertEquals(MigrationStatus.COMPLETED, dst.await(Duration.ofSeconds(60)), dst::errorDesc);
            assertEquals(sourceDigest, dst.memoryDigestAtLoad().longValue());
            long before = pair.destinationCpus.pagesWritten();
            while (pair.destinationCpus.pagesWritten() < before + 500) {
                Thread.sleep(10);
            }
            pair.destination.vmStop(RunState.PAUSED);
            ContinuationCheck check = SoftCpuEngine.verifyContinuation(pair.destination.memory(), w, saved,
                    pair.destinationCpus.snapshot());
            assertTrue(check.ok(), check::toString);
        }
    }

    /** Dirtying outruns max-bandwidth: without auto-converge the migration never converges. */
    @Test
    void doesNotConvergeWhenDirtyingOutrunsTheLink() throws Exception {
        SoftWorkload w = SoftWorkload.of(1, 12_000_000, 8 * MiB, 7);
        try (SoftVmPair pair = new SoftVmPair(8 * MiB, w)) {
            pair.startSourcePopulated();
            DestinationMigration dst = pair.destination(transports, MigrationCapabilities.defaults());
            String bound = dst.listen("tcp:127.0.0.1:0");
            SourceMigration src = pair.source(transports, MigrationParameters.defaults().withMaxBandwidth(8_000_000),
                    MigrationCapabilities.defaults(), MigrationEventSink.NONE);
            src.start(bound);
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (src.status() == MigrationStatus.SETUP && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            while (src.info().ram().dirtySyncCount() < 6 && System.nanoTime() < deadline) {
                assertEquals(MigrationStatus.ACTIVE, src.status(), "it must keep iterating");
                Thread.sleep(50);
            }
            assertTrue(src.info().ram().dirtySyncCount() >= 6);
            assertEquals(MigrationStatus.ACTIVE, src.status());
            assertEquals(0, src.info().cpuThrottlePercentage());
            src.cancel();
            assertEquals(MigrationStatus.CANCELLED, src.await(Duration.ofSeconds(10)));
            assertEquals(RunState.RUNNING, pair.source.runState());
        }
    }

    /** The same guest and link converge with auto-converge, which reports the throttle it applied. */
    @Test
    void autoConvergeThrottlesUntilItConverges() throws Exception {
        SoftWorkload w = SoftWorkload.of(1, 12_000_000, 8 * MiB, 7);
        try (SoftVmPair pair = new SoftVmPair(8 * MiB, w)) {
            pair.startSourcePopulated();
            MigrationCapabilities caps = MigrationCapabilities.defaults().withAutoConverge(true);
            DestinationMigration dst = pair.destination(transports, caps);
            String bound = dst.listen("tcp:127.0.0.1:0");
            SourceMigration src = pair.source(transports, MigrationParameters.defaults().withMaxBandwidth(8_000_000),
                    caps, MigrationEventSink.NONE);
            src.start(bound);
            int maxThrottle = 0;
            while (!src.status().isFinal()) {
                maxThrottle = Math.max(maxThrottle, src.info().cpuThrottlePercentage());
                Thread.sleep(20);
            }
            assertEquals(MigrationStatus.COMPLETED, src.status(), () -> src.info().errorDesc());
            MigrationInfo info = src.info();
            assertTrue(info.cpuThrottlePercentage() >= 20, "the throttle applied is reported: " + info);
            assertTrue(maxThrottle >= 20);
            assertEquals(0, pair.sourceCpus.throttlePercentage(), "the throttle is lifted afterwards");
            assertEquals(pair.source.memory().digest(), dst.memoryDigestAtLoad().longValue());
        }
    }
}
