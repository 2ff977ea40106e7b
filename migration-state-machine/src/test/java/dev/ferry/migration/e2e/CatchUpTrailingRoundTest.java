package dev.ferry.migration.e2e;

import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.migration.LiveSaveHandler;
import dev.ferry.core.migration.LoadContext;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.DeviceStats;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationInfo;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.transport.NettyMigrationTransports;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Before it stops the guest the source waits for the destination to catch up (PING/PONG); the
 * pages the guest dirties during that wait go in one more round while it still runs, not in the
 * final pass inside its pause. A device whose destination side takes {@value #LAG_MS} ms to load
 * each of its pre-copy sections makes the wait at least that long while the guest dirties
 * 50 MB/s: without the rounds after the catch-up, several MB would be sent in the downtime.
 */
@Timeout(120)
class CatchUpTrailingRoundTest {
    static final long MiB = 1L << 20;
    static final long LAG_MS = 250;

    @Test
    void whatTheGuestDirtiedWhileTheDestinationCaughtUpIsSentBeforeTheStop() throws Exception {
        SoftWorkload w = SoftWorkload.of(2, 50_000_000, 64 * MiB, 7);
        AtomicLong lagged = new AtomicLong();
        try (NettyMigrationTransports transports = new NettyMigrationTransports();
             SoftVmPair pair = new SoftVmPair(256 * MiB, w, m -> m.migration().registerLive(new SlowLoader(lagged),
                     MigrationPriority.DMA_DEVICE))) {
            pair.startSourcePopulated();
            Thread.sleep(200);
            MigrationCapabilities caps = MigrationCapabilities.defaults();
            DestinationMigration dst = pair.destination(transports, caps);
            String bound = dst.listen("tcp:127.0.0.1:0");
            // The rounds are paced by the lagging destination, so the pending set stays at what the
            // guest dirties per lag: a limit that holds it lets the engine switch over.
            SourceMigration src = pair.source(transports, MigrationParameters.defaults().withMaxBandwidth(0)
                    .withDowntimeLimitMs(3000), caps, MigrationEventSink.NONE);
            src.start(bound);
            assertEquals(MigrationStatus.COMPLETED, src.await(Duration.ofSeconds(90)), () -> src.info().errorDesc());
            assertEquals(MigrationStatus.COMPLETED, dst.await(Duration.ofSeconds(10)));
            assertEquals(pair.source.memory().digest(), dst.memoryDigestAtLoad().longValue(),
                    "destination RAM differs from the source's at switchover");

            MigrationInfo info = src.info();
            DeviceStats ram = info.devices().stream().filter(d -> d.idstr().equals("ram")).findFirst().orElseThrow();
            assertTrue(lagged.get() >= 1, "the destination lagged behind the source");
            // 50 MB/s over a wait of 250 ms or more: over 12 MB dirtied while the destination caught
            // up, sent by the rounds after it while the guest ran, which dirties little meanwhile.
            assertTrue(info.catchUpRoundBytes() >= 4 * MiB, "sent after the catch-up: " + info.catchUpRoundBytes());
            assertTrue(ram.downtimeBytes() < 2 * MiB, "RAM sent inside the pause: " + ram.downtimeBytes()
                    + " bytes, after the catch-up " + info.catchUpRoundBytes());
            System.out.printf("catch-up: %d bytes sent after it, %d in the pause%n", info.catchUpRoundBytes(),
                    ram.downtimeBytes());
            pair.destination.vmStop(dev.ferry.core.machine.RunState.PAUSED);
        }
    }

    /**
     * Sends one byte per section; the destination sleeps {@link #LAG_MS} on each pre-copy section
     * the source sent in a round of the engine's iteration — each of its decisions asks every
     * handler for its estimate (then maybe the exact figure), the rounds after the catch-up only
     * for the exact figure, so two exact figures in a row mean those rounds began — and the
     * destination reads the stream about {@link #LAG_MS} behind the source when it decides to
     * switch over, and catches up at once afterwards.
     */
    static final class SlowLoader implements LiveSaveHandler {
        private final AtomicLong lagged;
        private boolean lastWasExact;
        private boolean afterCatchUp;

        SlowLoader(AtomicLong lagged) {
            this.lagged = lagged;
        }

        @Override
        public String idstr() {
            return "test-slow-loader";
        }

        @Override
        public int instanceId() {
            return 0;
        }

        @Override
        public int version() {
            return 1;
        }

        @Override
        public void saveSetup(SaveStream out) throws java.io.IOException {
            out.putU8(0);
        }

        @Override
        public boolean saveIterate(SaveStream out) throws java.io.IOException {
            out.putU8(afterCatchUp ? 0 : 1);
            return true;
        }

        @Override
        public long pendingEstimate() {
            lastWasExact = false;
            return 0;
        }

        @Override
        public long pendingExact() {
            afterCatchUp |= lastWasExact;
            lastWasExact = true;
            return 0;
        }

        @Override
        public void saveComplete(SaveStream out) throws java.io.IOException {
            out.putU8(0);
        }

        @Override
        public void saveCleanup(boolean succeeded) {
        }

        @Override
        public void loadSetup(LoadContext context) {
        }

        @Override
        public void loadState(LoadStream in, int versionId) throws java.io.IOException {
            if (in.getU8() == 1) {
                lagged.incrementAndGet();
                try {
                    Thread.sleep(LAG_MS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }

        @Override
        public void loadComplete() {
        }

        @Override
        public void loadCleanup(boolean succeeded) {
        }

        @Override
        public boolean switchoverAckNeeded() {
            return false;
        }
    }
}
