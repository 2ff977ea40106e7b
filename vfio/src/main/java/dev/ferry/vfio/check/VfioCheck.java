package dev.ferry.vfio.check;

import dev.ferry.vfio.uapi.VfioDeviceState;

import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Objects;

/**
 * The vendor check behind {@code ferry vfio check}: drives a VFIO device through everything its
 * migration flags allow and holds it to the uAPI's promises, each a named {@link Rule}. It sees
 * the device only through {@link dev.ferry.vfio.device.VfioDevice}, so a kernel device and an
 * emulated one are checked alike; what only some kinds can show (a deterministic workload, a
 * state digest, the memory they DMA into) comes through {@link CheckedDevice}'s optional hooks.
 *
 * <h2>What it does, in order</h2>
 * <ol>
 *   <li><b>Load</b> ({@link LoadTest}): a source instance saves, a fresh one loads and saves, a
 *       third loads that; with a workload and digest, loaded instances must match their source.
 *       Every save on the way checks the reading rules (read, eof, enomsg, precopy-info).</li>
 *   <li>On one more instance: MIG_DATA_SIZE while RUNNING; a STOP_COPY save (its image is kept
 *       to finish resumes later); a pre-copy save if the device has PRE_COPY.</li>
 *   <li><b>Resume validation</b> ({@link ResumeValidation}): garbage and half a state must be
 *       refused.</li>
 *   <li><b>Walk</b> ({@link ArcWalk}): every refused request from every state; every legal
 *       single arc out of every state, {@link Options#repeat()} times, timed; a reset from every
 *       state.</li>
 *   <li><b>DMA log</b> ({@link DmaLogTest}) when the device offers DMA logging.</li>
 *   <li><b>Arc budget</b>: each arc's median latency against {@link Options#arcBudget()}.</li>
 * </ol>
 * Every SET is followed by a GET, every data fd is checked to open exactly where the arc table
 * says and to die where its session ends, and every device call runs under a watchdog
 * ({@link Options#callTimeout()}): a call that does not return stops the check with a
 * {@link Rule#NO_HANG} violation.
 *
 * <p>Only one instance is open at a time, so one physical device can serve every instance.
 * The check runs on the caller's thread plus one watchdog worker; it is not reentrant per
 * target.
 */
public final class VfioCheck {
    private VfioCheck() {
    }

    /**
     * How the check runs.
     *
     * @param repeat          how many times each arc is taken (for min/median/max)
     * @param callTimeout     how long one device call may take before it counts as hung
     * @param arcBudget       the median latency an arc may have. Arcs run inside a migration's
     *                        downtime: QEMU's switchover takes at least two arcs on the source
     *                        (PRE_COPY→PRE_COPY_P2P→STOP_COPY) and three on the destination
     *                        (RESUMING→STOP→RUNNING_P2P→RUNNING) within a default downtime
     *                        limit of 300 ms, so 100 ms for one arc is already generous. The
     *                        median is judged so that one scheduling hiccup of the host does not
     *                        fail a device; a consistently slow arc does.
     * @param workloadSteps   steps of a device's own workload run where the check wants change
     * @param dmaRun          how long the device runs on its own while DMA is logged
     * @param precopyIdleWait how long a pre-copy drain may read before the device counts as
     *                        never idle
     */
    public record Options(int repeat, Duration callTimeout, Duration arcBudget, int workloadSteps, Duration dmaRun,
                          Duration precopyIdleWait) {
        public Options {
            if (repeat < 1 || repeat > 1000) {
                throw new IllegalArgumentException("repeat must be within 1..1000, not " + repeat);
            }
            positive("call timeout", callTimeout);
            positive("arc budget", arcBudget);
            Objects.requireNonNull(dmaRun, "dmaRun");
            positive("pre-copy idle wait", precopyIdleWait);
            if (workloadSteps < 0) {
                throw new IllegalArgumentException("workload steps must not be negative");
            }
        }

        private static void positive(String what, Duration d) {
            if (d == null || d.isNegative() || d.isZero()) {
                throw new IllegalArgumentException(what + " must be positive");
            }
        }

        public static Options defaults() {
            return new Options(5, Duration.ofSeconds(10), Duration.ofMillis(100), 64, Duration.ofMillis(50),
                    Duration.ofSeconds(2));
        }

        public Options withRepeat(int n) {
            return new Options(n, callTimeout, arcBudget, workloadSteps, dmaRun, precopyIdleWait);
        }

        public Options withCallTimeout(Duration d) {
            return new Options(repeat, d, arcBudget, workloadSteps, dmaRun, precopyIdleWait);
        }

        public Options withArcBudget(Duration d) {
            return new Options(repeat, callTimeout, d, workloadSteps, dmaRun, precopyIdleWait);
        }
    }

    /** Runs the check with {@link Options#defaults()}. */
    public static CheckReport run(CheckTarget target) {
        return run(target, Options.defaults());
    }

    /** Runs the check; never throws for what the device does, it reports it. */
    public static CheckReport run(CheckTarget target, Options options) {
        long t0 = System.nanoTime();
        String aborted = null;
        CheckRun run = new CheckRun(options);
        try {
            LoadTest.run(run, target);
            walkInstance(run, target);
        } catch (CheckAbortedException e) {
            aborted = e.getMessage();
        } catch (RuntimeException e) {
            aborted = "the check stopped on an unexpected " + e.getClass().getSimpleName() + " from the device: "
                    + e.getMessage();
        } finally {
            run.close();
        }
        if (run.capabilities != null && !run.capabilities.hasAll(dev.ferry.vfio.fsm.MigCapabilities.PRE_COPY)) {
            run.findings.notApplicable(Rule.ENOMSG, "the device has no PRE_COPY");
            run.findings.notApplicable(Rule.PRECOPY_INFO, "the device has no PRE_COPY");
        }
        judgeBudget(run);
        if (!run.findings.violated(Rule.NO_HANG) && run.watchdog.returnedCalls() > 0) {
            run.findings.pass(Rule.NO_HANG, run.watchdog.returnedCalls());
            run.findings.note(Rule.NO_HANG, run.watchdog.returnedCalls() + " device calls, each within "
                    + duration(options.callTimeout().toNanos()));
        }
        List<CheckReport.RuleResult> rules = run.findings.results(aborted == null
                ? "nothing in this run exercised it" : "not reached: " + aborted);
        return new CheckReport(target.description(), run.deviceName,
                run.capabilities == null ? null : run.capabilities.toString(), run.dmaLogging, options, rules,
                run.timings(), run.sizes(), aborted, System.nanoTime() - t0);
    }

    private static void walkInstance(CheckRun run, CheckTarget target) throws CheckAbortedException {
        try (DeviceSession p = DeviceSession.open(run, target, false)) {
            run.dataSizeRunning = Saving.dataSize(p);
            long cap = Saving.imageCap(run.dataSizeRunning);
            StateImage own = new StateImage(cap);
            try {
                run.stopCopySave = Saving.stopCopy(p, own);
                StateImage usable = run.stopCopySave.complete ? own : null;
                if (p.supports(VfioDeviceState.PRE_COPY)) {
                    p.returnToRunning(null, null);
                    try (StateImage pre = new StateImage(cap)) {
                        int steps = run.options.workloadSteps();
                        run.preCopySave = Saving.preCopy(p, pre, () -> p.advance(steps));
                    }
                }
                p.returnToRunning(null, null);
                ResumeValidation.run(p, usable);
                ArcWalk walk = new ArcWalk(run, p, usable);
                walk.refusals();
                walk.arcs();
                walk.resets();
            } finally {
                own.close();
            }
        }
        // a fresh instance: the resets above undid whatever set the device up to DMA (the NIC's rings)
        try (DeviceSession q = DeviceSession.open(run, target, false)) {
            DmaLogTest.run(run, q);
        }
    }

    private static void judgeBudget(CheckRun run) {
        long budget = run.options.arcBudget().toNanos();
        for (CheckReport.ArcTiming t : run.timings()) {
            run.findings.expect(Rule.ARC_BUDGET, t.median() <= budget, t.arc() + " took a median "
                    + duration(t.median()) + " over " + t.nanos().size() + " run(s) (max " + duration(t.max())
                    + "), over the budget of " + duration(budget));
        }
    }

    /** A latency for people: {@code "850 ns"}, {@code "12 µs"}, {@code "3.4 ms"}, {@code "212 ms"}, {@code "1.50 s"}. */
    public static String duration(long nanos) {
        if (nanos < 1_000) {
            return nanos + " ns";
        }
        if (nanos < 1_000_000) {
            return (nanos / 1_000) + " \u00b5s";
        }
        if (nanos < 10_000_000) {
            return String.format(Locale.ROOT, "%.1f ms", nanos / 1e6);
        }
        if (nanos < 1_000_000_000) {
            return (nanos / 1_000_000) + " ms";
        }
        return String.format(Locale.ROOT, "%.2f s", nanos / 1e9);
    }
}
