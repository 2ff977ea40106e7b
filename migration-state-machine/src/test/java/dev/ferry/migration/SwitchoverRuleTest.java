package dev.ferry.migration;

import dev.ferry.migration.SwitchoverRule.Verdict;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The switchover decision on the engine's own inputs: pending bytes, link rate, limit, ack, run state. */
class SwitchoverRuleTest {
    /** 1 GB/s, the loopback rate of these machines, in bytes per ms. */
    private static final double RATE = 1_000_000;
    private static final long LIMIT = 300;
    private static final long BUDGET = SwitchoverRule.budgetBytes(RATE, LIMIT);

    @Test
    void theBudgetKeepsTheReserveForTheFixedCosts() {
        assertEquals(270_000_000L, BUDGET);
        assertEquals(0, SwitchoverRule.budgetBytes(0, LIMIT), "no measured rate: nothing but an empty set fits");
    }

    @Test
    void overTheBudgetItIteratesLikeQemu() {
        SwitchoverRule r = new SwitchoverRule();
        assertEquals(Verdict.ITERATE_OVER_BUDGET, r.decide(BUDGET, RATE, LIMIT, true, true));
        assertEquals(Verdict.ITERATE_OVER_BUDGET, r.decide(BUDGET * 4, RATE, LIMIT, true, true));
        assertEquals(Verdict.ITERATE_OVER_BUDGET, r.decide(1, 0, LIMIT, true, true), "rate unknown yet");
    }

    @Test
    void withinTheBudgetItKeepsIteratingWhileTheSetShrinks() {
        // QEMU's scenario: the first pass leaves what 40 MB/s dirtied during it; each further
        // pass takes a fraction of the previous one's time, so the set shrinks geometrically.
        SwitchoverRule r = new SwitchoverRule();
        long pending = 40_000_000;
        List<Verdict> seen = new ArrayList<>();
        Verdict v;
        do {
            v = r.decide(pending, RATE, LIMIT, true, true);
            seen.add(v);
            pending = Math.max(pending / 25, 4096 * 3); // 40 MB/s over a pass of pending/RATE ms
        } while (!v.switchover && seen.size() < 20);
        // 40 MB would cost a 40 ms pause; one more pass of 40 ms leaves 1.6 MB, a pause of under 2 ms.
        assertEquals(List.of(Verdict.ITERATE_SHRINKING, Verdict.SWITCH_NEGLIGIBLE), seen);
    }

    @Test
    void itSwitchesOnceARoundNoLongerShrinksTheSet() {
        SwitchoverRule r = new SwitchoverRule();
        assertEquals(Verdict.ITERATE_SHRINKING, r.decide(100_000_000, RATE, LIMIT, true, true));
        assertEquals(Verdict.ITERATE_SHRINKING, r.decide(89_000_000, RATE, LIMIT, true, true), "shrank by 11 %");
        assertEquals(Verdict.SWITCH_STOPPED_SHRINKING, r.decide(81_000_000, RATE, LIMIT, true, true), "shrank by 9 %");
    }

    @Test
    void aGrowingSetSwitchesAtOnceRatherThanRiskingTheBudget() {
        SwitchoverRule r = new SwitchoverRule();
        assertEquals(Verdict.ITERATE_SHRINKING, r.decide(50_000_000, RATE, LIMIT, true, true));
        assertEquals(Verdict.SWITCH_STOPPED_SHRINKING, r.decide(60_000_000, RATE, LIMIT, true, true));
    }

    @Test
    void roundsWithinTheBudgetAreBounded() {
        SwitchoverRule r = new SwitchoverRule();
        long pending = 200_000_000;
        int rounds = 0;
        Verdict v;
        do {
            v = r.decide(pending, RATE, LIMIT, true, true);
            pending = pending * 85 / 100; // shrinks by 15 % a round, forever
            rounds++;
        } while (!v.switchover);
        assertEquals(Verdict.SWITCH_ROUND_LIMIT, v);
        assertEquals(SwitchoverRule.MAX_EXTRA_ROUNDS + 1, rounds);
    }

    @Test
    void goingBackOverTheBudgetStartsTheCountAgain() {
        SwitchoverRule r = new SwitchoverRule();
        assertEquals(Verdict.ITERATE_SHRINKING, r.decide(100_000_000, RATE, LIMIT, true, true));
        assertEquals(Verdict.ITERATE_OVER_BUDGET, r.decide(BUDGET + 1, RATE, LIMIT, true, true));
        // Had the count survived, 99 MB after 100 MB would have been "stopped shrinking".
        assertEquals(Verdict.ITERATE_SHRINKING, r.decide(99_000_000, RATE, LIMIT, true, true));
    }

    @Test
    void nothingPendingOrAStoppedVmSwitchesAtOnce() {
        assertEquals(Verdict.SWITCH_NOTHING_PENDING, new SwitchoverRule().decide(0, 0, LIMIT, true, true));
        assertEquals(Verdict.SWITCH_VM_NOT_RUNNING, new SwitchoverRule().decide(100_000_000, RATE, LIMIT, true, false));
        assertEquals(Verdict.ITERATE_OVER_BUDGET, new SwitchoverRule().decide(BUDGET, RATE, LIMIT, true, false),
                "a stopped VM still needs its pending set within the budget");
    }

    @Test
    void theDestinationsAckIsWaitedFor() {
        SwitchoverRule r = new SwitchoverRule();
        assertEquals(Verdict.ITERATE_AWAITING_ACK, r.decide(0, RATE, LIMIT, false, true));
        assertEquals(Verdict.ITERATE_AWAITING_ACK, r.decide(1_000, RATE, LIMIT, false, true));
        assertEquals(Verdict.SWITCH_NEGLIGIBLE, r.decide(1_000, RATE, LIMIT, true, true));
    }

    /** Whatever the rule does, a switchover never happens with more pending than the budget. */
    @Test
    void noSwitchoverEverExceedsTheBudget() {
        java.util.Random rnd = new java.util.Random(7);
        Set<Verdict> reached = EnumSet.noneOf(Verdict.class);
        for (int run = 0; run < 2000; run++) {
            SwitchoverRule r = new SwitchoverRule();
            for (int round = 0; round < 30; round++) {
                double rate = rnd.nextInt(4) == 0 ? 0 : rnd.nextDouble() * 2_000_000;
                long pending = rnd.nextInt(6) == 0 ? 0 : (long) (rnd.nextDouble() * 400_000_000);
                boolean acked = rnd.nextInt(5) != 0;
                boolean running = rnd.nextInt(8) != 0;
                Verdict v = r.decide(pending, rate, LIMIT, acked, running);
                reached.add(v);
                if (v.switchover) {
                    assertTrue(acked, "switched without the ack: " + v);
                    assertTrue(pending == 0 || pending < SwitchoverRule.budgetBytes(rate, LIMIT),
                            "switched with " + pending + " pending over a budget of " + SwitchoverRule.budgetBytes(rate, LIMIT));
                    break;
                }
            }
        }
        // Random runs reach every verdict but the round limit, which roundsWithinTheBudgetAreBounded walks.
        assertEquals(EnumSet.complementOf(EnumSet.of(Verdict.SWITCH_ROUND_LIMIT)), reached);
    }
}
