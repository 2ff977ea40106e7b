package dev.ferry.virtio.e2e;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Free page hinting through the real engine and the guest driver: a guest that wrote 8 MiB and
 * freed it migrates (at 64 MiB/s, so the migration outlasts a hint round) with hinting and without.
 * With it, the freed pages stay off the wire, the pages the guest reused right after hinting them
 * arrive, and all other RAM is equal; without it, everything is sent. Counts, not times.
 */
@Timeout(120)
class SoftBalloonHintTest {
    @Test
    void hintedFreePagesStayOffTheWireAndReusedOnesArrive() throws Exception {
        long ram = 64 * SoftBalloonVm.MiB;
        long free = 8 * SoftBalloonVm.MiB;
        HintMeasurement off = HintMeasurement.run(false, ram, free, 64 * SoftBalloonVm.MiB);
        HintMeasurement on = HintMeasurement.run(true, ram, free, 64 * SoftBalloonVm.MiB);
        assertTrue(off.problems().isEmpty(), off.problems().toString());
        assertTrue(on.problems().isEmpty(), on.problems().toString());
        assertEquals(0, off.hintRounds());
        assertTrue(off.normalPages() >= free / 4096, "without hinting the freed region is sent: " + off);
        assertTrue(on.hintRounds() >= 1, "the guest answered a hint request: " + on);
        assertTrue(on.reusedPages() >= 1, "the guest reused a page after hinting it: " + on);
        assertTrue(on.normalPages() <= off.normalPages() - free / 4096 / 2,
                "at least half the freed region stays off the wire: with " + on + ", without " + off);
    }
}
