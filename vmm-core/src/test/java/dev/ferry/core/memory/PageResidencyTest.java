package dev.ferry.core.memory;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Holes are reported as holes and every written page as possible data, with mincore alone and
 * with the swap-safe lseek confirmation, across window boundaries.
 */
class PageResidencyTest {
    private static final long PAGES = PageResidency.WINDOW_PAGES * 2L + 100;

    private static void check(PageResidency res, GuestMemory m, long[] written) {
        GuestRegion r = m.regions().get(0);
        java.util.Set<Long> w = new java.util.HashSet<>();
        for (long p : written) {
            w.add(p);
        }
        for (long p = 0; p < PAGES; p++) {
            assertEquals(w.contains(p), res.mayHoldData(r, p), "page " + p);
        }
    }

    @Test
    void holesAndDataWithMincoreAndWithSwapConfirmation() {
        long[] written = {0, 1, 7, PageResidency.WINDOW_PAGES - 1, PageResidency.WINDOW_PAGES,
                PageResidency.WINDOW_PAGES + 5, PAGES - 1};
        try (GuestMemory m = GuestMemory.ofSize(PAGES * 4096)) {
            for (long p : written) {
                m.writeLong(Gpa.of(p * 4096 + 16), 0x1234);
            }
            try (PageResidency res = new PageResidency()) {
                check(res, m, written);
            }
            try (PageResidency res = PageResidency.assumingSwap()) {
                check(res, m, written);
            }
        }
    }

    @Test
    void aWriteAfterTheWindowWasReadShowsAfterInvalidate() {
        try (GuestMemory m = GuestMemory.ofSize(PAGES * 4096); PageResidency res = new PageResidency()) {
            GuestRegion r = m.regions().get(0);
            assertFalse(res.mayHoldData(r, 3));
            m.writeByte(Gpa.of(3 * 4096), (byte) 1);
            res.invalidate();
            assertTrue(res.mayHoldData(r, 3));
        }
    }

    @Test
    void digestIgnoresResidency() {
        try (GuestMemory a = GuestMemory.ofSize(64 * 4096); GuestMemory b = GuestMemory.ofSize(64 * 4096)) {
            a.writeLong(Gpa.of(5 * 4096), 42);
            b.writeLong(Gpa.of(5 * 4096), 42);
            b.fill(Gpa.of(9 * 4096), 4096, (byte) 0); // resident but zero: same content as a's hole
            assertEquals(a.digest(), b.digest());
            b.writeByte(Gpa.of(9 * 4096 + 100), (byte) 1);
            assertTrue(a.digest() != b.digest());
        }
    }
}
