package dev.ferry.vhostuser.check;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The check against DPDK testpmd's vhost-user-net port (no hugepages, macswap loop). */
class TestpmdCheckTest {
    @TempDir
    Path dir;

    @Test
    void testpmdPassesEveryRule() throws Exception {
        Testpmd.assumeInstalled();
        try (Testpmd pmd = Testpmd.start(dir)) {
            VhostUserCheckReport r = VhostUserCheck.run(VhostUserCheck.Options.of(pmd.socket(), "net"));
            assertTrue(r.passed(), () -> String.join("\n", r.violationLines()) + "\n" + r.aborted() + "\n" + log(pmd));
            for (VhostUserCheckReport.RuleResult rule : r.rules()) {
                assertEquals(rule.rule() == CheckRule.DRAIN ? VhostUserCheckReport.Status.SKIPPED
                        : VhostUserCheckReport.Status.PASS, rule.status(), rule.toString());
            }
            assertEquals("a net ring holds buffers, not requests in flight", r.rule(CheckRule.DRAIN).notes().get(0));
            assertEquals(2 * NetExercise.FRAMES, r.traffic().requests());
            assertEquals(0, r.traffic().pagesMissing());
            assertTrue(pmd.alive());
        }
    }

    /** testpmd with a proxy that swallows SET_VRING_ENABLE(0): frames reach a ring the check disabled. */
    @Test
    void aBackendThatIgnoresDisableIsCaught() throws Exception {
        Testpmd.assumeInstalled();
        try (Testpmd pmd = Testpmd.start(dir);
             FaultProxy proxy = new FaultProxy(dir.resolve("proxy.sock"), pmd.socket(), FaultProxy.Fault.IGNORE_DISABLE,
                     false)) {
            // a long watch of the disabled ring, so that the finding does not depend on the machine's load
            VhostUserCheckReport r = VhostUserCheck.run(new VhostUserCheck.Options(dir.resolve("proxy.sock"), "net", 2_000,
                    2_000, 1_000, Set.of(CheckRule.MALFORMED)));
            assertEquals(List.of(CheckRule.DISABLE), r.violatedRules(), () -> String.join("\n", r.violationLines()));
            String evidence = r.rule(CheckRule.DISABLE).evidence().get(0);
            assertTrue(evidence.startsWith("ring 0 disabled: a request kicked then changed")
                    && evidence.contains("(used ring q0)") && evidence.contains("(in buffers)"), evidence);
        }
    }

    /** testpmd with a proxy that keeps SET_LOG_BASE from it: its RX writes are named as unlogged pages. */
    @Test
    void unloggedFrameWritesAreNamed() throws Exception {
        Testpmd.assumeInstalled();
        try (Testpmd pmd = Testpmd.start(dir);
             FaultProxy proxy = new FaultProxy(dir.resolve("proxy.sock"), pmd.socket(), FaultProxy.Fault.UNLOGGED_WRITES,
                     false)) {
            VhostUserCheckReport r = VhostUserCheck.run(VhostUserCheck.Options.of(dir.resolve("proxy.sock"), "net")
                    .skipping(Set.of(CheckRule.MALFORMED)));
            assertEquals(List.of(CheckRule.DIRTY_LOG), r.violatedRules(), () -> String.join("\n", r.violationLines()));
            String evidence = r.rule(CheckRule.DIRTY_LOG).evidence().get(0);
            assertTrue(evidence.startsWith("traffic: ") && evidence.contains("(used ring q0)")
                    && evidence.contains("(used ring q1)") && evidence.contains("(in buffers)"), evidence);
            assertEquals(r.traffic().pagesWritten(), r.traffic().pagesMissing());
        }
    }

    private static String log(Testpmd pmd) {
        try {
            return pmd.log();
        } catch (java.io.IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }
}
