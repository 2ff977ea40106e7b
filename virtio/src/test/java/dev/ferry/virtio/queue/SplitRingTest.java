package dev.ferry.virtio.queue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The layout arithmetic and {@code vring_need_event}, checked against the spec's definitions. */
class SplitRingTest {

    /**
     * {@code vring_need_event(event, new, old)} is true exactly when {@code event} is one of the
     * indices {@code old, old+1, …, new−1} (mod 2^16): the index moved past the one asked for.
     */
    @ParameterizedTest(name = "event {0}, old {2} -> new {1}: {3}")
    @CsvSource({
            // event, new, old, notify
            "0,     1,     0,     true",   // the first element after 0
            "0,     0,     0,     false",  // nothing moved
            "5,     5,     4,     false",  // asked for 5: crossing 4 -> 5 moves past 4 only
            "4,     5,     4,     true",
            "4,     10,    0,     true",   // inside a batch
            "10,    10,    0,     false",  // just beyond the batch
            "0,     10,    1,     false",  // just before the batch
            "9,     10,    0,     true",   // last of the batch
            "3,     2,     1,     false",  // event ahead of new
            "65535, 0,     65535, true",   // wrap: 65535 -> 0 passes 65535
            "65535, 2,     65534, true",   // batch across the wrap
            "0,     2,     65534, true",
            "1,     2,     65534, true",
            "2,     2,     65534, false",
            "65533, 2,     65534, false",  // event just behind old, across the wrap
            "65534, 65534, 65534, false",
            "98,    99,    65500, true",   // a 135-entry batch across the wrap: 65500 .. 98
            "99,    99,    65500, false",
            "100,   99,    65500, false",
    })
    void needEventMatchesTheSpec(int event, int newIdx, int oldIdx, boolean notify) {
        boolean inWindow = false;
        for (int i = oldIdx; (i & 0xffff) != (newIdx & 0xffff); i++) {
            inWindow |= (i & 0xffff) == event;
        }
        assertEquals(notify, inWindow, "table row disagrees with the definition");
        assertEquals(notify, SplitRing.needEvent(event, newIdx, oldIdx));
    }

    @Test
    void needEventAgreesWithTheWindowDefinitionEverywhereNearTheWrap() {
        int[] points = {0, 1, 2, 3, 100, 32767, 32768, 32769, 65530, 65533, 65534, 65535};
        for (int event : points) {
            for (int old : points) {
                for (int delta = 0; delta <= 300; delta += 7) {
                    int nw = (old + delta) & 0xffff;
                    boolean expected = ((event - old) & 0xffff) < delta;
                    assertEquals(expected, SplitRing.needEvent(event, nw, old),
                            "event " + event + " old " + old + " new " + nw);
                }
            }
        }
    }

    @Test
    void areaSizesAndOffsetsFollowTheSpec() {
        int n = 256;
        assertEquals(16 * 256, SplitRing.descTableBytes(n));
        assertEquals(6 + 2 * 256, SplitRing.availBytes(n));
        assertEquals(6 + 8 * 256, SplitRing.usedBytes(n));
        long avail = 0x2000;
        long used = 0x3000;
        assertEquals(avail + 2, SplitRing.availIdx(avail));
        assertEquals(avail + 4 + 2 * 3, SplitRing.availRing(avail, n, 3));
        assertEquals(avail + 4 + 2 * 3, SplitRing.availRing(avail, n, 3 + 256 * 7), "slot = idx % N");
        assertEquals(avail + 4 + 2 * 256, SplitRing.usedEvent(avail, n));
        assertEquals(used + 2, SplitRing.usedIdx(used));
        assertEquals(used + 4 + 8 * 255, SplitRing.usedElem(used, n, 65535));
        assertEquals(used + 4 + 8 * 256, SplitRing.availEvent(used, n));
        assertEquals(0x1000 + 16 * 5 + 14, SplitRing.descNext(0x1000, 5));
    }

    @Test
    void validSizesArePowersOfTwoUpTo32768() {
        assertTrue(SplitRing.validSize(1));
        assertTrue(SplitRing.validSize(256));
        assertTrue(SplitRing.validSize(32768));
        assertFalse(SplitRing.validSize(0));
        assertFalse(SplitRing.validSize(3));
        assertFalse(SplitRing.validSize(65536));
        assertFalse(SplitRing.validSize(-32768));
    }

    @Test
    void contiguousLayoutAlignsEachArea() {
        for (int n = 1; n <= SplitRing.MAX_SIZE; n <<= 1) {
            QueueConfig c = QueueConfig.contiguous(n, 0x10000, 0);
            assertEquals(0, c.descGpa() % 16);
            assertEquals(c.descGpa() + 16L * n, c.availGpa());
            assertEquals(0, c.usedGpa() % 4);
            assertTrue(c.usedGpa() >= c.availGpa() + SplitRing.availBytes(n));
            assertTrue(c.usedGpa() < c.availGpa() + SplitRing.availBytes(n) + 4);
        }
    }
}
