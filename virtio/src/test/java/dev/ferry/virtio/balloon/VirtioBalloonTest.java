package dev.ferry.virtio.balloon;

import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.PrecopyNotifier;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.transport.MmioGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** virtio-balloon driven as a guest driver would: config, PFNs and host memory, stats, hinting. */
@Timeout(30)
class VirtioBalloonTest {
    private static final long ALL = Virtio.bit(VirtioBalloon.F_STATS_VQ) | Virtio.bit(VirtioBalloon.F_FREE_PAGE_HINT);

    @Test
    void configSpaceIsLittleEndianAndSizedByFeatures() throws Exception {
        try (BalloonGuest b = new BalloonGuest(Map.of())) {
            long offered = b.g.deviceFeatures();
            assertEquals(ALL, offered & 0xff, "STATS_VQ and FREE_PAGE_HINT offered, nothing else of the balloon's");
            assertEquals(Virtio.ID_BALLOON, b.g.read(0x008));
            b.bringUp(ALL, 4);
            assertEquals(0, b.config32(BalloonConfig.NUM_PAGES));
            assertEquals(FreePageHinting.CMD_ID_DONE, b.config32(BalloonConfig.FREE_PAGE_HINT_CMD_ID));
            assertEquals(0xffffffffL, b.config32(12), "12-byte config with FREE_PAGE_HINT: poison_val absent");
            b.balloon.setTarget(MmioGuest.RAM - (3L << 20) - 4096);
            // 769 pages = 0x301: bytes 01 03 00 00 little-endian.
            assertEquals(0x301, b.config32(BalloonConfig.NUM_PAGES));
            assertEquals(0x01, b.g.read(0x100, 1));
            assertEquals(0x03, b.g.read(0x101, 1));
            b.g.awaitInterrupt(); // a target change interrupts (config)
            assertEquals(Virtio.ISR_CONFIG, b.g.read(0x060) & Virtio.ISR_CONFIG);
            List<Long> changes = new ArrayList<>();
            b.balloon.setActualListener(changes::add);
            b.g.write(0x104, 0x301);
            assertEquals(0x301, b.config32(BalloonConfig.ACTUAL));
            assertEquals(MmioGuest.RAM - 0x301 * 4096L, b.balloon.actualBytes());
            assertEquals(List.of(MmioGuest.RAM - 0x301 * 4096L), changes, "one change, in bytes left to the guest");
            b.g.write(0x104, 0x301);
            assertEquals(1, changes.size(), "the same actual again is no change");
            b.g.write(0x104, (MmioGuest.RAM >> 12) + 1);
            assertEquals(0x301, b.config32(BalloonConfig.ACTUAL), "actual above RAM is ignored");
            b.balloon.setTarget(Long.MAX_VALUE);
            assertEquals(0, b.config32(BalloonConfig.NUM_PAGES), "a target above RAM asks for nothing");
        }
        try (BalloonGuest b = new BalloonGuest(Map.of("free-page-hint", false, "stats", false))) {
            assertEquals(0, b.g.deviceFeatures() & 0xff);
            b.bringUp(0, 2);
            assertEquals(0xffffffffL, b.config32(8), "8-byte config without FREE_PAGE_HINT");
            b.g.write(0x030, 2);
            assertEquals(0, b.g.read(0x034), "two queues only");
        }
    }

    @Test
    void aStoppedDeviceInterruptsOnlyWhenTheVmRunsAgain() throws Exception {
        try (BalloonGuest b = new BalloonGuest(Map.of())) {
            b.bringUp(ALL, 4);
            b.g.settle();
            b.g.write(0x064, b.g.read(0x060));
            assertFalse(b.g.lineRaised());
            b.g.machine.vmStop(dev.ferry.core.machine.RunState.PAUSED);
            b.balloon.setTarget(MmioGuest.RAM - 4096 * 10);
            b.g.machine.migration().notifyPrecopy(PrecopyNotifier.Step.AFTER_BITMAP_SYNC, false);
            assertEquals(10, b.config32(BalloonConfig.NUM_PAGES), "the config reads the new target at once");
            assertFalse(b.g.lineRaised(), "no interrupt while the VM is stopped");
            b.g.machine.vmStart();
            b.g.awaitInterrupt();
            assertEquals(Virtio.ISR_CONFIG, b.g.read(0x060) & Virtio.ISR_CONFIG);
        }
    }

    @Test
    void inflatePunchesHostMemoryAndDeflateReturnsPages() throws Exception {
        try (BalloonGuest b = new BalloonGuest(Map.of())) {
            b.bringUp(ALL, 4);
            GuestMemory ram = b.g.machine.memory();
            long pool = BalloonGuest.POOL;
            b.g.mem.fill(pool, 64 * 4096, (byte) 0x77);
            b.g.mem.writeU64(pool + 64 * 4096, 0x1234); // the neighbour page stays
            b.g.mem.fill(MmioGuest.small(0), 4096, (byte) 0); // the PFN buffer's page, allocated before measuring
            long before = ram.allocatedBytes();
            // 64 pages by PFN (4 KiB units), in two non-adjacent runs plus a duplicate.
            long[] pfns = new long[65];
            System.arraycopy(BalloonGuest.pfnRange(pool, 32), 0, pfns, 0, 32);
            System.arraycopy(BalloonGuest.pfnRange(pool + 32 * 4096, 32), 0, pfns, 32, 32);
            pfns[64] = pool >>> 12;
            assertEquals(0, b.sendPfns(0, 0, pfns).length(), "the device writes nothing into an inflate buffer");
            long after = ram.allocatedBytes();
            assertEquals(64 * 4096, before - after, "the host backs 64 pages less (memfd st_blocks)");
            assertEquals(64, b.balloon.counters().inflatedPages());
            assertEquals(64, ram.discardedPages());
            assertTrue(ram.isDiscarded(new Gpa(pool + 63 * 4096)));
            assertFalse(ram.isDiscarded(new Gpa(pool + 64 * 4096)));
            assertEquals(0x1234, b.g.mem.readU64(pool + 64 * 4096));
            @SuppressWarnings("unchecked")
            Map<String, Object> d = (Map<String, Object>) b.g.describe().get("virtio-balloon");
            assertEquals(64L, d.get("inflated-pages"));
            assertEquals(64L, d.get("inflated-now"));
            assertEquals("done", d.get("free-page-hint"));
            assertEquals(0, ram.allocatedBytes() - after, "checking the marks allocated nothing");

            assertEquals(0, b.sendPfns(1, 0, BalloonGuest.pfnRange(pool, 16)).length());
            assertEquals(16, b.balloon.counters().deflatedPages());
            assertEquals(48, ram.discardedPages());
            assertEquals(0, b.g.mem.readU64(pool), "a deflated page reads as zero");
            b.g.mem.writeU64(pool, 42);
            assertEquals(42, b.g.mem.readU64(pool), "and is the guest's again");
        }
    }

    @Test
    void statsAreReadFromPacked10ByteEntriesAndPolled() throws Exception {
        try (BalloonGuest b = new BalloonGuest(Map.of())) {
            b.bringUp(ALL, 4);
            assertEquals(-1L, stat(b, "stat-free-memory"), "nothing reported yet");
            assertEquals(0L, b.balloon.guestStats().toGuestStats().get("last-update"));
            long buf = MmioGuest.small(10);
            int[] tags = {BalloonStats.MEMFREE, BalloonStats.MEMTOT, 99, BalloonStats.AVAIL};
            long[] vals = {5L << 20, 16L << 20, 7, 4L << 20};
            for (int i = 0; i < tags.length; i++) {
                b.g.mem.writeU16(buf + 10L * i, tags[i]);
                b.g.mem.writeU64(buf + 10L * i + 2, vals[i]);
            }
            // 4 entries and 5 stray bytes: the partial entry is ignored.
            b.q(2).add(List.of(MmioGuest.buf(buf, 45)), List.of(), false);
            b.g.kick(2);
            b.g.settle();
            assertEquals(5L << 20, stat(b, "stat-free-memory"));
            assertEquals(16L << 20, stat(b, "stat-total-memory"));
            assertEquals(4L << 20, stat(b, "stat-available-memory"));
            assertEquals(-1L, stat(b, "stat-swap-in"), "not reported: -1");
            assertEquals(1_700_000_000L, b.balloon.guestStats().lastUpdate());
            assertEquals(null, b.q(2).pollUsed(), "the device holds the stats buffer");
            b.balloon.setStatsPollingInterval(1);
            assertEquals(0, b.g.awaitUsed(b.q(2)).length(), "polling hands the buffer back for fresh stats");
            b.clock.set(1_700_000_100L);
            b.g.mem.writeU64(buf + 2, 6L << 20);
            b.q(2).add(List.of(MmioGuest.buf(buf, 40)), List.of(), false);
            b.g.kick(2);
            b.g.settle();
            assertEquals(6L << 20, stat(b, "stat-free-memory"));
            assertEquals(1_700_000_100L, b.balloon.guestStats().lastUpdate());
            b.balloon.setStatsPollingInterval(0);
        }
    }

    @SuppressWarnings("unchecked")
    private static long stat(BalloonGuest b, String name) {
        return (Long) ((Map<String, Object>) b.balloon.guestStats().toGuestStats().get("stats")).get(name);
    }

    @Test
    void hintProtocolStartsOnTheRequestedIdAndClearsOnlyThen() throws Exception {
        try (BalloonGuest b = new BalloonGuest(Map.of())) {
            b.bringUp(ALL, 4);
            FreePageHintsProbe sink = new FreePageHintsProbe(b.g.machine.memory());
            b.g.machine.migration().setFreePageHints(sink);
            var reg = b.g.machine.migration();
            reg.notifyPrecopy(PrecopyNotifier.Step.BEFORE_BITMAP_SYNC, false);
            reg.notifyPrecopy(PrecopyNotifier.Step.AFTER_BITMAP_SYNC, false);
            assertEquals(0x80000000L, b.config32(BalloonConfig.FREE_PAGE_HINT_CMD_ID), "the first id");
            b.g.awaitInterrupt(); // the new id comes with a config interrupt

            hint(b, BalloonGuest.POOL, 1 << 20);
            assertEquals(0, sink.pages(), "a hint before the id is stale");
            sendId(b, 0x7fffffff);
            hint(b, BalloonGuest.POOL, 1 << 20);
            assertEquals(0, sink.pages(), "an unknown id starts nothing");
            sendId(b, 0x80000000);
            hint(b, BalloonGuest.POOL, 1 << 20);
            assertEquals(256, sink.pages(), "1 MiB hinted under the current id");
            assertEquals(List.of(BalloonGuest.POOL), sink.starts());
            sendId(b, FreePageHinting.CMD_ID_STOP);
            assertEquals(FreePageHinting.State.STOP, b.balloon.hinting().state());
            hint(b, BalloonGuest.POOL + (1 << 20), 4096);
            assertEquals(256, sink.pages(), "after the driver's STOP nothing more is taken");

            reg.notifyPrecopy(PrecopyNotifier.Step.BEFORE_BITMAP_SYNC, false);
            assertEquals(0, b.config32(BalloonConfig.FREE_PAGE_HINT_CMD_ID), "STOP before a sync");
            reg.notifyPrecopy(PrecopyNotifier.Step.AFTER_BITMAP_SYNC, false);
            assertEquals(0x80000001L, b.config32(BalloonConfig.FREE_PAGE_HINT_CMD_ID), "a new id per sync");
            sendId(b, 0x80000000);
            hint(b, BalloonGuest.POOL, 4096);
            assertEquals(256, sink.pages(), "the previous round's id is stale");
            sendId(b, 0x80000001);
            reg.notifyPrecopy(PrecopyNotifier.Step.BEFORE_BITMAP_SYNC, false);
            hint(b, BalloonGuest.POOL, 4096);
            assertEquals(256, sink.pages(), "a hint that arrives after the sync began is dropped");
            reg.notifyPrecopy(PrecopyNotifier.Step.AFTER_BITMAP_SYNC, true);
            assertEquals(FreePageHinting.CMD_ID_DONE, b.config32(BalloonConfig.FREE_PAGE_HINT_CMD_ID),
                    "DONE once the VM is stopped");
            reg.notifyPrecopy(PrecopyNotifier.Step.AFTER_BITMAP_SYNC, false);
            reg.notifyPrecopy(PrecopyNotifier.Step.CLEANUP, false);
            assertEquals(FreePageHinting.CMD_ID_DONE, b.config32(BalloonConfig.FREE_PAGE_HINT_CMD_ID), "DONE at cleanup");
            assertEquals(1, b.balloon.counters().hintBuffers());
            assertEquals(256L * 4096, b.balloon.counters().hintBytesSaved());
            assertEquals(0, b.g.status() & Virtio.STATUS_NEEDS_RESET);
        }
    }

    @Test
    void hintsThePendingSetRefusesAreCountedNotFatal() throws Exception {
        try (BalloonGuest b = new BalloonGuest(Map.of())) {
            b.bringUp(ALL, 4);
            b.g.machine.migration().setFreePageHints((gpa, len) -> {
                throw new IllegalArgumentException("not inside one RAM region");
            });
            b.g.machine.migration().notifyPrecopy(PrecopyNotifier.Step.AFTER_BITMAP_SYNC, false);
            sendId(b, 0x80000000);
            hint(b, BalloonGuest.POOL, 4096);
            assertEquals(1, b.balloon.counters().refusedHints());
            assertEquals(0, b.g.status() & Virtio.STATUS_NEEDS_RESET);
        }
    }

    static void sendId(BalloonGuest b, int id) throws InterruptedException {
        long buf = MmioGuest.small(200);
        b.g.mem.writeU32(buf, id);
        b.q(3).add(List.of(MmioGuest.buf(buf, 4)), List.of(), false);
        b.g.kick(3);
        b.g.awaitUsed(b.q(3));
    }

    static void hint(BalloonGuest b, long gpa, long len) throws InterruptedException {
        b.q(3).add(List.of(), List.of(MmioGuest.buf(gpa, len)), false);
        b.g.kick(3);
        assertEquals(0, b.g.awaitUsed(b.q(3)).length(), "hint buffers come back unwritten");
    }
}
