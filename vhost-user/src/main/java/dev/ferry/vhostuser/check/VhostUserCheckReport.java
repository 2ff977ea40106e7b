package dev.ferry.vhostuser.check;

import java.util.ArrayList;
import java.util.List;

/**
 * What {@link VhostUserCheck} found: one result per {@link CheckRule}, what the back-end offered,
 * what the traffic did, and why the check stopped early if it did. A report passes when no rule
 * was violated and the check ran to its end; skipped rules are listed with the reason.
 *
 * @param socket           the back-end's socket
 * @param type             {@code blk} or {@code net}
 * @param features         what GET_FEATURES offered, or -1
 * @param protocolFeatures what GET_PROTOCOL_FEATURES offered, or -1
 * @param rules            one result per rule, in {@link CheckRule} order
 * @param traffic          what the ring traffic moved
 * @param aborted          why the check stopped before its end, or {@code null}
 * @param elapsedNanos     how long the whole check took
 */
public record VhostUserCheckReport(String socket, String type, long features, long protocolFeatures,
                                   List<RuleResult> rules, Traffic traffic, String aborted, long elapsedNanos) {

    public VhostUserCheckReport {
        rules = List.copyOf(rules);
    }

    public enum Status {
        /** Exercised, never violated. */
        PASS,
        /** Violated at least once. */
        FAIL,
        /** Not exercised: the notes say why (a missing feature, an earlier failure). */
        SKIPPED
    }

    /**
     * One rule's outcome.
     *
     * @param checks     how many times the promise was verified
     * @param violations how many times it was broken
     * @param evidence   what broke it, first occurrences first (capped; {@code violations} counts all)
     * @param notes      how the back-end behaved, or why the rule was skipped
     */
    public record RuleResult(CheckRule rule, Status status, int checks, int violations, List<String> evidence,
                             List<String> notes) {
        public RuleResult {
            evidence = List.copyOf(evidence);
            notes = List.copyOf(notes);
        }
    }

    /**
     * What the logged traffic did.
     *
     * @param requests     requests (blk) or frames (net) served while logging was on
     * @param bytes        payload bytes moved by them
     * @param pagesWritten guest pages the back-end changed
     * @param pagesLogged  pages its log named
     * @param pagesMissing pages changed but not logged
     */
    public record Traffic(long requests, long bytes, long pagesWritten, long pagesLogged, long pagesMissing) {
        public static final Traffic NONE = new Traffic(0, 0, 0, 0, 0);
    }

    public boolean passed() {
        return aborted == null && rules.stream().noneMatch(r -> r.status() == Status.FAIL);
    }

    public RuleResult rule(CheckRule rule) {
        return rules.stream().filter(r -> r.rule() == rule).findFirst()
                .orElseThrow(() -> new IllegalStateException("no result for " + rule));
    }

    public List<CheckRule> violatedRules() {
        return rules.stream().filter(r -> r.status() == Status.FAIL).map(RuleResult::rule).toList();
    }

    /** One line per recorded violation: {@code "rule dirty-log violated: ..."}. */
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
}
