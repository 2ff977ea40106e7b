package dev.ferry.migration.e2e;

import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.machine.RunState;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.testing.StallingProxy;
import dev.ferry.migration.transport.NettyMigrationTransports;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.net.InetSocketAddress;
import java.time.Duration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A network that goes silent mid-migration — no RST, no FIN, nothing — is detected by the
 * return-path heartbeat within {@code x-heartbeat-timeout}, not after TCP's own minutes: the
 * migration fails saying so, and the source guest runs on. A slow but live link, longer than the
 * timeout, is not mistaken for a dead one.
 */
@Timeout(60)
class NetworkStallTest {
    private static final long MiB = 1L << 20;
    private static NettyMigrationTransports transports;

    @BeforeAll
    static void open() {
        transports = new NettyMigrationTransports();
    }

    @AfterAll
    static void close() {
        transports.close();
    }

    private static InetSocketAddress address(String tcpUri) {
        String[] p = tcpUri.substring("tcp:".length()).split(":");
        return new InetSocketAddress(p[0], Integer.parseInt(p[1]));
    }

    /**
     * With multifd too: the channels, blocked on the stalled link, end with the main connection the
     * return path gave up on (found by the fault matrix: the migration thread waited for room in a
     * channel forever).
     */
    @org.junit.jupiter.params.ParameterizedTest(name = "multifd {0}")
    @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
    void aStalledNetworkIsDetectedByTheHeartbeatAndTheSourceRunsOn(boolean multifd) throws Exception {
        MigrationCapabilities caps = MigrationCapabilities.defaults().withMultifd(multifd);
        try (SoftVmPair pair = new SoftVmPair(64 * MiB, SoftWorkload.of(1, 2_000_000, 16 * MiB, 7))) {
            pair.startSourcePopulated();
            DestinationMigration dst = pair.destination(transports, caps);
            String bound = dst.listen("tcp:127.0.0.1:0");
            try (StallingProxy proxy = new StallingProxy(address(bound))) {
                // 8 MB/s: the 64 MiB guest needs seconds, so the stall hits the iteration.
                SourceMigration src = pair.source(transports, MigrationParameters.defaults()
                        .withMaxBandwidth(8_000_000).withHeartbeatTimeoutMs(1500), caps,
                        MigrationEventSink.NONE);
                src.start(proxy.uri());
                Thread.sleep(1000);
                proxy.stall();
                long stalledAt = System.nanoTime();
                assertEquals(MigrationStatus.FAILED, src.await(Duration.ofSeconds(30)), src.info().errorDesc());
                long detectedMs = (System.nanoTime() - stalledAt) / 1_000_000L;
                String why = src.info().errorDesc();
                assertTrue(why.contains("return path has been silent") && why.contains(proxy.uri()), why);
                assertTrue(detectedMs < 1500 + 2000, "detected after " + detectedMs + " ms");
                assertEquals(RunState.RUNNING, pair.source.runState());
            } finally {
                dst.abort();
                dst.await(Duration.ofSeconds(10));
            }
        }
    }

    @Test
    void aSlowLiveLinkOutlastingTheTimeoutCompletes() throws Exception {
        try (SoftVmPair pair = new SoftVmPair(32 * MiB, SoftWorkload.of(1, 500_000, 28 * MiB, 8))) {
            pair.startSourcePopulated();
            DestinationMigration dst = pair.destination(transports, MigrationCapabilities.defaults());
            String bound = dst.listen("tcp:127.0.0.1:0");
            // 28 MiB of written pages at 10 MB/s: about 3 s, twice the heartbeat timeout.
            SourceMigration src = pair.source(transports, MigrationParameters.defaults().withMaxBandwidth(10_000_000)
                    .withHeartbeatTimeoutMs(1500), MigrationCapabilities.defaults(), MigrationEventSink.NONE);
            src.start(bound);
            assertEquals(MigrationStatus.COMPLETED, src.await(Duration.ofSeconds(40)), src.info().errorDesc());
            assertTrue(src.info().totalTimeMs() > 1500, "lasted " + src.info().totalTimeMs() + " ms");
            assertEquals(MigrationStatus.COMPLETED, dst.await(Duration.ofSeconds(10)));
        }
    }
}
