package dev.ferry.virtio.balloon;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.PrecopyNotifier;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.transport.MmioGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A hostile balloon driver: absurd PFNs, PFNs past RAM, hints outside RAM, short and empty
 * buffers, unknown command ids. Each is refused or sets NEEDS_RESET; nothing is punched or
 * written outside what the driver may give, and the device never throws.
 */
@Timeout(30)
class HostileBalloonDriverTest {
    private static final long ALL = Virtio.bit(VirtioBalloon.F_STATS_VQ) | Virtio.bit(VirtioBalloon.F_FREE_PAGE_HINT);

    @Test
    void pfnsOutsideRamAreSkippedAndCountedAndNothingIsPunched() throws Exception {
        try (BalloonGuest b = new BalloonGuest(Map.of())) {
            b.bringUp(ALL, 4);
            GuestMemory ram = b.g.machine.memory();
            b.g.mem.fill(MmioGuest.small(0), 4096, (byte) 0);
            long last = MmioGuest.RAM - 4096;
            b.g.mem.fill(last, 4096, (byte) 0x3c); // the page a PFN just past RAM would neighbour
            b.g.mem.fill(0, 4096, (byte) 0x3c);    // and PFN 0, where a truncated 0x1_0000_0000 would land
            long allocated = ram.allocatedBytes();
            long ramPfns = MmioGuest.RAM >>> 12;
            b.sendPfns(0, 0, 0xffffffffL, ramPfns, ramPfns + 1, 0x80000000L, 0x100000L);
            b.sendPfns(1, 0, 0xffffffffL, ramPfns);
            assertEquals(7, b.balloon.counters().refusedPfns());
            assertEquals(0, ram.discardedPages());
            assertEquals(0, b.balloon.counters().inflatedPages());
            assertEquals(allocated, ram.allocatedBytes(), "no page punched");
            assertEquals(0x3c3c3c3c3c3c3c3cL, b.g.mem.readU64(last + 4088), "the last page of RAM unchanged");
            assertEquals(0x3c3c3c3c3c3c3c3cL, b.g.mem.readU64(0), "page 0 unchanged");
            assertEquals(0, b.g.status() & Virtio.STATUS_NEEDS_RESET, "refused, not fatal");
            // A good PFN after the bad ones still works.
            b.sendPfns(0, 0, 0xffffffffL, (BalloonGuest.POOL >>> 12));
            assertEquals(1, ram.discardedPages());
        }
    }

    @Test
    void aTruncatedPfnIsIgnoredAndAnEmptyBufferIsHarmless() throws Exception {
        try (BalloonGuest b = new BalloonGuest(Map.of())) {
            b.bringUp(ALL, 4);
            long buf = MmioGuest.small(0);
            b.g.mem.writeU32(buf, (int) (BalloonGuest.POOL >>> 12));
            // 3 bytes: less than one PFN.
            b.q(0).add(List.of(MmioGuest.buf(buf, 3)), List.of(), false);
            b.g.kick(0);
            b.g.awaitUsed(b.q(0));
            assertEquals(0, b.g.machine.memory().discardedPages());
            // A device-writable buffer on the inflate queue: no PFN to read.
            b.q(0).add(List.of(), List.of(MmioGuest.buf(buf, 64)), false);
            b.g.kick(0);
            assertEquals(0, b.g.awaitUsed(b.q(0)).length());
            assertEquals(0, b.g.machine.memory().discardedPages());
            assertEquals(0, b.g.status() & Virtio.STATUS_NEEDS_RESET);
        }
    }

    @Test
    void aDescriptorOutsideRamOnTheInflateQueueNeedsReset() throws Exception {
        try (BalloonGuest b = new BalloonGuest(Map.of())) {
            b.bringUp(ALL, 4);
            b.q(0).add(List.of(MmioGuest.buf(MmioGuest.RAM - 2, 4)), List.of(), false);
            b.g.kick(0);
            b.g.awaitStatus(Virtio.STATUS_NEEDS_RESET);
            assertEquals(0, b.g.machine.memory().discardedPages());
        }
    }

    @Test
    void aHintOutsideRamNeedsResetAndClearsNothing() throws Exception {
        try (BalloonGuest b = new BalloonGuest(Map.of())) {
            b.bringUp(ALL, 4);
            FreePageHintsProbe sink = new FreePageHintsProbe(b.g.machine.memory());
            b.g.machine.migration().setFreePageHints(sink);
            b.g.machine.migration().notifyPrecopy(PrecopyNotifier.Step.AFTER_BITMAP_SYNC, false);
            VirtioBalloonTest.sendId(b, 0x80000000);
            b.q(3).add(List.of(), List.of(MmioGuest.buf(MmioGuest.RAM - 4096, 8192)), false);
            b.g.kick(3);
            b.g.awaitStatus(Virtio.STATUS_NEEDS_RESET);
            assertEquals(0, sink.pages());
        }
    }

    @Test
    void aShortCommandIdNeedsResetAndUnknownIdsAreStale() throws Exception {
        try (BalloonGuest b = new BalloonGuest(Map.of())) {
            b.bringUp(ALL, 4);
            b.g.machine.migration().notifyPrecopy(PrecopyNotifier.Step.AFTER_BITMAP_SYNC, false);
            VirtioBalloonTest.sendId(b, 0x12345678);
            VirtioBalloonTest.sendId(b, FreePageHinting.CMD_ID_DONE);
            assertEquals(2, b.balloon.counters().staleHints());
            assertEquals(FreePageHinting.State.REQUESTED, b.balloon.hinting().state(), "unknown ids change nothing");
            long buf = MmioGuest.small(1);
            b.q(3).add(List.of(MmioGuest.buf(buf, 2)), List.of(), false);
            b.g.kick(3);
            b.g.awaitStatus(Virtio.STATUS_NEEDS_RESET);
            assertNotEquals(null, b.g.transport.brokenReason());
            assertTrue(b.g.transport.brokenReason().contains("command id"), b.g.transport.brokenReason());
        }
    }

    @Test
    void aSecondStatsBufferReturnsTheFirstAndHugeBuffersAreBounded() throws Exception {
        try (BalloonGuest b = new BalloonGuest(Map.of())) {
            b.bringUp(ALL, 4);
            long buf = MmioGuest.data(0);
            b.g.mem.fill(buf, 1 << 16, (byte) 0xff); // tag 0xffff everywhere: unknown, ignored
            b.q(2).add(List.of(MmioGuest.buf(buf, 1 << 16)), List.of(), false);
            b.g.kick(2);
            b.g.settle();
            assertEquals(1, b.balloon.counters().statsUpdates());
            b.q(2).add(List.of(MmioGuest.buf(buf, 10)), List.of(), false);
            b.g.kick(2);
            assertEquals(0, b.g.awaitUsed(b.q(2)).length(), "the first buffer comes back");
            assertEquals(0, b.g.status() & Virtio.STATUS_NEEDS_RESET);
        }
    }
}
