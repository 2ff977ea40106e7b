package dev.ferry.core.memory;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.Sys;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Giving guest pages back to the host ({@link GuestMemory#discard}) and taking them back
 * ({@link GuestMemory#reclaim}): the memfd's allocation (fstat's st_blocks) drops by exactly the
 * pages punched, the pages read zero, the marks are exact, and bad ranges are refused untouched.
 */
class DiscardTest {
    private static final long MIB = 1 << 20;

    @Test
    void fstatReadsSizeAndAllocationAtLinuxsOffsets() {
        try (Fd fd = Sys.memfdCreate("ferry-stat", Linux.MFD_CLOEXEC)) {
            Sys.ftruncate(fd, 3 * MIB + 4096);
            long[] st = Sys.fstatSizeAndAllocated(fd);
            assertEquals(3 * MIB + 4096, st[0], "st_size at offset 48");
            assertEquals(0, st[1], "a fresh memfd has no blocks");
            long page = dev.ferry.core.sys.NativeMemory.allocate(4096);
            try {
                Sys.pwrite(fd, page, 4096, 8192);
            } finally {
                dev.ferry.core.sys.NativeMemory.free(page);
            }
            assertEquals(4096, Sys.fstatSizeAndAllocated(fd)[1], "st_blocks × 512 at offset 64: one page");
        }
    }

    @Test
    void discardPunchesAndMarksReclaimUnmarks() {
        try (GuestMemory mem = GuestMemory.builder().region("pc.ram", 0, 4 * MIB).region("high", 8 * MIB, MIB).build()) {
            mem.fill(Gpa.of(0), 4 * MIB, (byte) 7);
            long before = mem.allocatedBytes();
            assertEquals(4 * MIB, before);
            assertEquals(16, mem.discard(Gpa.of(MIB), 16 * 4096));
            assertEquals(before - 16 * 4096, mem.allocatedBytes());
            assertEquals(0, mem.readLong(Gpa.of(MIB + 15 * 4096)), "a punched page reads zero");
            assertEquals(0x0707070707070707L, mem.readLong(Gpa.of(MIB + 16 * 4096)), "its neighbour is kept");
            assertEquals(0x0707070707070707L, mem.readLong(Gpa.of(MIB - 8)));
            assertEquals(0, mem.discard(Gpa.of(MIB), 4096), "already discarded");
            assertEquals(16, mem.discardedPages());
            assertTrue(mem.isDiscarded(Gpa.of(MIB + 4095)));
            assertFalse(mem.isDiscarded(Gpa.of(MIB + 16 * 4096)));
            assertEquals(8, mem.reclaim(Gpa.of(MIB + 8 * 4096), 16 * 4096), "only the discarded ones count");
            assertEquals(8, mem.discardedPages());
            assertEquals(1, mem.discard(Gpa.of(8 * MIB), 4096), "in the second region");
            assertEquals(9, mem.discardedPages());
        }
    }

    @Test
    void rangesThatAreNotWholePagesInOneRegionAreRefused() {
        try (GuestMemory mem = GuestMemory.builder().region("pc.ram", 0, MIB).region("high", MIB, MIB).build()) {
            mem.fill(Gpa.of(0), MIB, (byte) 1);
            mem.fill(Gpa.of(MIB), MIB, (byte) 1);
            long allocated = mem.allocatedBytes();
            assertThrows(GuestMemoryException.class, () -> mem.discard(Gpa.of(100), 4096));
            assertThrows(GuestMemoryException.class, () -> mem.discard(Gpa.of(0), 100));
            assertThrows(GuestMemoryException.class, () -> mem.discard(Gpa.of(MIB - 4096), 8192), "across regions");
            assertThrows(GuestMemoryException.class, () -> mem.discard(Gpa.of(2 * MIB), 4096), "outside RAM");
            assertThrows(GuestMemoryException.class, () -> mem.discard(Gpa.of(0), 0));
            assertEquals(allocated, mem.allocatedBytes());
            assertEquals(0, mem.discardedPages());
        }
    }

    @Test
    void clearRangeCountsOnlySetBitsAcrossWords() {
        try (DirtyBitmap b = new DirtyBitmap(300)) {
            b.setAll();
            b.clearRange(10, 5);
            assertEquals(295, b.count());
            assertEquals(143 - 5, b.clearRange(5, 143), "pages 5..147, of which 10..14 were clear");
            assertFalse(b.get(147));
            assertTrue(b.get(148));
            assertTrue(b.get(4));
            assertEquals(299 - 147, b.clearRange(148, 152));
            assertEquals(5, b.count());
            assertThrows(IndexOutOfBoundsException.class, () -> b.clearRange(299, 2));
        }
    }
}
