package dev.ferry.vfio.check;

import dev.ferry.vfio.fsm.VfioArc;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * What {@link VfioCheck} found: one result per {@link Rule}, the latency of every arc the walk
 * took, the state sizes the device reported and produced, and why the check stopped early if it
 * did. A report passes when no rule was violated; rules that could not be exercised are listed
 * with the reason and do not fail it.
 *
 * @param target      what was checked, e.g. {@code "emulated:stop-copy,p2p"}
 * @param device      the device's own name
 * @param migration   the migration flags the device reported, or {@code null} when GET MIGRATION failed
 * @param dmaLogging  whether the device offers DMA logging
 * @param options     the options the check ran with
 * @param rules       one result per rule, in {@link Rule} order
 * @param arcs        latency per arc of the walk, in walk order
 * @param sizes       state sizes
 * @param aborted     why the check stopped before its end, or {@code null}
 * @param elapsedNanos how long the whole check took
 */
public record CheckReport(String target, String device, String migration, boolean dmaLogging,
                          VfioCheck.Options options, List<RuleResult> rules, List<ArcTiming> arcs, Sizes sizes,
                          String aborted, long elapsedNanos) {

    public CheckReport {
        rules = List.copyOf(rules);
        arcs = List.copyOf(arcs);
    }

    /** How a rule fared. */
    public enum Status {
        /** Exercised, never violated. */
        PASS,
        /** Violated at least once. */
        FAIL,
        /** The device's capabilities do not have what the rule is about. */
        NOT_APPLICABLE,
        /** Applicable, but the check could not exercise it (the notes say why). */
        NOT_EXERCISED
    }

    /**
     * One rule's outcome.
     *
     * @param rule       the rule
     * @param status     the outcome
     * @param checks     how many times the promise was verified
     * @param violations how many times it was broken
     * @param evidence   what broke it, first occurrences first (capped; {@code violations} counts all)
     * @param notes      what was and was not exercised, and why
     */
    public record RuleResult(Rule rule, Status status, int checks, int violations, List<String> evidence,
                             List<String> notes) {
        public RuleResult {
            evidence = List.copyOf(evidence);
            notes = List.copyOf(notes);
        }
    }

    /**
     * Latency of one single-arc SET of MIG_DEVICE_STATE, over the walk's repetitions.
     *
     * @param arc    the arc
     * @param nanos  each repetition's latency, in the order taken
     */
    public record ArcTiming(VfioArc arc, List<Long> nanos) {
        public ArcTiming {
            nanos = List.copyOf(nanos);
        }

        public long min() {
            return nanos.stream().mapToLong(Long::longValue).min().orElse(0);
        }

        public long max() {
            return nanos.stream().mapToLong(Long::longValue).max().orElse(0);
        }

        /** The median; for an even count the lower of the two middle values. */
        public long median() {
            if (nanos.isEmpty()) {
                return 0;
            }
            long[] sorted = nanos.stream().mapToLong(Long::longValue).sorted().toArray();
            return sorted[(sorted.length - 1) / 2];
        }
    }

    /**
     * State sizes seen on the checked device, in bytes; -1 where not measured.
     *
     * @param dataSizeRunning        MIG_DATA_SIZE while RUNNING, before any session
     * @param stopCopyEstimate       MIG_DATA_SIZE on entering STOP_COPY straight from STOP
     * @param stopCopyBytes          what that STOP_COPY session actually produced up to its end
     * @param precopyInitialBytes    PRECOPY_INFO initial_bytes on entering PRE_COPY
     * @param precopyBytes           what was read while in PRE_COPY*
     * @param precopyMaxDirtyBytes   the largest dirty_bytes PRECOPY_INFO reported
     * @param precopyStopCopyEstimate MIG_DATA_SIZE on entering STOP_COPY after pre-copy
     * @param precopyStopCopyBytes   what STOP_COPY produced after pre-copy
     */
    public record Sizes(long dataSizeRunning, long stopCopyEstimate, long stopCopyBytes, long precopyInitialBytes,
                        long precopyBytes, long precopyMaxDirtyBytes, long precopyStopCopyEstimate,
                        long precopyStopCopyBytes) {
        public static final Sizes UNKNOWN = new Sizes(-1, -1, -1, -1, -1, -1, -1, -1);
    }

    /** True when no rule was violated and the check ran to its end. */
    public boolean passed() {
        return aborted == null && rules.stream().noneMatch(r -> r.status() == Status.FAIL);
    }

    /** The result of one rule. */
    public RuleResult rule(Rule rule) {
        return rules.stream().filter(r -> r.rule() == rule).findFirst()
                .orElseThrow(() -> new IllegalStateException("no result for " + rule));
    }

    /** The rules that were violated, in {@link Rule} order. */
    public List<Rule> violatedRules() {
        return rules.stream().filter(r -> r.status() == Status.FAIL).map(RuleResult::rule).toList();
    }

    /** One line per recorded violation: {@code "rule eof violated: STOP_COPY read ..."}. */
    public List<String> violationLines() {
        List<String> lines = new ArrayList<>();
        for (RuleResult r : rules) {
            for (String e : r.evidence()) {
                lines.add("rule " + r.rule().id() + " violated: " + e);
            }
            int more = r.violations() - r.evidence().size();
            if (more > 0) {
                lines.add("rule " + r.rule().id() + " violated " + more + " more time" + (more == 1 ? "" : "s"));
            }
        }
        return lines;
    }

    /** The timing of {@code arc}, if the walk took it. */
    public Optional<ArcTiming> timing(VfioArc arc) {
        return arcs.stream().filter(a -> a.arc().equals(arc)).findFirst();
    }
}
