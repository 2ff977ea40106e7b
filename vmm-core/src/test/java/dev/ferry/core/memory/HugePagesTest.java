package dev.ferry.core.memory;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Sys;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Guest RAM from the host's 2 MiB huge page pool ({@link GuestMemory.Builder#hugetlb}): a short
 * pool and a misaligned region fail at creation with the numbers; with pages in the pool the
 * region is real hugetlbfs memory (its allocation moves in 2 MiB steps, not 4 KiB ones), reads and
 * writes and discards like any region, and a peer maps its memfd.
 */
class HugePagesTest {
    private static final long MIB = 1L << 20;
    /** Pages the tests with a pool need at once (the largest: 8 MiB + 2 MiB, and a peer's view of it). */
    private static final long NEEDED = 5;

    private static void assumePool() {
        long free = HugePages.available();
        assumeTrue(free >= NEEDED, "the host's 2 MiB huge page pool has " + free + " free pages, these tests need "
                + NEEDED + " (sysctl vm.nr_hugepages=" + NEEDED + " or more; .ci/run reserves them)");
    }

    @Test
    void aPoolTooSmallFailsAtCreationWithItsNumbers() {
        long free = Math.max(0, HugePages.available());
        long size = (free + 1) * HugePages.SIZE;
        GuestMemoryException e = assertThrows(GuestMemoryException.class,
                () -> GuestMemory.builder().hugetlb(true).region("pc.ram", 0, size).build());
        assertTrue(e.getMessage().contains((free + 1) + " huge pages of 2 MiB needed"), e.getMessage());
        assertTrue(e.getMessage().contains("vm.nr_hugepages"), "says how to fix it: " + e.getMessage());
        assertTrue(e.getMessage().startsWith("pc.ram"), "names the region: " + e.getMessage());
    }

    @Test
    void regionsMustBeWholeHugePages() {
        IllegalArgumentException size = assertThrows(IllegalArgumentException.class,
                () -> GuestMemory.builder().hugetlb(true).region("pc.ram", 0, 3 * MIB).build());
        assertTrue(size.getMessage().contains("multiples of 2 MiB"), size.getMessage());
        IllegalArgumentException base = assertThrows(IllegalArgumentException.class,
                () -> GuestMemory.builder().hugetlb(true).region("pc.ram", 0, 2 * MIB).region("high", 5 * MIB, 2 * MIB).build());
        assertTrue(base.getMessage().startsWith("high"), base.getMessage());
    }

    @Test
    void hugePageRegionsHoldDataAndAllocateInHugePages() {
        assumePool();
        long availableBefore = HugePages.available();
        try (GuestMemory mem = GuestMemory.builder().hugetlb(true).region("pc.ram", 0, 8 * MIB)
                .region("high", 16 * MIB, 2 * MIB).build()) {
            assertTrue(mem.regions().stream().allMatch(GuestRegion::hugetlb));
            assertEquals(0, mem.allocatedBytes(), "nothing allocated before the first touch");
            mem.writeLong(Gpa.of(4096), 0x1122334455667788L);
            assertEquals(2 * MIB, mem.allocatedBytes(), "one 4 KiB write allocates a whole 2 MiB page");
            assertEquals(0x1122334455667788L, mem.readLong(Gpa.of(4096)));
            mem.fill(Gpa.of(16 * MIB), 2 * MIB, (byte) 3);
            assertEquals(0x0303030303030303L, mem.readLong(Gpa.of(18 * MIB - 8)));
            assertEquals(availableBefore - 5, HugePages.available(), "the regions reserved their 5 pages from the pool at creation, touched or not");

            // A balloon's discard of one 4 KiB page zeroes it; memory comes back only per whole huge page.
            assertEquals(1, mem.discard(Gpa.of(4096), 4096));
            assertEquals(0, mem.readLong(Gpa.of(4096)));
            assertEquals(2 * MIB + 2 * MIB, mem.allocatedBytes(), "a partial punch frees nothing");
            assertEquals(512, mem.discard(Gpa.of(16 * MIB), 2 * MIB));
            assertEquals(2 * MIB, mem.allocatedBytes(), "a whole punched huge page goes back to the pool");
        }
        assertEquals(availableBefore, HugePages.available(), "closing the memory returned every page to the pool");
    }

    @Test
    void preallocationPopulatesEveryHugePage() {
        assumePool();
        try (GuestMemory mem = GuestMemory.builder().hugetlb(true).prealloc(true).region("pc.ram", 0, 4 * MIB).build()) {
            assertEquals(4 * MIB, mem.allocatedBytes());
        }
    }

    @Test
    void aPeerMapsTheHugePageMemfd() {
        assumePool();
        try (GuestMemory mem = GuestMemory.builder().hugetlb(true).region("pc.ram", 0, 4 * MIB).build()) {
            mem.writeLong(Gpa.of(3 * MIB), 42);
            Fd dup = Sys.dup(mem.regions().get(0).memfd());
            try (GuestRegion peer = GuestRegion.mapPeer("pc.ram", 0, 0, 4 * MIB, dup, 0);
                 GuestMemory view = GuestMemory.view(List.of(peer))) {
                assertFalse(peer.hugetlb(), "a peer knows only the descriptor it was sent");
                assertEquals(42, view.readLong(Gpa.of(3 * MIB)), "the peer sees the guest's write");
                view.writeLong(Gpa.of(MIB), 7);
                assertEquals(7, mem.readLong(Gpa.of(MIB)), "and the guest sees the peer's");
            }
        }
    }
}
