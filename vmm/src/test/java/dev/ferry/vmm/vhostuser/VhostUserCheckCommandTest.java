package dev.ferry.vmm.vhostuser;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.vmm.Ferry;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.RandomAccessFile;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code ferry vhost-user check} through the real command line, in-process, against qemu-storage-daemon. */
@Timeout(60)
class VhostUserCheckCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

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

    /** Runs the check on a fresh qemu-storage-daemon (skipped when it is not installed). */
    private Run checkQsd(String... more) throws Exception {
        boolean installed = false;
        for (String d : System.getenv().getOrDefault("PATH", "").split(":")) {
            installed |= !d.isEmpty() && Files.isExecutable(Path.of(d, "qemu-storage-daemon"));
        }
        Assumptions.assumeTrue(installed, "qemu-storage-daemon not installed: apt-get install qemu-system-common");
        Path image = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(16L << 20);
        }
        Path socket = dir.resolve("vub.sock");
        Process qsd = new ProcessBuilder("qemu-storage-daemon", "--blockdev", "driver=file,node-name=f0,filename=" + image,
                "--export", "type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path=" + socket
                + ",writable=on,num-queues=1").redirectErrorStream(true).redirectOutput(dir.resolve("qsd.log").toFile())
                .start();
        try {
            for (int i = 0; i < 500 && !Files.exists(socket); i++) {
                Thread.sleep(20);
            }
            List<String> args = new ArrayList<>(List.of("vhost-user", "check", "--socket", socket.toString(), "--type", "blk"));
            args.addAll(List.of(more));
            return ferry(args.toArray(new String[0]));
        } finally {
            qsd.destroy();
            if (!qsd.waitFor(5, TimeUnit.SECONDS)) {
                qsd.destroyForcibly().waitFor();
            }
        }
    }

    @Test
    void qsdFailsTheDisableRuleNamingItAndItsPages() throws Exception {
        // a long watch: the finding must not depend on load; drain left out: its finding on qsd is a race
        Run r = checkQsd("--skip", "malformed,drain", "--quiet", "1000");
        assertEquals(1, r.exit(), r.out() + r.err());
        String out = r.out();
        assertTrue(out.startsWith("ferry vhost-user check: " + dir.resolve("vub.sock") + " (blk)\n"), out);
        assertTrue(out.lines().anyMatch(l -> l.matches("dirty-log\\s+pass\\s+3\\s+every guest page .*")), out);
        assertTrue(out.lines().anyMatch(l -> l.matches("disable\\s+FAIL\\s+2\\s+.*")), out);
        assertTrue(out.lines().anyMatch(l -> l.startsWith("rule disable violated: ring 0 disabled: a request kicked then"
                + " changed") && l.contains("(used ring q0)")), out);
        assertTrue(out.lines().anyMatch(l -> l.matches("malformed\\s+skipped\\s+0\\s+.*")), out);
        assertTrue(out.lines().anyMatch(l -> l.matches("drain\\s+skipped\\s+0\\s+.*")), out);
        assertTrue(out.contains("logged traffic: 64 requests, 262,144 bytes; pages written "), out);
        assertTrue(out.lines().reduce((a, b) -> b).orElseThrow().startsWith("result: FAIL (1 rule violated: disable; 7 held,"
                + " 2 skipped) in "), out);
    }

    @Test
    void jsonIsOneObjectAndPassesWithoutTheIntrusiveRules() throws Exception {
        Run r = checkQsd("--skip", "disable,malformed,drain", "--json");
        assertEquals(0, r.exit(), r.out() + r.err());
        JsonNode j = JSON.readTree(r.out());
        assertTrue(j.get("passed").asBoolean());
        assertEquals("blk", j.get("type").asText());
        assertTrue(j.get("aborted").isNull());
        assertEquals(10, j.get("rules").size());
        for (JsonNode rule : j.get("rules")) {
            String id = rule.get("id").asText();
            boolean skipped = id.equals("disable") || id.equals("malformed") || id.equals("drain");
            assertEquals(skipped ? "SKIPPED" : "PASS", rule.get("status").asText(),
                    rule.toString());
        }
        assertEquals(0, j.get("violations").size());
        assertEquals(64, j.get("traffic").get("requests").asInt());
        assertEquals(0, j.get("traffic").get("pagesMissing").asInt());
        assertEquals(j.get("traffic").get("pagesWritten").asInt(), j.get("traffic").get("pagesLogged").asInt());
    }

    @Test
    void badArgumentsExitWithTwo() {
        Run skip = ferry("vhost-user", "check", "--socket", dir.resolve("none.sock").toString(), "--type", "blk",
                "--skip", "dirty-log");
        assertEquals(2, skip.exit());
        assertTrue(skip.err().contains("rule 'dirty-log' cannot be skipped; only disable, drain and malformed can"),
                skip.err());
        Run type = ferry("vhost-user", "check", "--socket", dir.resolve("none.sock").toString(), "--type", "scsi");
        assertEquals(2, type.exit());
        assertTrue(type.err().contains("type 'scsi': blk or net"), type.err());
    }

    @Test
    void noBackendIsAFailureNamingTheSocket() {
        Run r = ferry("vhost-user", "check", "--socket", dir.resolve("none.sock").toString(), "--type", "net");
        assertEquals(1, r.exit());
        assertFalse(r.out().contains("result: PASS"), r.out());
        assertTrue(r.out().contains("stopped: back-end: cannot connect to " + dir.resolve("none.sock")), r.out());
    }
}
