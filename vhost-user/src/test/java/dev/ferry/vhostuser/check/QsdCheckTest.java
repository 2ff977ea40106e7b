package dev.ferry.vhostuser.check;

import dev.ferry.vhostuser.check.VhostUserCheckReport.Status;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The check against the real qemu-storage-daemon (QEMU 7.2's libvhost-user): the migration rules
 * hold — negotiation, replies, logging of every page it writes, GET_VRING_BASE and a restored ring —
 * and the disk ends as it began. Deviations of that version are found and named as such: it goes on
 * serving a ring disabled by SET_VRING_ENABLE(0), it acknowledges a SET_VRING_NUM of the wrong size
 * with 0 (and dies with SIGSEGV on a ring index out of range), and — when the check's burst catches
 * it mid-way, a race — it answers GET_VRING_BASE before the requests it counts are completed.
 */
class QsdCheckTest {
    @TempDir
    Path dir;

    @Test
    void migrationRulesHoldAndTheDiskIsUnchanged() throws Exception {
        StorageDaemon.assumeInstalled();
        try (StorageDaemon qsd = StorageDaemon.start(dir, 16)) {
            byte[] before = Files.readAllBytes(qsd.image());
            long fds = openFds();
            // drain is left out: whether a run catches the daemon mid-request is a race (see the next test)
            Set<CheckRule> skipped = Set.of(CheckRule.DISABLE, CheckRule.MALFORMED, CheckRule.DRAIN);
            VhostUserCheckReport r = VhostUserCheck.run(VhostUserCheck.Options.of(qsd.socket(), "blk").skipping(skipped));
            assertEquals(fds, openFds(), "the check closes every descriptor it opened");
            assertTrue(r.passed(), () -> String.join("\n", r.violationLines()) + "\n" + r.aborted());
            for (CheckRule rule : CheckRule.values()) {
                Status expected = skipped.contains(rule) ? Status.SKIPPED : Status.PASS;
                assertEquals(expected, r.rule(rule).status(), r.rule(rule).toString());
            }
            assertEquals(4 * BlkExercise.BLOCKS, r.traffic().requests(), r.traffic().toString());
            assertTrue(r.traffic().pagesWritten() > BlkExercise.BLOCKS, "in buffers, status and used ring: " + r.traffic());
            assertEquals(0, r.traffic().pagesMissing());
            assertEquals(2, r.rule(CheckRule.DIRTY_LOG).checks(), "the traffic and the stop/resume phases");
            assertTrue(qsd.alive());
            assertTrue(Arrays.equals(before, Files.readAllBytes(qsd.image())), "the check wrote the saved blocks back");
        }
    }

    private static long openFds() throws java.io.IOException {
        try (var s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }

    @Test
    void qsdServesADisabledRingAndAcceptsAWrongSizedRequest() throws Exception {
        StorageDaemon.assumeInstalled();
        try (StorageDaemon qsd = StorageDaemon.start(dir, 16)) {
            // a long watch of the disabled ring, so that the finding does not depend on the machine's load;
            // drain left out: its finding on the daemon is a race (the next test)
            VhostUserCheckReport r = VhostUserCheck.run(new VhostUserCheck.Options(qsd.socket(), "blk", 2_000, 2_000, 1_000,
                    Set.of(CheckRule.DRAIN)));
            assertFalse(r.passed());
            assertEquals(java.util.List.of(CheckRule.DISABLE, CheckRule.MALFORMED), r.violatedRules(),
                    String.join("\n", r.violationLines()));
            String disable = r.rule(CheckRule.DISABLE).evidence().get(0);
            assertTrue(disable.contains("(used ring q0)") && disable.contains("(in buffers)"), disable);
            assertTrue(r.rule(CheckRule.MALFORMED).evidence().stream()
                    .anyMatch(e -> e.startsWith("SET_VRING_NUM with a 4-byte payload") && e.contains("accepted")),
                    r.rule(CheckRule.MALFORMED).evidence().toString());
            assertTrue(r.rule(CheckRule.MALFORMED).notes().stream().anyMatch(n -> n.startsWith("SET_MEM_TABLE")),
                    r.rule(CheckRule.MALFORMED).notes().toString());
            for (CheckRule rule : new CheckRule[] {CheckRule.DIRTY_LOG, CheckRule.VRING_BASE, CheckRule.RESUME}) {
                assertEquals(Status.PASS, r.rule(rule).status(), r.rule(rule).toString());
            }
        }
    }

    /**
     * The drain rule on the daemon: each round's outcome depends on where the burst catches it, so
     * the rule may pass or fail; what must hold is that its rounds ran, and that a failure names a
     * round where the reply counted requests not completed or writes came after it.
     */
    @Test
    void drainRoundsRunAndAFailureNamesTheRound() throws Exception {
        StorageDaemon.assumeInstalled();
        try (StorageDaemon qsd = StorageDaemon.start(dir, 16)) {
            VhostUserCheckReport r = VhostUserCheck.run(VhostUserCheck.Options.of(qsd.socket(), "blk")
                    .skipping(Set.of(CheckRule.DISABLE, CheckRule.MALFORMED)));
            VhostUserCheckReport.RuleResult drain = r.rule(CheckRule.DRAIN);
            assertTrue(drain.notes().stream().anyMatch(n -> n.matches("round 1: \\d+ of 32 consumed at GET_VRING_BASE")),
                    drain.toString());
            if (drain.status() == Status.FAIL) {
                String e = drain.evidence().get(0);
                // the reply counted requests not completed, or the daemon hung up mid-round (it panics
                // when a late completion signals the call fd it closed at GET_VRING_BASE)
                assertTrue(e.matches("round \\d: GET_VRING_BASE\\(0\\) with 32 requests kicked returned \\d+ \\(\\d+"
                        + " consumed\\) while \\d+ were completed at the reply and \\d+ after 300 ms.*")
                        || e.matches("round \\d: back-end .*"), e);
                System.out.println("qemu-storage-daemon failed drain: " + e);
            } else {
                assertEquals(Status.PASS, drain.status(), drain.toString());
                assertEquals(VhostUserCheck.DRAIN_ROUNDS, drain.checks());
            }
        }
    }
}
