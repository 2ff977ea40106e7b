package dev.ferry.virtio.net;

import dev.ferry.virtio.net.AnnounceTimer.State;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Walks every cell of {@link AnnounceTimer}'s table (docs/devices.md) with a stepped scheduler
 * that records each arming: no wall clock is involved.
 */
class AnnounceTimerTest {
    /** A scheduler that records what it was asked: the armed delay (ns) or -1 once cancelled. */
    static final class Recorder implements AnnounceTimer.Scheduler {
        final List<Long> armed = new ArrayList<>();
        int cancels;
        long pending = -1;

        @Override
        public void arm(long delayNanos) {
            armed.add(delayNanos);
            pending = delayNanos;
        }

        @Override
        public void cancel() {
            cancels++;
            pending = -1;
        }
    }

    final Recorder sched = new Recorder();
    final List<Integer> rounds = new ArrayList<>();

    AnnounceTimer self() {
        return new AnnounceTimer(false, sched, rounds::add);
    }

    AnnounceTimer guest() {
        return new AnnounceTimer(true, sched, rounds::add);
    }

    static long ms(long n) {
        return TimeUnit.MILLISECONDS.toNanos(n);
    }

    @Test
    void qemuSchedule() {
        assertEquals(List.of(50L, 150L, 250L, 350L), List.of(AnnounceTimer.gapMillis(0), AnnounceTimer.gapMillis(1),
                AnnounceTimer.gapMillis(2), AnnounceTimer.gapMillis(3)));
        assertEquals(550L, AnnounceTimer.gapMillis(9), "capped at max");
        assertEquals(List.of(0L, 50L, 200L, 450L, 800L), List.of(AnnounceTimer.offsetMillis(0),
                AnnounceTimer.offsetMillis(1), AnnounceTimer.offsetMillis(2), AnnounceTimer.offsetMillis(3),
                AnnounceTimer.offsetMillis(4)));
    }

    // ---- IDLE row ----

    @Test
    void idleBeginArmsRoundZeroAtOnce() {
        AnnounceTimer t = self();
        t.begin();
        assertEquals(State.ARMED, t.state());
        assertEquals(List.of(0L), sched.armed);
        assertEquals(0, t.nextRound());
    }

    @Test
    void idleExpiredIsIgnored() {
        AnnounceTimer t = self();
        t.expired();
        assertEquals(State.IDLE, t.state());
        assertTrue(rounds.isEmpty());
        assertTrue(sched.armed.isEmpty());
    }

    @Test
    void idleAckedIsRefused() {
        AnnounceTimer t = guest();
        assertFalse(t.acked());
        assertEquals(State.IDLE, t.state());
        assertTrue(sched.armed.isEmpty());
    }

    @Test
    void idleStopStaysIdle() {
        AnnounceTimer t = self();
        t.stop();
        assertEquals(State.IDLE, t.state());
        assertEquals(0, sched.cancels, "nothing was armed");
    }

    // ---- ARMED row ----

    @Test
    void armedSelfRunsFiveRoundsOnQemusSchedule() {
        AnnounceTimer t = self();
        t.begin();
        for (int k = 0; k < AnnounceTimer.ROUNDS; k++) {
            assertEquals(State.ARMED, t.state());
            t.expired();
        }
        assertEquals(State.IDLE, t.state(), "idle after round 4");
        assertEquals(List.of(0, 1, 2, 3, 4), rounds);
        assertEquals(List.of(0L, ms(50), ms(150), ms(250), ms(350)), sched.armed);
    }

    @Test
    void armedGuestRunsOneRoundAndAwaitsTheAck() {
        AnnounceTimer t = guest();
        t.begin();
        t.expired();
        assertEquals(State.AWAITING_ACK, t.state());
        assertEquals(List.of(0), rounds);
        assertEquals(List.of(0L), sched.armed, "the next round waits for the ack");
    }

    @Test
    void armedBeginRestartsAtRoundZero() {
        AnnounceTimer t = self();
        t.begin();
        t.expired();
        t.begin();
        assertEquals(State.ARMED, t.state());
        assertEquals(0, t.nextRound());
        assertEquals(0L, sched.pending);
    }

    @Test
    void armedAckedIsRefused() {
        AnnounceTimer t = guest();
        t.begin();
        assertFalse(t.acked());
        assertEquals(State.ARMED, t.state());
    }

    @Test
    void armedStopDisarms() {
        AnnounceTimer t = self();
        t.begin();
        t.expired();
        t.stop();
        assertEquals(State.IDLE, t.state());
        assertEquals(1, sched.cancels);
        t.expired(); // an expiry already on its way is stale
        assertEquals(List.of(0), rounds);
    }

    // ---- AWAITING_ACK row ----

    @Test
    void awaitingAckedArmsTheNextGapAndEndsAfterRoundFour() {
        AnnounceTimer t = guest();
        t.begin();
        for (int k = 0; k < AnnounceTimer.ROUNDS; k++) {
            t.expired();
            assertEquals(State.AWAITING_ACK, t.state());
            assertTrue(t.acked());
        }
        assertEquals(State.IDLE, t.state());
        assertEquals(List.of(0, 1, 2, 3, 4), rounds);
        assertEquals(List.of(0L, ms(50), ms(150), ms(250), ms(350)), sched.armed);
    }

    @Test
    void awaitingExpiredIsIgnored() {
        AnnounceTimer t = guest();
        t.begin();
        t.expired();
        t.expired();
        assertEquals(State.AWAITING_ACK, t.state());
        assertEquals(List.of(0), rounds);
    }

    @Test
    void awaitingBeginRestarts() {
        AnnounceTimer t = guest();
        t.begin();
        t.expired();
        t.begin();
        assertEquals(State.ARMED, t.state());
        assertEquals(0, t.nextRound());
    }

    @Test
    void awaitingStopEndsWithoutCancel() {
        AnnounceTimer t = guest();
        t.begin();
        t.expired();
        t.stop();
        assertEquals(State.IDLE, t.state());
        assertEquals(0, sched.cancels, "nothing armed while awaiting the ack");
        assertFalse(t.acked(), "a late ack is refused");
    }
}
