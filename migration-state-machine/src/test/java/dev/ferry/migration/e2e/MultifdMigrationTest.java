package dev.ferry.migration.e2e;

import dev.ferry.core.cpu.soft.SoftVcpuState;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.machine.RunState;
import dev.ferry.migration.DestinationMigration;
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
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * multifd end to end: RAM over 1, 2 and 4 extra connections (TCP and UNIX) while the guest keeps
 * dirtying, verified as a single stream is — RAM equal at switchover, the workload continuing on
 * the destination — plus the statistics, the threads and fds it leaves behind, and a capability
 * set on one side only.
 */
@Timeout(120)
class MultifdMigrationTest {
    static final long MiB = 1L << 20;
    static NettyMigrationTransports transports;

    @TempDir
    Path tmp;

    @BeforeAll
    static void transports() {
        transports = new NettyMigrationTransports();
        transports.warmUp();
    }

    @AfterAll
    static void close() {
        transports.close();
    }

    @ParameterizedTest(name = "{0} channel(s) over {1}")
    @CsvSource({"1, tcp", "2, tcp", "4, tcp", "2, unix"})
    void ramOverMultifdChannelsArrivesWholeAndTheGuestContinues(int channels, String kind) throws Exception {
        // A first run warms the event loops, whose fds and threads stay for the process.
        SoftWorkload w = SoftWorkload.of(2, 40_000_000, 64 * MiB, 11);
        Map<String, String> fdsBefore = MigrationFailureTest.openFds();
        try (SoftVmPair pair = new SoftVmPair(256 * MiB, w)) {
            pair.startSourcePopulated();
            Thread.sleep(200);
            MigrationCapabilities caps = MigrationCapabilities.defaults().withMultifd(true);
            DestinationMigration dst = pair.destination(transports, caps);
            dst.setMultifdChannels(channels);
            String bound = dst.listen(SoftGuestMigrationTest.uri(kind, tmp));
            SourceMigration src = pair.source(transports, MigrationParameters.defaults().withMaxBandwidth(0)
                    .withMultifdChannels(channels), caps, MigrationEventSink.NONE);
            src.start(bound);

            assertEquals(MigrationStatus.COMPLETED, src.await(Duration.ofSeconds(90)), () -> src.info().errorDesc());
            assertEquals(MigrationStatus.COMPLETED, dst.await(Duration.ofSeconds(10)), dst::errorDesc);
            assertEquals(pair.source.memory().digest(), dst.memoryDigestAtLoad().longValue(),
                    "destination RAM differs from the source's at switchover");
            List<SoftVcpuState> saved = pair.sourceState();
            assertEquals(RunState.RUNNING, pair.destination.runState());
            pair.assertDestinationContinues(saved, 2000);

            MigrationInfo info = src.info();
            MigrationInfo.Ram ram = info.ram();
            assertTrue(ram.multifdBytes() >= 64 * MiB, "the working set went over the channels: " + ram);
            assertTrue(ram.transferred() - ram.multifdBytes() < MiB,
                    "the main stream carried only sections, flushes and device state: " + ram);
            assertTrue(ram.normal() >= 64 * MiB / 4096, "normal pages counted by the channels: " + ram);
            assertTrue(ram.duplicate() > 0, "zero pages found by the channels' scan: " + ram);
            assertTrue(ram.normal() + ram.duplicate() >= 256 * MiB / 4096, "every page went at least once: " + ram);
            assertEquals(ram.normal() + ram.duplicate(), dst.info().ram().normal(),
                    "the destination's channels loaded every page the source's sent: " + dst.info().ram());
            assertTrue(dst.info().ram().multifdBytes() > 64 * MiB, "the destination counted what it read: "
                    + dst.info().ram());
            SoftGuestMigrationTest.assertBreakdownAddsUp(info);
        }
        assertNoMultifdThreads();
        MigrationFailureTest.assertNoFdLeak(fdsBefore);
    }

    @Test
    void multifdAtTheSourceOnlyIsRefusedAndTheSourceRuns() throws Exception {
        SoftWorkload w = SoftWorkload.of(1, 5_000_000, 4 * MiB, 5);
        try (SoftVmPair pair = new SoftVmPair(32 * MiB, w)) {
            pair.startSource();
            DestinationMigration dst = pair.destination(transports, MigrationCapabilities.defaults());
            String bound = dst.listen("tcp:127.0.0.1:0");
            SourceMigration src = pair.source(transports, MigrationParameters.defaults(),
                    MigrationCapabilities.defaults().withMultifd(true), MigrationEventSink.NONE);
            src.start(bound);
            assertEquals(MigrationStatus.FAILED, src.await(Duration.ofSeconds(30)));
            assertEquals(MigrationStatus.FAILED, dst.await(Duration.ofSeconds(10)));
            // The destination refused the extra connections; whichever end noticed first, both say why.
            assertTrue(dst.errorDesc().contains("Turn the multifd capability on here too")
                    || dst.errorDesc().contains("turn the multifd capability on here too"), dst.errorDesc());
            // The source says what it saw: its channels refused, or the destination's verdict, or (when
            // the destination's hang-up reset the connection before its verdict was read) the hang-up.
            assertTrue(src.info().errorDesc() != null && !src.info().errorDesc().isBlank());
            assertEquals(RunState.RUNNING, pair.source.runState());
            assertFalse(pair.destination.runState().isRunning());
        }
        assertNoMultifdThreads();
    }

    /** The other way round: the destination waits 10 s for RAM channels that never come, then says why. */
    @Test
    void multifdAtTheDestinationOnlyIsRefusedAndTheSourceRuns() throws Exception {
        SoftWorkload w = SoftWorkload.of(1, 5_000_000, 4 * MiB, 5);
        try (SoftVmPair pair = new SoftVmPair(32 * MiB, w)) {
            pair.startSource();
            DestinationMigration dst = pair.destination(transports, MigrationCapabilities.defaults().withMultifd(true));
            String bound = dst.listen("tcp:127.0.0.1:0");
            SourceMigration src = pair.source(transports, MigrationParameters.defaults(),
                    MigrationCapabilities.defaults(), MigrationEventSink.NONE);
            src.start(bound);
            assertEquals(MigrationStatus.FAILED, src.await(Duration.ofSeconds(30)));
            assertEquals(MigrationStatus.FAILED, dst.await(Duration.ofSeconds(30)));
            assertTrue(dst.errorDesc().contains("multifd: 0 of 2 RAM channels")
                    && dst.errorDesc().contains("must be the same at both ends"), dst.errorDesc());
            assertEquals(RunState.RUNNING, pair.source.runState());
            assertFalse(pair.destination.runState().isRunning());
        }
        assertNoMultifdThreads();
    }

    @Test
    void multifdNeedsASocket() throws Exception {
        try (SoftVmPair pair = new SoftVmPair(8 * MiB, SoftWorkload.of(1, 1_000_000, MiB, 1))) {
            SourceMigration src = pair.source(transports, MigrationParameters.defaults(),
                    MigrationCapabilities.defaults().withMultifd(true), MigrationEventSink.NONE);
            var e = org.junit.jupiter.api.Assertions.assertThrows(dev.ferry.core.migration.MigrationException.class,
                    () -> src.start("file:" + tmp.resolve("x")));
            assertTrue(e.getMessage().contains("multifd needs a socket"), e.getMessage());
            DestinationMigration dst = pair.destination(transports, MigrationCapabilities.defaults().withMultifd(true));
            var io = org.junit.jupiter.api.Assertions.assertThrows(java.io.IOException.class,
                    () -> dst.listen("file:" + tmp.resolve("x")));
            assertTrue(io.getMessage().contains("multifd needs a socket"), io.getMessage());
        }
    }

    static void assertNoMultifdThreads() throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        List<String> left;
        do {
            left = Thread.getAllStackTraces().keySet().stream().map(Thread::getName)
                    .filter(n -> n.startsWith("ferry-multifd")).toList();
            if (left.isEmpty()) {
                return;
            }
            Thread.sleep(20);
        } while (System.nanoTime() < deadline);
        throw new AssertionError("multifd threads outlived the migration: " + left);
    }
}
