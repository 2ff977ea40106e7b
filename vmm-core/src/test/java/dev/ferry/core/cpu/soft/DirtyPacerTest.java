package dev.ferry.core.cpu.soft;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The page budget, stepped by hand: no threads, no wall clock. */
class DirtyPacerTest {
    private static final long MS = 1_000_000;
    /** 100 pages per millisecond for each of 2 vCPUs. */
    private static final long RATE = 2L * 100 * 1000 * 4096;

    @Test
    void grantsTheVcpusShareOfTheRatePerSlice() {
        DirtyPacer p = new DirtyPacer(RATE, 2);
        p.restart(5 * MS);
        assertEquals(0, p.grant(5 * MS, 0));
        assertEquals(100, p.grant(6 * MS, 0));
        assertEquals(50, p.grant(6 * MS + MS / 2, 0));
        assertEquals(7 * MS, p.nextGrantAt(0) - MS / 2);
    }

    @Test
    void throttleScalesTheBudget() {
        for (int[] c : new int[][] {{0, 100}, {20, 80}, {50, 50}, {99, 1}}) {
            DirtyPacer p = new DirtyPacer(RATE, 2);
            p.restart(0);
            assertEquals(c[1], p.grant(MS, c[0]), "throttle " + c[0] + "%");
        }
    }

    @Test
    void keepsFractionsOfAPage() {
        DirtyPacer p = new DirtyPacer(RATE, 2);
        p.restart(0);
        long total = 0;
        for (int i = 1; i <= 1000; i++) {
            total += p.grant(i * MS, 99); // 1 page per ms ...
        }
        assertEquals(1000, total);
        p.restart(0);
        total = 0;
        for (int i = 1; i <= 1000; i++) {
            total += p.grant(i * MS / 4, 0); // ... and 25 pages per quarter millisecond
        }
        assertEquals(25_000, total);
    }

    @Test
    void catchUpIsCappedSoALongStallDoesNotBurst() {
        DirtyPacer p = new DirtyPacer(RATE, 2);
        p.restart(0);
        assertEquals(100 * DirtyPacer.CATCH_UP_SLICES, p.grant(10_000 * MS, 0));
        assertEquals(100, p.grant(10_001 * MS, 0));
    }

    @Test
    void restartForgetsCredit() {
        DirtyPacer p = new DirtyPacer(RATE, 2);
        p.restart(0);
        assertEquals(0, p.grant(MS / 200, 0)); // half a page of credit
        p.restart(MS);
        assertEquals(0, p.grant(MS + MS / 200, 0));
        assertEquals(1, p.grant(MS + MS / 100, 0));
    }

    @Test
    void slowRatesParkUntilAPageIsDueButNotForLong() {
        DirtyPacer tenPerSecond = new DirtyPacer(10 * 4096, 1);
        tenPerSecond.restart(0);
        assertEquals(0, tenPerSecond.grant(0, 0));
        assertEquals(100 * MS, tenPerSecond.nextGrantAt(0));
        assertEquals(1, tenPerSecond.grant(100 * MS, 0));
        DirtyPacer onePerMinute = new DirtyPacer(4096, 60);
        onePerMinute.restart(0);
        assertEquals(DirtyPacer.MAX_PARK_NANOS, onePerMinute.nextGrantAt(0));
        assertEquals(1, onePerMinute.grant(70_000 * MS, 0), "a stall still yields at least one page");
    }
}
