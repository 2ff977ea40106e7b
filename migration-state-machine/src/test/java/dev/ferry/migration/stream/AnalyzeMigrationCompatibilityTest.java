package dev.ferry.migration.stream;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.core.testing.ByteArraySaveStream;
import dev.ferry.migration.analyze.FieldValue;
import dev.ferry.migration.analyze.StreamAnalyzer;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.StreamBytes;
import dev.ferry.migration.testing.TestDevice;
import dev.ferry.migration.testing.TestVm;
import dev.ferry.migration.testing.VirtioBlob;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * QEMU's own stream reader, {@code scripts/analyze-migration.py}, reads a stream Ferry wrote to a
 * file. The script is the authority on the format: when it disagrees, Ferry's writer is wrong.
 *
 * <p>The script is found through the environment variable {@code FERRY_ANALYZE_MIGRATION} (the
 * path of {@code scripts/analyze-migration.py} in a QEMU source tree, e.g. from
 * {@code apt-get source qemu}); it is never copied into this repository (it is QEMU's, under the
 * LGPL). Without it, or without {@code python3}, the test is skipped with the reason.
 */
@Timeout(60)
class AnalyzeMigrationCompatibilityTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static Path script;

    @TempDir
    Path dir;

    /** Why the tests skip, or null when the script and python3 are there. */
    private static String missing;

    @BeforeAll
    static void findScriptAndPython() throws Exception {
        String env = System.getenv("FERRY_ANALYZE_MIGRATION");
        if (env == null || env.isBlank()) {
            missing = "FERRY_ANALYZE_MIGRATION is not set (point it at QEMU's scripts/analyze-migration.py)";
            return;
        }
        Path p = Path.of(env);
        Result py = run(List.of("python3", "--version"), Path.of("."));
        if (!Files.isRegularFile(p)) {
            missing = "analyze-migration.py not found at " + p
                    + " (set FERRY_ANALYZE_MIGRATION to QEMU's scripts/analyze-migration.py)";
        } else if (py == null || py.exit != 0) {
            missing = "python3 is not available to run " + p;
        } else {
            script = p;
        }
    }

    @BeforeEach
    void requireScript() {
        assumeTrue(missing == null, missing); // reported per test, with the reason
    }

    private record Result(int exit, String out, String err) {
    }

    private static Result run(List<String> cmd, Path cwd) throws InterruptedException {
        try {
            Path out = Files.createTempFile("analyze", ".out");
            Path err = Files.createTempFile("analyze", ".err");
            try {
                Process p = new ProcessBuilder(cmd).directory(cwd.toFile()).redirectOutput(out.toFile())
                        .redirectError(err.toFile()).start();
                if (!p.waitFor(30, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    throw new AssertionError(String.join(" ", cmd) + " did not finish within 30 s");
                }
                return new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
                        Files.readString(err, StandardCharsets.UTF_8));
            } finally {
                Files.deleteIfExists(out);
                Files.deleteIfExists(err);
            }
        } catch (IOException e) {
            return null;
        }
    }

    private Result analyze(Path file, String... extra) throws InterruptedException {
        Result r = analyzeMayFail(file, extra);
        assertEquals(0, r.exit, () -> "analyze-migration.py " + String.join(" ", extra) + " failed:\n" + r.err + r.out);
        return r;
    }

    private Result analyzeMayFail(Path file, String... extra) throws InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("python3", script.toString(), "-f", file.toString()));
        cmd.addAll(List.of(extra));
        Result r = run(cmd, dir);
        assertTrue(r != null, "could not start " + cmd);
        return r;
    }

    /**
     * A VM with two RAM blocks (so the MEM_SIZE record lists two, and pages switch blocks), some
     * random and some zero pages, and the test device with its subsection.
     */
    private Path saveSmallVm() throws Exception {
        byte[] stream;
        try (TestVm vm = TestVm.builder("src").region("pc.ram", 0, 64 << 10).region("pc.bios", 0xfffe0000L, 8 << 10)
                .running().device(TestDevice.sample()).build()) {
            vm.randomizePages(42, 0.5);
            stream = InMemoryMigration.save(vm.machine());
        }
        Path f = dir.resolve("ferry.qevm");
        Files.write(f, stream);
        return f;
    }

    @Test
    void stateDumpNamesTheRamSectionAndTheDeviceWithItsFieldValues() throws Exception {
        Path f = saveSmallVm();
        Result r = analyze(f); // -d state is the default
        JsonNode state = JSON.readTree(r.out);

        JsonNode ram = state.get("ram (1)");
        assertTrue(ram != null, "no \"ram (1)\" section in\n" + r.out);
        assertEquals("0x0000000000010000", ram.get("section sizes").get("pc.ram").asText(), r.out);
        assertEquals("0x0000000000002000", ram.get("section sizes").get("pc.bios").asText(), r.out);

        JsonNode dev = state.get("test-dev (0)");
        assertTrue(dev != null, "no \"test-dev (0)\" section in\n" + r.out);
        assertEquals("0x12345678", dev.get("id").asText());
        assertEquals("0x0123456789abcdef", dev.get("counter").asText());
        assertEquals("52 54 00 12 34 56", dev.get("mac").asText());
        assertTrue(dev.get("enabled").isBoolean() && dev.get("enabled").booleanValue(), r.out);
        assertEquals("0xbeef", dev.get("test-dev/extra").get("extra").asText());
        assertEquals(3, state.size(), "ram, test-dev and QEMU's globalstate:\n" + r.out);
    }

    @Test
    void descDumpIsTheVmdescWithPageSizeAndTheDevice() throws Exception {
        Path f = saveSmallVm();
        Result r = analyze(f, "-d", "desc");
        JsonNode desc = JSON.readTree(r.out);
        assertEquals(4096, desc.get("page_size").asInt());
        JsonNode dev = desc.get("devices").get(0);
        assertEquals("test-dev", dev.get("name").asText());
        assertEquals(0, dev.get("instance_id").asInt());
        assertEquals("test-dev", dev.get("vmsd_name").asText());
        assertEquals(List.of("id", "counter", "mac", "enabled"),
                dev.get("fields").findValuesAsText("name"));
        assertEquals("test-dev/extra", dev.get("subsections").get(0).get("vmsd_name").asText());
        List<String> devices = new ArrayList<>();
        desc.get("devices").forEach(d -> devices.add(d.get("name").asText()));
        assertEquals(List.of("test-dev", "globalstate"), devices, "the device and QEMU's globalstate");
    }

    /** A vmdesc JSON of exactly {@code n} bytes, one '{' only, no NUL. */
    private static byte[] vmdescOfLength(int n) {
        StringBuilder sb = new StringBuilder("{\"page_size\": 4096, \"devices\": [], \"pad\": \"");
        while (sb.length() < n - 2) {
            sb.append('x');
        }
        return sb.append("\"}").toString().getBytes(StandardCharsets.US_ASCII);
    }

    @Test
    void theAnalyzerFindsAVmdescWhoseLengthByteWouldBeABrace() throws Exception {
        ByteArraySaveStream out = new ByteArraySaveStream();
        SectionWriter w = new SectionWriter(out);
        w.fileHeader();
        w.eof();
        w.vmdesc(vmdescOfLength(0x7b));
        Path f = dir.resolve("brace.qevm");
        Files.write(f, out.toByteArray());
        assertEquals(4096, JSON.readTree(analyze(f, "-d", "desc").out).get("page_size").asInt());
        assertEquals(0, JSON.readTree(analyze(f).out).size(), "no sections");

        // The same stream without the padding is what the rule prevents: the analyzer takes the
        // length byte 0x7b for the JSON's '{' and gives up.
        Path bad = dir.resolve("unpadded.qevm");
        Files.write(bad, new StreamBytes().header().eof().u8(0x06).be32(0x7b).bytes(vmdescOfLength(0x7b))
                .toByteArray());
        Result r = analyzeMayFail(bad, "-d", "desc");
        assertTrue(r.exit != 0 && r.err.contains("No Debug Migration device found"), r.err + r.out);
    }

    /**
     * A section like a virtio-mmio device's: one field "virtio" of type "virtio" whose vmdesc size
     * is the bytes written (here {@link VirtioBlob}'s hand-built virtio-blk state). The script has
     * no reader for that type: it falls back to its generic field reader, which reads exactly
     * {@code size} bytes and prints them as space-separated hex. So the script can only get past
     * the section, to the footer, the next sections and the end, if the size Ferry wrote is right;
     * Ferry's own analyzer decodes the same bytes into named values.
     */
    @Test
    void aVirtioFieldIsReadAsItsSizeInRawBytesAndFerryDecodesIt() throws Exception {
        byte[] blob = VirtioBlob.build();
        byte[] stream;
        try (TestVm vm = TestVm.builder("src").ram(16 << 10).running().device(TestDevice.sample()).build()) {
            vm.machine().migration().registerVmState(VirtioBlob.IDSTR, 0, VirtioBlob.VMSD, blob.clone(),
                    MigrationPriority.DEVICE);
            stream = InMemoryMigration.save(vm.machine());
        }
        Path f = dir.resolve("virtio.qevm");
        Files.write(f, stream);

        JsonNode state = JSON.readTree(analyze(f).out);
        JsonNode virtio = null;
        for (var e : (Iterable<java.util.Map.Entry<String, JsonNode>>) state::fields) {
            if (e.getKey().startsWith(VirtioBlob.IDSTR + " (")) {
                virtio = e.getValue().get("virtio");
            }
        }
        assertTrue(virtio != null, "no " + VirtioBlob.IDSTR + " section in the script's dump: " + state.fieldNames());
        assertEquals(HexFormat.ofDelimiter(" ").formatHex(blob), virtio.asText());
        assertEquals("0x12345678", state.get("test-dev (0)").get("id").asText(), "and the next section still parses");

        FieldValue.Struct decoded = (FieldValue.Struct) StreamAnalyzer.analyze(f).device(VirtioBlob.IDSTR, 0)
                .orElseThrow().state().get("virtio");
        assertEquals(null, decoded.get("note"), () -> decoded.get("note").toString());
        assertEquals(15, ((FieldValue.Flags) decoded.get("status")).value());
    }

    @Test
    void aDeviceWhoseSubsectionIsNotNeededStillParses() throws Exception {
        byte[] stream;
        TestDevice dev = TestDevice.sample().extra(0);
        try (TestVm vm = TestVm.builder("src").ram(16 << 10).running().device(dev).build()) {
            stream = InMemoryMigration.save(vm.machine());
        }
        Path f = dir.resolve("no-subsection.qevm");
        Files.write(f, stream);
        JsonNode state = JSON.readTree(analyze(f).out);
        JsonNode d = state.get("test-dev (0)");
        assertEquals("0x12345678", d.get("id").asText());
        assertTrue(d.get("test-dev/extra") == null, state.toString());
    }
}
