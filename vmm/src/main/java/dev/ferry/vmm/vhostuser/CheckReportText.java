package dev.ferry.vmm.vhostuser;

import dev.ferry.vhostuser.check.VhostUserCheck;
import dev.ferry.vhostuser.check.VhostUserCheckReport;
import dev.ferry.vhostuser.check.VhostUserCheckReport.Status;

import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;

/**
 * The human form of a {@link VhostUserCheckReport}: what the back-end offered, the rules with
 * their result and promise (evidence and notes indented under each), what the logged traffic did,
 * then one line per violation and the verdict.
 */
final class CheckReportText {
    private CheckReportText() {
    }

    static void print(VhostUserCheckReport r, PrintWriter out) {
        out.println("ferry vhost-user check: " + r.socket() + " (" + r.type() + ")");
        out.println("features " + hex(r.features()) + ", protocol features " + hex(r.protocolFeatures()));
        out.println();
        out.printf(Locale.ROOT, "%-12s %-8s %7s  %s%n", "RULE", "RESULT", "CHECKS", "PROMISE");
        for (VhostUserCheckReport.RuleResult rule : r.rules()) {
            out.printf(Locale.ROOT, "%-12s %-8s %7d  %s%n", rule.rule().id(), status(rule.status()), rule.checks(),
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
        VhostUserCheckReport.Traffic t = r.traffic();
        out.println();
        out.printf(Locale.ROOT, "logged traffic: %d %s, %,d bytes; pages written %d, logged %d, missing from the log %d%n",
                t.requests(), r.type().equals("net") ? "frames" : "requests", t.bytes(), t.pagesWritten(),
                t.pagesLogged(), t.pagesMissing());
        out.println();
        r.violationLines().forEach(out::println);
        if (r.aborted() != null) {
            out.println(r.aborted());
        }
        out.println(verdict(r));
    }

    static String verdict(VhostUserCheckReport r) {
        long held = r.rules().stream().filter(x -> x.status() == Status.PASS).count();
        long skipped = r.rules().stream().filter(x -> x.status() == Status.SKIPPED).count();
        List<String> broken = r.violatedRules().stream().map(x -> x.id()).toList();
        String counts = held + " held, " + skipped + " skipped";
        String time = " in " + VhostUserCheck.duration(r.elapsedNanos());
        if (r.passed()) {
            return "result: PASS (" + counts + ")" + time;
        }
        return "result: FAIL (" + (broken.isEmpty() ? "the check stopped" : broken.size() + " rule"
                + (broken.size() == 1 ? "" : "s") + " violated: " + String.join(", ", broken)) + "; " + counts + ")"
                + time;
    }

    private static String hex(long v) {
        return v < 0 ? "(unknown)" : "0x" + Long.toHexString(v);
    }

    private static String status(Status s) {
        return switch (s) {
            case PASS -> "pass";
            case FAIL -> "FAIL";
            case SKIPPED -> "skipped";
        };
    }
}
