package dev.ferry.migration;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The destination's share of the pause, split by what it reported, and the timing PONGs that carry it. */
class DowntimeBreakdownTest {

    private static DowntimeBreakdown split(long share, long load, long verify, long start) {
        return DowntimeBreakdown.of(1, 2, 3, 4, 5, 6, share, new ReturnPath.DestinationTimings(load, verify, start));
    }

    @Test
    void theDestinationsPhasesSplitItsShareAndAckIsTheRest() {
        DowntimeBreakdown b = split(100_000, 20_000, 30_000, 10_000);
        assertEquals(20_000, b.destinationLoadNanos());
        assertEquals(30_000, b.destinationVerifyNanos());
        assertEquals(10_000, b.destinationStartNanos());
        assertEquals(40_000, b.ackNanos());
        assertEquals(100_000, b.destinationNanos());
        assertEquals(21, b.downtimeNanos());
        assertEquals(100_021, b.guestPauseNanos());
    }

    @Test
    void aDestinationThatReportsNothingLeavesItsShareInAck() {
        DowntimeBreakdown b = DowntimeBreakdown.of(1, 2, 3, 4, 5, 6, 7_000, ReturnPath.DestinationTimings.NONE);
        assertEquals(0, b.destinationLoadNanos() + b.destinationVerifyNanos() + b.destinationStartNanos());
        assertEquals(7_000, b.ackNanos());
    }

    @Test
    void moreThanTheShareIsCutFromLoadThenVerifyThenStartSoThePhasesStillAddUp() {
        // began 15 µs before the source's last flush returned: load loses 15
        DowntimeBreakdown b = split(45_000, 20_000, 30_000, 10_000);
        assertEquals(5_000, b.destinationLoadNanos());
        assertEquals(30_000, b.destinationVerifyNanos());
        assertEquals(10_000, b.destinationStartNanos());
        assertEquals(0, b.ackNanos());
        // 45 µs over: load 20, verify 25
        b = split(15_000, 20_000, 30_000, 10_000);
        assertEquals(0, b.destinationLoadNanos());
        assertEquals(5_000, b.destinationVerifyNanos());
        assertEquals(10_000, b.destinationStartNanos());
        assertEquals(15_000, b.destinationNanos());
        // a share of nothing (a test's clock): nothing left
        b = split(0, 20_000, 30_000, 10_000);
        assertEquals(0, b.destinationNanos());
        assertEquals(0, b.destinationStartNanos());
    }

    @Test
    void phasesAreListedInOrderUnderTheirQueryMigrateNames() {
        assertEquals(java.util.List.of("vcpu-stop", "device-stop", "final-sync", "final-ram-pass", "device-state",
                        "drain", "destination-load", "destination-verify", "destination-start", "ack"),
                java.util.List.copyOf(split(100_000, 20_000, 30_000, 10_000).phasesMicros().keySet()));
    }

    @Test
    void timingPongsCarryMicrosecondsUnderTagsNoOtherPongHas() {
        int v = ReturnPath.timing(ReturnPath.TAG_VERIFY, 56_789_123);
        assertEquals(ReturnPath.TAG_VERIFY, ReturnPath.timingTag(v));
        assertEquals(56_789, v & 0xffffff);
        assertEquals(ReturnPath.TIMING_MAX_MICROS, ReturnPath.timing(ReturnPath.TAG_LOAD, 60_000_000_000L) & 0xffffff,
                "a minute is capped at 16.7 s");
        assertEquals(0, ReturnPath.timing(ReturnPath.TAG_START, -5) & 0xffffff);
        assertEquals(0, ReturnPath.timingTag(ReturnPath.HEARTBEAT));
        assertEquals(0, ReturnPath.timingTag(0x46525259), "the source's catch-up PING, FRRY");
    }
}
