package dev.ferry.vhostuser.check;

import dev.ferry.vhostuser.check.VhostUserCheckReport.Status;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The check catches a back-end that breaks one promise: qemu-storage-daemon behind a
 * {@link FaultProxy} that leaves its writes out of the log, or lies in GET_VRING_BASE, fails
 * exactly the rule that names the fault; behind a proxy that holds kicks while a ring is disabled,
 * the disable rule that plain qemu-storage-daemon fails holds.
 */
class FaultInjectionCheckTest {
    @TempDir
    Path dir;

    private VhostUserCheckReport check(FaultProxy.Fault fault, boolean gate, Set<CheckRule> skip) throws Exception {
        StorageDaemon.assumeInstalled();
        try (StorageDaemon qsd = StorageDaemon.start(dir, 16);
             FaultProxy proxy = new FaultProxy(dir.resolve("proxy.sock"), qsd.socket(), fault, gate)) {
            // a request not served is the finding here: a short serve timeout keeps the test short
            return VhostUserCheck.run(new VhostUserCheck.Options(dir.resolve("proxy.sock"), "blk", 2_000, 1_000, 300, skip));
        }
    }

    @Test
    void writesLeftOutOfTheLogAreNamedWithTheirPages() throws Exception {
        VhostUserCheckReport r = check(FaultProxy.Fault.UNLOGGED_WRITES, false,
                Set.of(CheckRule.DISABLE, CheckRule.MALFORMED, CheckRule.DRAIN));
        assertEquals(List.of(CheckRule.DIRTY_LOG), r.violatedRules(), String.join("\n", r.violationLines()));
        String evidence = r.rule(CheckRule.DIRTY_LOG).evidence().get(0);
        assertTrue(evidence.startsWith("traffic: " + r.traffic().pagesWritten() + " of " + r.traffic().pagesWritten()
                + " page(s) the back-end wrote are not in its log"), evidence);
        assertTrue(evidence.contains("(used ring q0)") && evidence.contains("(in buffers)")
                && evidence.contains("(status)"), evidence);
        assertEquals(r.traffic().pagesWritten(), r.traffic().pagesMissing());
        assertEquals(0, r.traffic().pagesLogged());
    }

    @Test
    void aWrongVringBaseIsNamedAndTheRestoredRingSkipsTheRequest() throws Exception {
        VhostUserCheckReport r = check(FaultProxy.Fault.WRONG_VRING_BASE, false,
                Set.of(CheckRule.DISABLE, CheckRule.MALFORMED, CheckRule.DRAIN));
        assertEquals(List.of(CheckRule.VRING_BASE, CheckRule.RESUME), r.violatedRules(),
                String.join("\n", r.violationLines()));
        String evidence = r.rule(CheckRule.VRING_BASE).evidence().get(0);
        assertTrue(evidence.matches("GET_VRING_BASE\\(0\\) returned (\\d+); the back-end consumed \\d+ .*"), evidence);
        assertTrue(r.rule(CheckRule.RESUME).evidence().get(0).contains("not served"),
                r.rule(CheckRule.RESUME).evidence().toString());
    }

    /**
     * A back-end whose GET_VRING_BASE counts one request more than it completed — what a back-end
     * that answers before its in-flight requests finish does, made deterministic.
     */
    @Test
    void aVringBaseCountingAnUncompletedRequestFailsDrain() throws Exception {
        VhostUserCheckReport r = check(FaultProxy.Fault.LATER_VRING_BASES_PLUS_ONE, false,
                Set.of(CheckRule.DISABLE, CheckRule.MALFORMED));
        assertEquals(List.of(CheckRule.DRAIN), r.violatedRules(), String.join("\n", r.violationLines()));
        String evidence = r.rule(CheckRule.DRAIN).evidence().get(0);
        assertTrue(evidence.matches("round 1: GET_VRING_BASE\\(0\\) with 32 requests kicked returned \\d+ \\((\\d+)"
                + " consumed\\) while \\d+ were completed at the reply .*"), evidence);
        assertEquals(Status.PASS, r.rule(CheckRule.VRING_BASE).status(), "the first GET_VRING_BASE was honest");
    }

    @Test
    void aReplyEchoingNeedReplyIsNamed() throws Exception {
        VhostUserCheckReport r = check(FaultProxy.Fault.NEED_REPLY_IN_REPLY, false, Set.of(CheckRule.MALFORMED, CheckRule.DRAIN));
        assertEquals(List.of(CheckRule.REPLY), r.violatedRules(), String.join("\n", r.violationLines()));
        assertTrue(r.rule(CheckRule.REPLY).evidence().get(0).endsWith("the reply to GET_PROTOCOL_FEATURES has flags 0xd;"
                + " a reply's flags are exactly 0x5 (version 1, REPLY)"), r.rule(CheckRule.REPLY).evidence().toString());
        assertTrue(r.aborted().startsWith("stopped: "), r.aborted());
        assertEquals(Status.SKIPPED, r.rule(CheckRule.TRAFFIC).status(), "nothing after a broken reply is believed");
    }

    @Test
    void aBackendWithoutTheSharedLogIsNotMigratableAndTheLogRuleIsSkipped() throws Exception {
        VhostUserCheckReport r = check(FaultProxy.Fault.NOT_MIGRATABLE, false, Set.of(CheckRule.DISABLE, CheckRule.MALFORMED, CheckRule.DRAIN));
        assertEquals(List.of(CheckRule.MIGRATABLE), r.violatedRules(), String.join("\n", r.violationLines()));
        assertEquals(List.of("not migratable: feature LOG_ALL (26) not offered, protocol feature LOG_SHMFD (1) not offered"),
                r.rule(CheckRule.MIGRATABLE).evidence());
        assertEquals(Status.SKIPPED, r.rule(CheckRule.DIRTY_LOG).status());
        assertEquals("not migratable: the back-end has no shared dirty log", r.rule(CheckRule.DIRTY_LOG).notes().get(0));
        assertEquals(Status.PASS, r.rule(CheckRule.TRAFFIC).status(), "the traffic still runs, unlogged");
        assertEquals(Status.PASS, r.rule(CheckRule.RESUME).status());
    }

    @Test
    void aBackendThatHoldsDisabledRingsPassesTheDisableRule() throws Exception {
        VhostUserCheckReport r = check(FaultProxy.Fault.NONE, true, Set.of(CheckRule.MALFORMED, CheckRule.DRAIN));
        assertTrue(r.passed(), String.join("\n", r.violationLines()) + "\n" + r.aborted());
        assertEquals(Status.PASS, r.rule(CheckRule.DISABLE).status());
        assertEquals(3, r.rule(CheckRule.DIRTY_LOG).checks(), "traffic, disable/enable, stop/resume");
    }
}
