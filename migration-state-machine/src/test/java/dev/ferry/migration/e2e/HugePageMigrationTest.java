package dev.ferry.migration.e2e;

import dev.ferry.core.cpu.soft.SoftVcpuState;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.HugePages;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.transport.NettyMigrationTransports;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Guest RAM on 2 MiB huge pages migrates like any other: a dirtying soft guest moves between two
 * VMs whose RAM is hugetlbfs on one side, the other or both; at switchover the destination's RAM
 * equals the source's, and the guest continues exactly where it stopped. A huge page the guest
 * touched only partly is resident as a whole, so the sender reads it, and its untouched 4 KiB
 * pages still go as zero pages.
 */
@Timeout(120)
class HugePageMigrationTest {
    static final long MiB = 1L << 20;
    static final long RAM = 64 * MiB;
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

    private static GuestMemory memory(boolean hugetlb) {
        return GuestMemory.builder().hugetlb(hugetlb).region("pc.ram", 0, RAM).build();
    }

    /**
     * With multifd the channels move pages of 2 MiB-page RAM straight between guest memory and the
     * socket, and pages of 4 KiB-page RAM through a buffer: each mix of the two, on both ends.
     */
    @ParameterizedTest(name = "source huge pages {0}, destination huge pages {1}, multifd channels {2}")
    @CsvSource({"true, true, 0", "false, true, 0", "true, false, 0", "true, true, 2", "false, true, 1", "true, false, 1"})
    void migratesAndContinues(boolean sourceHuge, boolean destinationHuge, int channels) throws Exception {
        long need = (sourceHuge ? RAM / HugePages.SIZE : 0) + (destinationHuge ? RAM / HugePages.SIZE : 0);
        long available = HugePages.available();
        assumeTrue(available >= need, "the host's 2 MiB huge page pool has " + available + " pages available, this"
                + " migration needs " + need + " (sysctl vm.nr_hugepages; .ci/run reserves them)");
        SoftWorkload w = SoftWorkload.of(1, 20_000_000, 16 * MiB, 5);
        try (SoftVmPair pair = new SoftVmPair(memory(sourceHuge), memory(destinationHuge), w, m -> { })) {
            pair.startSourcePopulated();
            Thread.sleep(200);
            MigrationCapabilities caps = MigrationCapabilities.defaults().withMultifd(channels > 0);
            DestinationMigration dst = pair.destination(transports, caps);
            MigrationParameters params = MigrationParameters.defaults().withMaxBandwidth(0);
            if (channels > 0) {
                dst.setMultifdChannels(channels);
                params = params.withMultifdChannels(channels);
            }
            String bound = dst.listen(channels == 2 ? "tcp:127.0.0.1:0" : "unix:" + tmp.resolve("mig.sock"));
            SourceMigration src = pair.source(transports, params, caps, MigrationEventSink.NONE);
            src.start(bound);
            assertEquals(MigrationStatus.COMPLETED, src.await(Duration.ofSeconds(60)), () -> src.info().errorDesc());
            assertEquals(MigrationStatus.COMPLETED, dst.await(Duration.ofSeconds(10)));

            assertEquals(pair.source.memory().digest(), dst.memoryDigestAtLoad().longValue(),
                    "destination RAM differs from the source's at switchover");
            assertTrue(src.info().ram().duplicate() > 0, "the untouched part went as zero pages: " + src.info());
            if (channels > 0) {
                assertTrue(src.info().ram().multifdBytes() >= 16 * MiB, "the working set went over the channels: "
                        + src.info().ram());
            }
            List<SoftVcpuState> saved = pair.sourceState();
            pair.assertDestinationContinues(saved, 500);
            assertTrue(pair.destination.memory().regions().get(0).hugetlb() == destinationHuge);
        }
    }
}
