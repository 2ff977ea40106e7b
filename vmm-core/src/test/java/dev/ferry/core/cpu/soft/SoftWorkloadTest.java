package dev.ferry.core.cpu.soft;

import dev.ferry.core.memory.GuestMemory;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SoftWorkloadTest {
    private static final long MIB = 1L << 20;

    @Test
    void rejectsBadConfigurationWithReasons() {
        assertMessage("vcpus must be 1..1024, got 0", () -> SoftWorkload.of(0, MIB, MIB, 1));
        assertMessage("dirty rate must be > 0", () -> SoftWorkload.of(1, 0, MIB, 1));
        assertMessage("non-zero multiple of 4096 bytes, got 5000", () -> SoftWorkload.of(1, MIB, 5000, 1));
        assertMessage("4 KiB aligned", () -> new SoftWorkload(1, MIB, MIB, 100, 1));
        assertMessage("cannot give each of 4 vCPUs a page", () -> SoftWorkload.of(4, MIB, 3 * 4096, 1));
    }

    @Test
    void partitionsCoverTheWorkingSetOnceInOrder() {
        for (int vcpus : new int[] {1, 3, 7, 64}) {
            SoftWorkload w = SoftWorkload.of(vcpus, MIB, 1000 * 4096L, 42);
            long next = 0;
            for (int v = 0; v < vcpus; v++) {
                assertEquals(next, w.partitionStart(v));
                assertTrue(w.partitionSize(v) >= 1);
                for (long p = w.partitionStart(v); p < w.partitionStart(v) + w.partitionSize(v); p++) {
                    assertEquals(v, w.ownerOf(p), "owner of page " + p + " with " + vcpus + " vCPUs");
                }
                next += w.partitionSize(v);
            }
            assertEquals(w.pages(), next);
        }
    }

    @Test
    void identityIgnoresTheDirtyRate() {
        SoftWorkload w = new SoftWorkload(2, MIB, 16 * MIB, 8 * MIB, 7);
        assertTrue(w.sameIdentity(w.withDirtyRate(5 * MIB)));
        assertFalse(w.sameIdentity(new SoftWorkload(2, MIB, 16 * MIB, 8 * MIB, 8)));
        assertFalse(w.sameIdentity(new SoftWorkload(2, MIB, 16 * MIB, 0, 7)));
    }

    @Test
    void workingSetMustBeRamOfTheGuest() {
        try (GuestMemory m = GuestMemory.ofSize(16 * MIB)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> new SoftCpuEngine(m, new SoftWorkload(1, MIB, 16 * MIB, 4 * MIB, 1)));
            assertTrue(e.getMessage().contains("gpa 0x1000000 is outside every region"), e.getMessage());
        }
    }

    @Test
    void workingSetMaySpanAdjacentRegions() {
        try (GuestMemory m = GuestMemory.builder().region("low", 0, 4 * MIB).region("high", 4 * MIB, 4 * MIB)
                .build()) {
            SoftWorkload w = new SoftWorkload(2, MIB, 6 * MIB, 2 * MIB, 1);
            WorkingSet ws = new WorkingSet(m, w);
            assertEquals(m.region("low").hostAddress(2 * MIB), ws.host(0));
            assertEquals(m.region("high").hostAddress(0), ws.host(512));
            assertEquals(m.region("high").hostAddress(4 * MIB - 4096), ws.host(w.pages() - 1));
        }
        try (GuestMemory holey = GuestMemory.builder().region("low", 0, 4 * MIB).region("high", 8 * MIB, 4 * MIB)
                .build()) {
            assertThrows(IllegalArgumentException.class,
                    () -> new WorkingSet(holey, SoftWorkload.of(1, MIB, 12 * MIB, 1)));
        }
    }

    private static void assertMessage(String part, org.junit.jupiter.api.function.Executable e) {
        IllegalArgumentException x = assertThrows(IllegalArgumentException.class, e);
        assertTrue(x.getMessage().contains(part), x.getMessage());
    }
}
