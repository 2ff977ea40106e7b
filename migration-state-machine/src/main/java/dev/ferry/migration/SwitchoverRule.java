package dev.ferry.migration;

/**
 * When pre-copy stops and the VM stops: the switchover decision, asked once per pre-copy round
 * with the pending bytes the round measured.
 *
 * <p>QEMU switches at the first round whose pending bytes fit {@code bandwidth × downtime-limit}.
 * That spends the whole limit whenever one pass gets under it, and a link that slows while the
 * final pass runs goes over. Ferry budgets the pause and aims below it:
 * <ul>
 *   <li>the <em>budget</em> is what the link moves in {@code downtime-limit} minus a reserve of
 *       {@value #RESERVE_PERCENT} % for the switchover's fixed costs (stopping vCPUs and devices,
 *       the device states, the destination's load and start, its ack);</li>
 *   <li>pending above the budget: keep iterating (QEMU);</li>
 *   <li>pending within the budget: switch when it is negligible (the link moves it in
 *       {@value #NEGLIGIBLE_MS} ms), when the last round no longer shrank it by at least
 *       {@value #SHRINK_PERCENT} %, or after {@value #MAX_EXTRA_ROUNDS} rounds within the budget;
 *       otherwise iterate once more, since each round that still shrinks the remaining set
 *       shortens the pause;</li>
 *   <li>a stopped VM has no pause to protect: switch as soon as pending is within the budget;</li>
 *   <li>with switchover-ack the destination's approval is needed as well (QEMU).</li>
 * </ul>
 * The rule sees only its inputs, so tests drive it with the engine's own figures.
 */
final class SwitchoverRule {
    static final int RESERVE_PERCENT = 10;
    static final int SHRINK_PERCENT = 10;
    static final int NEGLIGIBLE_MS = 5;
    static final int MAX_EXTRA_ROUNDS = 8;

    /** Why the rule iterated or switched; the names appear in the engine's debug log. */
    enum Verdict {
        ITERATE_OVER_BUDGET(false),
        ITERATE_SHRINKING(false),
        ITERATE_AWAITING_ACK(false),
        SWITCH_NOTHING_PENDING(true),
        SWITCH_NEGLIGIBLE(true),
        SWITCH_STOPPED_SHRINKING(true),
        SWITCH_ROUND_LIMIT(true),
        SWITCH_VM_NOT_RUNNING(true);

        final boolean switchover;

        Verdict(boolean switchover) {
            this.switchover = switchover;
        }
    }

    /** Pending bytes at the previous round within the budget; -1 before the first. */
    private long lastWithin = -1;
    private int roundsWithin;

    /** The bytes the link moves in the limit less the reserve. */
    static long budgetBytes(double bytesPerMs, long downtimeLimitMs) {
        return (long) (bytesPerMs * downtimeLimitMs * (100 - RESERVE_PERCENT) / 100.0);
    }

    /**
     * @param pending     bytes still to send (exact when within the budget)
     * @param bytesPerMs  the link's rate the engine measured (or avail-switchover-bandwidth)
     * @param limitMs     downtime-limit
     * @param acked       switchover-ack not needed, or given
     * @param vmRunning   the guest runs (a paused guest has no pause to protect)
     */
    Verdict decide(long pending, double bytesPerMs, long limitMs, boolean acked, boolean vmRunning) {
        long budget = budgetBytes(bytesPerMs, limitMs);
        if (pending > 0 && pending >= budget) {
            lastWithin = -1;
            roundsWithin = 0;
            return Verdict.ITERATE_OVER_BUDGET;
        }
        if (!acked) {
            return Verdict.ITERATE_AWAITING_ACK;
        }
        if (pending == 0) {
            return Verdict.SWITCH_NOTHING_PENDING;
        }
        if (!vmRunning) {
            return Verdict.SWITCH_VM_NOT_RUNNING;
        }
        if (pending <= (long) (bytesPerMs * NEGLIGIBLE_MS)) {
            return Verdict.SWITCH_NEGLIGIBLE;
        }
        long previous = lastWithin;
        lastWithin = pending;
        roundsWithin++;
        if (previous >= 0 && pending * 100 > previous * (100 - SHRINK_PERCENT)) {
            return Verdict.SWITCH_STOPPED_SHRINKING;
        }
        if (roundsWithin > MAX_EXTRA_ROUNDS) {
            return Verdict.SWITCH_ROUND_LIMIT;
        }
        return Verdict.ITERATE_SHRINKING;
    }
}
