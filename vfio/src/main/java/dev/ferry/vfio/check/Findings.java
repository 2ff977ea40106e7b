package dev.ferry.vfio.check;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The check's ledger: for each rule, how often it was verified, the evidence of each violation
 * (the first few kept verbatim, all counted), and notes on what was not exercised. Used by the
 * check's thread only.
 */
final class Findings {
    /** Evidence lines kept per rule; the count goes on. */
    static final int EVIDENCE_KEPT = 5;

    private final Map<Rule, Entry> entries = new EnumMap<>(Rule.class);

    private static final class Entry {
        int checks;
        int violations;
        final List<String> evidence = new ArrayList<>();
        final Set<String> notes = new LinkedHashSet<>();
        String notApplicable;
        boolean incomplete;
    }

    private Entry entry(Rule rule) {
        return entries.computeIfAbsent(rule, r -> new Entry());
    }

    /** The promise held once more. */
    void pass(Rule rule) {
        entry(rule).checks++;
    }

    /** The promise held {@code times} more times. */
    void pass(Rule rule, int times) {
        entry(rule).checks += times;
    }

    /** The promise was broken; {@code evidence} says where and how. */
    void violation(Rule rule, String evidence) {
        Entry e = entry(rule);
        e.checks++;
        e.violations++;
        if (e.evidence.size() < EVIDENCE_KEPT && !e.evidence.contains(evidence)) {
            e.evidence.add(evidence);
        }
    }

    /** Records {@code pass} or {@code violation} depending on {@code held}. */
    void expect(Rule rule, boolean held, String evidenceIfBroken) {
        if (held) {
            pass(rule);
        } else {
            violation(rule, evidenceIfBroken);
        }
    }

    /** Something worth knowing about what the rule covered (or did not); duplicates are dropped. */
    void note(Rule rule, String note) {
        entry(rule).notes.add(note);
    }

    /**
     * The rule's central promise could not be exercised although side checks ran (they still
     * count, and a violation still fails the rule); {@code why} goes into the notes.
     */
    void incomplete(Rule rule, String why) {
        Entry e = entry(rule);
        e.incomplete = true;
        e.notes.add(why);
    }

    /** The device has nothing the rule is about. */
    void notApplicable(Rule rule, String why) {
        entry(rule).notApplicable = why;
    }

    boolean violated(Rule rule) {
        Entry e = entries.get(rule);
        return e != null && e.violations > 0;
    }

    int checks(Rule rule) {
        Entry e = entries.get(rule);
        return e == null ? 0 : e.checks;
    }

    /** Results in rule order; a rule never touched is NOT_EXERCISED with {@code unreachedNote}. */
    List<CheckReport.RuleResult> results(String unreachedNote) {
        List<CheckReport.RuleResult> out = new ArrayList<>();
        for (Rule rule : Rule.values()) {
            Entry e = entries.getOrDefault(rule, new Entry());
            List<String> notes = new ArrayList<>(e.notes);
            CheckReport.Status status;
            if (e.violations > 0) {
                status = CheckReport.Status.FAIL;
            } else if (e.checks > 0 && !e.incomplete) {
                status = CheckReport.Status.PASS;
            } else if (e.notApplicable != null && !e.incomplete) {
                status = CheckReport.Status.NOT_APPLICABLE;
                notes.add(0, e.notApplicable);
            } else {
                status = CheckReport.Status.NOT_EXERCISED;
                if (notes.isEmpty() && unreachedNote != null) {
                    notes.add(unreachedNote);
                }
            }
            out.add(new CheckReport.RuleResult(rule, status, e.checks, e.violations, e.evidence, notes));
        }
        return out;
    }
}
