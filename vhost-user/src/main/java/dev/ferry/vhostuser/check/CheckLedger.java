package dev.ferry.vhostuser.check;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The check's ledger: per rule, how often the promise was verified, the evidence of each
 * violation (the first few verbatim, all counted), notes on how the back-end behaved, and why a
 * rule was skipped. Used by the check's thread only.
 */
final class CheckLedger {
    /** Evidence lines kept per rule; the count goes on. */
    static final int EVIDENCE_KEPT = 5;

    private final Map<CheckRule, Entry> entries = new EnumMap<>(CheckRule.class);

    private static final class Entry {
        int checks;
        int violations;
        final List<String> evidence = new ArrayList<>();
        final Set<String> notes = new LinkedHashSet<>();
        String skipped;
    }

    private Entry entry(CheckRule rule) {
        return entries.computeIfAbsent(rule, r -> new Entry());
    }

    void pass(CheckRule rule) {
        entry(rule).checks++;
    }

    void pass(CheckRule rule, int times) {
        entry(rule).checks += Math.max(0, times);
    }

    void violation(CheckRule rule, String evidence) {
        Entry e = entry(rule);
        e.checks++;
        e.violations++;
        if (e.evidence.size() < EVIDENCE_KEPT && !e.evidence.contains(evidence)) {
            e.evidence.add(evidence);
        }
    }

    void expect(CheckRule rule, boolean held, String evidenceIfBroken) {
        if (held) {
            pass(rule);
        } else {
            violation(rule, evidenceIfBroken);
        }
    }

    void note(CheckRule rule, String note) {
        entry(rule).notes.add(note);
    }

    /** The rule could not be exercised; {@code why} says so in the report. */
    void skip(CheckRule rule, String why) {
        Entry e = entry(rule);
        if (e.skipped == null) {
            e.skipped = why;
        }
    }

    boolean violated(CheckRule rule) {
        Entry e = entries.get(rule);
        return e != null && e.violations > 0;
    }

    /** Results in rule order; a rule never reached is SKIPPED with {@code unreachedNote}. */
    List<VhostUserCheckReport.RuleResult> results(String unreachedNote) {
        List<VhostUserCheckReport.RuleResult> out = new ArrayList<>();
        for (CheckRule rule : CheckRule.values()) {
            Entry e = entries.getOrDefault(rule, new Entry());
            List<String> notes = new ArrayList<>(e.notes);
            VhostUserCheckReport.Status status;
            if (e.violations > 0) {
                status = VhostUserCheckReport.Status.FAIL;
            } else if (e.checks > 0 && e.skipped == null) {
                status = VhostUserCheckReport.Status.PASS;
            } else {
                status = VhostUserCheckReport.Status.SKIPPED;
                String why = e.skipped != null ? e.skipped : unreachedNote;
                if (why != null) {
                    notes.add(0, why);
                }
            }
            out.add(new VhostUserCheckReport.RuleResult(rule, status, e.checks, e.violations, e.evidence, notes));
        }
        return out;
    }
}
