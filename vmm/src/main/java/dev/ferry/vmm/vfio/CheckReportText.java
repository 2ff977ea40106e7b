package dev.ferry.vmm.vfio;

import dev.ferry.vfio.check.CheckReport;
import dev.ferry.vfio.check.CheckReport.Status;
import dev.ferry.vfio.check.VfioCheck;

import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;

/**
 * The human form of a {@link CheckReport}: the rules with their result and promise (notes and
 * evidence indented under each), the arc latency table, the state sizes, then one line per
 * violation and the verdict.
 */
final class CheckReportText {
    private CheckReportText() {
    }

    static void print(CheckReport r, PrintWriter out) {
        out.println("ferry vfio check: " + r.target());
        out.println("device " + (r.device() == null ? "(none opened)" : r.device()) + ", migration "
                + (r.migration() == null ? "(unknown)" : r.migration()) + ", DMA logging "
                + (r.dmaLogging() ? "yes" : "no"));
        out.println();
        out.printf(Locale.ROOT, "%-17s %-14s %7s  %s%n", "RULE", "RESULT", "CHECKS", "PROMISE");
        for (CheckReport.RuleResult rule : r.rules()) {
            out.printf(Locale.ROOT, "%-17s %-14s %7d  %s%n", rule.rule().id(), status(rule.status()), rule.checks(),
                    rule.rule().statement());
            for (String e : rule.evidence()) {
                out.println("    ! " + e);
            }
            int more = rule.violations() - rule.evidence().size();
            if (more > 0) {
                out.println("    ! ... and " + more + " more");
            }
            for (String n : rule.notes()) {
                out.println("    - " + n);
            }
        }
        if (!r.arcs().isEmpty()) {
            out.println();
            out.printf(Locale.ROOT, "%-28s %5s %10s %10s %10s%n", "ARC", "RUNS", "MIN", "MEDIAN", "MAX");
            for (CheckReport.ArcTiming t : r.arcs()) {
                out.printf(Locale.ROOT, "%-28s %5d %10s %10s %10s%n", t.arc(), t.nanos().size(),
                        VfioCheck.duration(t.min()), VfioCheck.duration(t.median()), VfioCheck.duration(t.max()));
            }
        }
        CheckReport.Sizes s = r.sizes();
        if (s.dataSizeRunning() >= 0 || s.stopCopyBytes() >= 0 || s.precopyBytes() >= 0) {
            out.println();
            out.println("SIZES (bytes)");
            size(out, "MIG_DATA_SIZE while RUNNING", s.dataSizeRunning());
            pair(out, "STOP_COPY: MIG_DATA_SIZE on entry / read", s.stopCopyEstimate(), s.stopCopyBytes());
            size(out, "PRE_COPY: initial_bytes on entry", s.precopyInitialBytes());
            size(out, "PRE_COPY: read before STOP_COPY", s.precopyBytes());
            size(out, "PRE_COPY: largest dirty_bytes seen", s.precopyMaxDirtyBytes());
            pair(out, "STOP_COPY after pre-copy: estimate / read", s.precopyStopCopyEstimate(), s.precopyStopCopyBytes());
        }
        out.println();
        List<String> violations = r.violationLines();
        violations.forEach(out::println);
        if (r.aborted() != null) {
            out.println(r.aborted());
        }
        out.println(verdict(r));
    }

    static String verdict(CheckReport r) {
        long held = r.rules().stream().filter(x -> x.status() == Status.PASS).count();
        long na = r.rules().stream().filter(x -> x.status() == Status.NOT_APPLICABLE).count();
        long unexercised = r.rules().stream().filter(x -> x.status() == Status.NOT_EXERCISED).count();
        List<String> broken = r.violatedRules().stream().map(x -> x.id()).toList();
        String counts = held + " held, " + na + " not applicable, " + unexercised + " not exercised";
        String time = " in " + VfioCheck.duration(r.elapsedNanos());
        if (r.passed()) {
            return "result: PASS (" + counts + ")" + time;
        }
        return "result: FAIL (" + (broken.isEmpty() ? "the check stopped" : broken.size() + " rule"
                + (broken.size() == 1 ? "" : "s") + " violated: " + String.join(", ", broken)) + "; " + counts + ")"
                + time;
    }

    private static String status(Status s) {
        return switch (s) {
            case PASS -> "pass";
            case FAIL -> "FAIL";
            case NOT_APPLICABLE -> "n/a";
            case NOT_EXERCISED -> "not exercised";
        };
    }

    private static void size(PrintWriter out, String what, long bytes) {
        if (bytes >= 0) {
            out.printf(Locale.ROOT, "  %-44s %,d%n", what, bytes);
        }
    }

    private static void pair(PrintWriter out, String what, long a, long b) {
        if (a >= 0 || b >= 0) {
            out.printf(Locale.ROOT, "  %-44s %s / %s%n", what, a < 0 ? "-" : String.format(Locale.ROOT, "%,d", a),
                    b < 0 ? "-" : String.format(Locale.ROOT, "%,d", b));
        }
    }
}
