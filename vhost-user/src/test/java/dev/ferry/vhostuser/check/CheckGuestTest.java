package dev.ferry.vhostuser.check;

import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import org.junit.jupiter.api.Test;

import java.util.BitSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The check's guest: a back-end's writes (through the shared memfd, as a back-end maps it) show up
 * as changed pages by guest-physical frame, the log is read bit = gpa / 4096 and cleared as it is
 * harvested, and the layout keeps driver and device pages apart.
 */
class CheckGuestTest {
    @Test
    void writesThroughTheMemfdAreChangedPagesByGuestFrame() {
        try (CheckGuest g = new CheckGuest(4096);
             Mapping peer = Mapping.shared(g.memfd(), 0, CheckGuest.SIZE)) {
            g.takeShadow();
            assertTrue(g.changedPages().isEmpty());
            NativeMemory.putByte(peer.address() + (CheckGuest.IN_DATA - CheckGuest.BASE) + 4095, (byte) 1);
            NativeMemory.putByte(peer.address() + 0x1000, (byte) 1); // queue 0's used ring
            BitSet changed = g.changedPages();
            BitSet expected = new BitSet();
            expected.set((int) (CheckGuest.IN_DATA >>> 12));
            expected.set((int) ((CheckGuest.BASE + 0x1000) >>> 12));
            assertEquals(expected, changed);
            assertEquals("gpa 0x101000 (used ring q0), gpa 0x700000 (in buffers)", CheckGuest.describe(changed, 8));
            g.takeShadow();
            assertTrue(g.changedPages().isEmpty(), "the shadow follows the memory once taken again");
        }
    }

    @Test
    void theLogIsOneBitPerGuestPageAndHarvestingClearsIt() {
        try (CheckGuest g = new CheckGuest(4096);
             Mapping log = Mapping.shared(g.logFd(), 0, g.logBytes())) {
            long pfn = CheckGuest.IN_DATA >>> 12; // 0x700: word 0x700 / 64 = 28, bit 0
            NativeMemory.putLong(log.address() + (pfn / 64) * 8, 1L << (pfn % 64));
            NativeMemory.putByte(log.address() + (0x101 / 8), (byte) (1 << (0x101 % 8)));
            BitSet logged = g.harvestLog();
            assertEquals(2, logged.cardinality());
            assertTrue(logged.get((int) pfn) && logged.get(0x101), logged.toString());
            assertTrue(g.harvestLog().isEmpty(), "a harvested log starts empty");
        }
    }

    @Test
    void driverAndDevicePagesAreApart() {
        for (int q = 0; q < CheckGuest.MAX_QUEUES; q++) {
            var c = CheckGuest.queue(q, 0);
            assertTrue(CheckGuest.driverPage(c.descGpa() >>> 12) && CheckGuest.driverPage(c.availGpa() >>> 12));
            assertEquals(c.descGpa() >>> 12, (c.availGpa() + 6 + 2 * CheckGuest.QUEUE_SIZE - 1) >>> 12,
                    "descriptors and avail ring share one page");
            assertFalse(CheckGuest.driverPage(c.usedGpa() >>> 12));
            assertEquals(c.usedGpa() >>> 12, (c.usedGpa() + 6 + 8L * CheckGuest.QUEUE_SIZE - 1) >>> 12);
        }
        assertTrue(CheckGuest.driverPage(CheckGuest.HEADERS >>> 12));
        assertFalse(CheckGuest.driverPage(CheckGuest.STATUS >>> 12));
        assertTrue(CheckGuest.driverPage((CheckGuest.OUT_DATA + CheckGuest.DATA_AREA - 1) >>> 12));
        assertFalse(CheckGuest.driverPage(CheckGuest.IN_DATA >>> 12));
        assertEquals("no buffer", CheckGuest.area((CheckGuest.BASE + CheckGuest.SIZE - 1) >>> 12));
    }
}
