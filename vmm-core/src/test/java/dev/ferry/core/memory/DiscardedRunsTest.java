package dev.ferry.core.memory;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * {@link GuestRegion#nextPage} finds the next discarded or kept page a word at a time, and
 * agrees with {@link GuestRegion#isDiscarded} page by page from every starting point: runs that
 * start and end inside a word, on a word's edge, span words, and touch the region's end.
 */
class DiscardedRunsTest {
    @Test
    void nextPageAgreesWithThePageByPageAnswerFromEveryStart() {
        long pages = 64 * 5 + 17; // the last word is partial
        try (GuestMemory m = GuestMemory.ofSize(pages * 4096)) {
            long[][] runs = {{3, 1}, {60, 8}, {128, 64}, {200, 3}, {pages - 5, 5}};
            for (long[] r : runs) {
                m.discard(Gpa.of(r[0] * 4096), r[1] * 4096);
            }
            GuestRegion region = m.regions().get(0);
            for (boolean want : new boolean[] {true, false}) {
                for (long from = 0; from <= pages + 1; from++) {
                    long expected = pages;
                    for (long p = from; p < pages; p++) {
                        if (region.isDiscarded(p) == want) {
                            expected = p;
                            break;
                        }
                    }
                    assertEquals(expected, region.nextPage(from, want), "next " + (want ? "discarded" : "kept")
                            + " page from " + from);
                }
            }
            assertEquals(3, region.nextPage(0, true));
            assertEquals(4, region.nextPage(3, false));
            assertEquals(pages, region.nextPage(pages - 5, false), "the last run reaches the end");
        }
    }
}
