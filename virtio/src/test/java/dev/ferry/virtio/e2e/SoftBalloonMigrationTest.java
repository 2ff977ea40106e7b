package dev.ferry.virtio.e2e;

import dev.ferry.core.machine.RunState;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.MemoryTransports;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.virtio.balloon.BalloonConfig;
import dev.ferry.virtio.balloon.FreePageHinting;
import dev.ferry.virtio.guest.BalloonDriverArea;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A soft guest with an inflated balloon migrates three hops through the real engine. After each
 * hop: the balloon size (actual, num_pages) is the source's, the inflated pages are holes in the
 * destination's memfd (the host's saving holds) and marked discarded, RAM equals the source's at
 * switchover, hinting ended DONE; then the balloon moves on the destination (deflate, inflate).
 */
@Timeout(120)
class SoftBalloonMigrationTest {
    /** Loads {@code stream} into {@code dst} and leaves it paused (no autostart). */
    static void load(SoftBalloonVm dst, byte[] stream) throws Exception {
        MemoryTransports t = new MemoryTransports();
        t.serve(MemoryTransports.FILE_URI, stream);
        DestinationMigration d = new DestinationMigration(dst.machine, t, MigrationCapabilities.defaults(),
                MigrationEventSink.NONE, false);
        d.listen(MemoryTransports.FILE_URI);
        MigrationStatus st = d.await(InMemoryMigration.WAIT);
        assertEquals(MigrationStatus.COMPLETED, st, () -> "incoming: " + d.errorDesc());
    }

    @Test
    void threeHopsKeepTheBalloonAndTheHostsSaving() throws Exception {
        SoftBalloonVm first = new SoftBalloonVm("hop0", false, 64 * SoftBalloonVm.MiB, 8 * SoftBalloonVm.MiB, Map.of(),
                true, 20 * SoftBalloonVm.MiB);
        SoftBalloonVm src = first;
        try {
            first.machine.vmStart();
            first.await("the driver booted", () -> first.reg(BalloonDriverArea.R_MAGIC) == BalloonDriverArea.MAGIC);
            assertEquals(1000, first.balloonPagesBacked(1000), "the guest used its balloon pages: the host backs them");
            first.balloonTo(1000);
            assertEquals(1000, first.machine.memory().discardedPages());
            assertEquals(0, first.inflatedPagesBacked(), "the guest had used the 1000 pages; the host backs none now");
            long[] targets = {1000, 1500, 700};
            for (int hop = 1; hop <= 3; hop++) {
                long pages = targets[hop - 1];
                byte[] stream = InMemoryMigration.save(src.machine);
                assertEquals(RunState.POSTMIGRATE, src.machine.runState());
                assertEquals(0, src.inflatedPagesBacked(), "sending RAM did not allocate the source's inflated pages again");
                assertEquals(FreePageHinting.CMD_ID_DONE,
                        src.machine.mmio().read(src.device.transport().base() + 0x100 + BalloonConfig.FREE_PAGE_HINT_CMD_ID, 4),
                        "hinting ends DONE when the migration completes");
                SoftBalloonVm dst = new SoftBalloonVm("hop" + hop, true, 64 * SoftBalloonVm.MiB, 8 * SoftBalloonVm.MiB,
                        Map.of(), true, 20 * SoftBalloonVm.MiB);
                try {
                    load(dst, stream);
                    assertEquals(RunState.PAUSED, dst.machine.runState());
                    assertEquals(pages, dst.balloon().actualPages(), "hop " + hop + ": actual");
                    assertEquals(src.balloon().numPages(), dst.balloon().numPages());
                    assertEquals(src.balloon().actualBytes(), dst.balloon().actualBytes());
                    assertEquals(pages, dst.machine.memory().discardedPages(), "the inflated set arrived");
                    assertEquals(0, dst.inflatedPagesBacked(), "hop " + hop + ": the destination's host backs no inflated page");
                    List<String> problems = src.compareRam(dst);
                    assertTrue(problems.isEmpty(), "hop " + hop + ": " + problems);
                    dst.machine.vmStart();
                    long next = hop < 3 ? targets[hop] : 300;
                    dst.balloonTo(next);
                    assertEquals(next, dst.machine.memory().discardedPages());
                    assertEquals(0, dst.inflatedPagesBacked());
                    assertEquals(0, dst.reg(BalloonDriverArea.R_ERRORS));
                    dst.await("fresh stats on the destination", () -> dst.balloon().counters().statsUpdates() >= 1);
                } catch (Throwable t) {
                    dst.close();
                    throw t;
                }
                src.close();
                src = dst;
            }
        } finally {
            src.close();
        }
    }
}
