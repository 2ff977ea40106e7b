package dev.ferry.vmm.vfio;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.vmm.Ferry;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code ferry vfio check} through the real command line, in-process, on emulated VFs. */
@Timeout(60)
class VfioCheckCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private record Run(int exit, String out, String err) {
    }

    private static Run ferry(String... args) {
        CommandLine cl = new CommandLine(new Ferry()).setCaseInsensitiveEnumValuesAllowed(true);
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int exit = cl.execute(args);
        return new Run(exit, out.toString(), err.toString());
    }

    /** The test's small-state device: {@code --arc-budget} generous, since tests never judge speed. */
    private static Run check(String device, String... more) {
        List<String> args = new ArrayList<>(List.of("vfio", "check", "--device", device, "--repeat", "2",
                "--arc-budget", "30000"));
        args.addAll(List.of(more));
        return ferry(args.toArray(new String[0]));
    }

    @Test
    void healthyDevicePassesWithATable() {
        Run r = check("emulated:stop-copy,p2p,pre-copy,state=256K");
        assertEquals(0, r.exit(), r.out() + r.err());
        assertEquals("", r.err());
        String out = r.out();
        assertTrue(out.startsWith("ferry vfio check: emulated:stop-copy,p2p,pre-copy,state=256K\n"), out);
        assertTrue(out.contains("device vf0, migration {STOP_COPY|P2P|PRE_COPY}, DMA logging yes"), out);
        assertTrue(out.lines().anyMatch(l -> l.matches("eof\\s+pass\\s+\\d+\\s+STOP_COPY reads end with 0.*")), out);
        assertTrue(out.lines().anyMatch(l -> l.matches("dma-log\\s+pass\\s+\\d+\\s+.*")), out); // the NIC DMAs
        // one latency row per arc of the set, each taken twice
        long arcRows = out.lines().filter(l -> l.matches("[A-Z0-9_]+\u2192[A-Z0-9_]+\\s+2\\s+.*")).count();
        assertEquals(15, arcRows, out);
        assertTrue(out.contains("STOP_COPY: MIG_DATA_SIZE on entry / read"), out);
        assertTrue(out.lines().reduce((a, b) -> b).orElseThrow().startsWith("result: PASS ("), out);
        assertFalse(out.contains("violated"), out);
    }

    @Test
    void faultyDeviceFailsNamingTheRuleAndTheEvidence() {
        Run r = check("emulated:stop-copy,state=256K,fault=no-eof");
        assertEquals(1, r.exit(), r.out() + r.err());
        assertTrue(r.out().lines().anyMatch(l -> l.startsWith("rule eof violated: a STOP_COPY read after ")
                && l.endsWith("bytes returned -1/ENOMSG instead of 0 (end of stream)")), r.out());
        assertTrue(r.out().lines().anyMatch(l -> l.matches("eof\\s+FAIL\\s+.*")), r.out());
        assertTrue(r.out().contains("result: FAIL (1 rule violated: eof;"), r.out());
    }

    @Test
    void jsonIsOneObjectWithTheSameFindings() throws Exception {
        Run r = check("emulated:state=256K,fault=stale-fd", "--json");
        assertEquals(1, r.exit(), r.err());
        JsonNode j = JSON.readTree(r.out());
        assertEquals("emulated:state=256K,fault=stale-fd", j.get("target").asText());
        assertFalse(j.get("passed").asBoolean());
        assertTrue(j.get("aborted").isNull());
        assertEquals(2, j.get("options").get("repeat").asInt());
        JsonNode failed = null;
        int rules = 0;
        for (JsonNode rule : j.get("rules")) {
            rules++;
            if (rule.get("status").asText().equals("FAIL")) {
                assertEquals(null, failed, "only one rule fails");
                failed = rule;
            }
        }
        assertEquals(dev.ferry.vfio.check.Rule.values().length, rules);
        assertEquals("session-fd", failed.get("id").asText());
        assertTrue(failed.get("evidence").get(0).asText().contains("instead of failing with ENODEV"), failed.toString());
        assertTrue(j.get("violations").get(0).asText().startsWith("rule session-fd violated: "));
        assertEquals(15, j.get("arcs").size());
        JsonNode arc = j.get("arcs").get(0);
        assertEquals(2, arc.get("runs").asInt());
        assertTrue(arc.get("minNs").asLong() <= arc.get("medianNs").asLong());
        assertTrue(j.get("sizes").get("stopCopyBytes").asLong() > 256 << 10);
    }

    @Test
    void healthyJsonPasses() throws Exception {
        Run r = check("emulated:stop-copy,state=64K", "--json");
        assertEquals(0, r.exit(), r.err());
        JsonNode j = JSON.readTree(r.out());
        assertTrue(j.get("passed").asBoolean());
        assertEquals(0, j.get("violations").size());
        assertTrue(j.get("sizes").get("precopyBytes").isNull());
    }

    @Test
    void aMissingKernelDeviceFailsTheOpenRuleNamingIt() {
        org.junit.jupiter.api.Assumptions.assumeFalse(java.nio.file.Files.exists(java.nio.file.Path.of(
                "/dev/vfio/devices/vfio97")), "the node exists here");
        Run r = check("/dev/vfio/devices/vfio97");
        assertEquals(1, r.exit(), r.err());
        assertTrue(r.out().contains("rule open violated: opening an instance of /dev/vfio/devices/vfio97 failed"),
                r.out());
        assertTrue(r.out().contains("ENOENT"), r.out());
    }

    @Test
    void badFlagsAndOptionsAreUsageErrors() {
        Run flags = check("emulated:stop-copy,fault=nonsense");
        assertEquals(2, flags.exit());
        assertTrue(flags.err().contains("unknown fault 'nonsense'"), flags.err());
        Run repeat = ferry("vfio", "check", "--device", "emulated", "--repeat", "0");
        assertEquals(2, repeat.exit());
        assertTrue(repeat.err().contains("repeat must be within 1..1000"), repeat.err());
        Run missing = ferry("vfio", "check");
        assertEquals(2, missing.exit());
        assertTrue(missing.err().contains("--device"), missing.err());
    }

    @Test
    void vfioWithoutSubcommandShowsUsage() {
        Run r = ferry("vfio");
        assertEquals(0, r.exit());
        assertTrue(r.out().contains("check"), r.out());
    }
}
