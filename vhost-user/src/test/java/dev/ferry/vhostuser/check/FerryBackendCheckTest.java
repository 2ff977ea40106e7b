package dev.ferry.vhostuser.check;

import dev.ferry.vhostuser.backend.BackendFaults;
import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import dev.ferry.vhostuser.check.VhostUserCheckReport.Status;
import dev.ferry.virtio.blk.BlkOptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The vendor check against Ferry's own back-end: every rule holds, malformed requests included,
 * and the disk ends as it began; and each fault the back-end can be told to commit is caught by
 * the rule it breaks — a write left out of the dirty log, a wrong vring base, writes after a
 * disable — and by no rule it does not break.
 */
class FerryBackendCheckTest {
    @TempDir
    Path dir;

    private Path image() throws Exception {
        Path image = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(16L << 20);
        }
        byte[] pattern = new byte[1 << 20];
        new java.util.Random(5).nextBytes(pattern);
        Files.write(image, pattern, java.nio.file.StandardOpenOption.WRITE);
        return image;
    }

    @Test
    void everyRuleHoldsOnFerrysBackEnd() throws Exception {
        Path image = image();
        byte[] before = Files.readAllBytes(image);
        Path socket = dir.resolve("ferry-vub.sock");
        try (VhostUserBackend b = VhostUserBackend.serveBlk(BlkOptions.of(image), BackendOptions.server(socket))) {
            VhostUserCheckReport r = VhostUserCheck.run(VhostUserCheck.Options.of(socket, "blk"));
            assertTrue(r.passed(), () -> String.join("\n", r.violationLines()) + "\n" + r.aborted());
            for (CheckRule rule : CheckRule.values()) {
                assertEquals(Status.PASS, r.rule(rule).status(), r.rule(rule).toString());
            }
            assertEquals(0, r.traffic().pagesMissing(), r.traffic().toString());
            assertTrue(b.stats().refused() > 0, "the malformed probes were refused: " + b.stats());
        }
        assertTrue(Arrays.equals(before, Files.readAllBytes(image)), "the check wrote the saved blocks back");
    }

    /** Which rules each injected fault must break. */
    private static final Map<BackendFaults, Set<CheckRule>> BREAKS = Map.of(
            BackendFaults.LOG_OMIT, EnumSet.of(CheckRule.DIRTY_LOG),
            BackendFaults.WRONG_VRING_BASE, EnumSet.of(CheckRule.VRING_BASE, CheckRule.RESUME),
            BackendFaults.WRITE_AFTER_DISABLE, EnumSet.of(CheckRule.DISABLE));

    @ParameterizedTest
    @EnumSource(value = BackendFaults.class, mode = EnumSource.Mode.EXCLUDE, names = "KICK_ONLY") // legal: below
    void eachInjectedFaultFailsExactlyItsRules(BackendFaults fault) throws Exception {
        Path socket = dir.resolve("ferry-vub-" + fault.name().toLowerCase() + ".sock");
        try (VhostUserBackend b = VhostUserBackend.serveBlk(BlkOptions.of(image()),
                BackendOptions.server(socket).withFaults(Set.of(fault)))) {
            VhostUserCheckReport r = VhostUserCheck.run(VhostUserCheck.Options.of(socket, "blk"));
            assertFalse(r.passed(), fault + " went unnoticed");
            Set<CheckRule> expected = BREAKS.get(fault);
            List<CheckRule> violated = r.violatedRules();
            assertTrue(violated.containsAll(expected), fault + ": expected " + expected + ", got " + violated + "\n"
                    + String.join("\n", r.violationLines()));
            for (CheckRule rule : violated) {
                assertTrue(expected.contains(rule) || rule == CheckRule.DRAIN && fault == BackendFaults.WRONG_VRING_BASE,
                        fault + " also broke " + rule + ": " + r.rule(rule));
            }
        }
    }

    /**
     * {@code kick-only} is no fault: a back-end that serves a ring only on its kick, as
     * libvhost-user does, keeps every promise, and the check (which kicks what it submits) says so.
     */
    @Test
    void aBackEndThatServesOnlyOnKicksPassesTheCheck() throws Exception {
        Path socket = dir.resolve("ferry-vub-kick-only.sock");
        try (VhostUserBackend b = VhostUserBackend.serveBlk(BlkOptions.of(image()),
                BackendOptions.server(socket).withFaults(Set.of(BackendFaults.KICK_ONLY)))) {
            VhostUserCheckReport r = VhostUserCheck.run(VhostUserCheck.Options.of(socket, "blk"));
            assertTrue(r.passed(), () -> String.join("\n", r.violationLines()) + "\n" + r.aborted());
            assertTrue(b.stats().kicks() > 0, b.stats().toString());
        }
    }
}
