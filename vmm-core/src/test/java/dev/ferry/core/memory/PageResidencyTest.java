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

    /**
     * A sparse caller (a few pages per window, as a late pass over a large guest) gets small
     * windows, a dense one full windows again, and both get the same answers across the
     * windows' edges.
     */
    @Test
    void sparseQuestionsUseSmallWindowsWithTheSameAnswers() {
        long small = PageResidency.SMALL_WINDOW_PAGES;
        long[] written = {3, small - 1, small, PageResidency.WINDOW_PAGES + small + 1, PAGES - 2};
        try (GuestMemory m = GuestMemory.ofSize(PAGES * 4096)) {
            for (long p : written) {
                m.writeLong(Gpa.of(p * 4096 + 16), 0x1234);
            }
            GuestRegion r = m.regions().get(0);
            java.util.Set<Long> w = new java.util.HashSet<>();
            for (long p : written) {
                w.add(p);
            }
            for (PageResidency res : new PageResidency[] {new PageResidency(), PageResidency.assumingSwap()}) {
                try (res) {
                    assertEquals(w.contains(5L), res.mayHoldData(r, 5));
                    assertEquals(PageResidency.WINDOW_PAGES, res.windowPages(), "the first window is full");
                    // a few questions per window from here on
                    long[] asked = {small - 1, small, small + 7, PageResidency.WINDOW_PAGES + small + 1,
                            PageResidency.WINDOW_PAGES + 2 * small, PAGES - 2, PAGES - 3, 3};
                    for (long p : asked) {
                        assertEquals(w.contains(p), res.mayHoldData(r, p), "page " + p);
                    }
                    assertEquals(small, res.windowPages(), "a sparse caller reads small windows");
                    for (long p = 0; p < small; p++) {
                        assertEquals(w.contains(p), res.mayHoldData(r, p), "page " + p);
                    }
                    assertEquals(w.contains(small), res.mayHoldData(r, small));
                    assertEquals(PageResidency.WINDOW_PAGES, res.windowPages(), "a dense caller reads full windows");
                }
            }
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
