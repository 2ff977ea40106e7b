package dev.ferry.vmm.analyze;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.migration.analyze.DeviceState;
import dev.ferry.migration.analyze.FieldValue;
import dev.ferry.migration.analyze.RamBlockSummary;
import dev.ferry.migration.analyze.SectionSummary;
import dev.ferry.migration.analyze.StreamAnalysis;
import dev.ferry.migration.analyze.StreamAnalyzer;
import dev.ferry.vmm.Ferry;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The proof against the real peer: QEMU (7.2 on Debian bookworm) saves a paused TCG guest with
 * {@code migrate "exec:cat > FILE"}, and what {@code ferry analyze} reads from FILE agrees exactly
 * with QEMU's own {@code query-migrate}: RAM total, zero pages ("duplicate") and normal pages.
 * Every device section QEMU wrote must decode with its vmdesc, and a few values are the x86 reset
 * state that a guest paused before its first instruction must have.
 *
 * <p>Skipped, with the reason, when {@code qemu-system-x86_64} is not on PATH (Debian:
 * {@code apt-get install qemu-system-x86}). The guest has no kernel; {@code -S} keeps it paused,
 * so nothing dirties memory and the counts are deterministic.
 */
@Timeout(60)
class QemuStreamAnalysisTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static Path qemu;

    @TempDir
    Path dir;

    @BeforeAll
    static void findQemu() {
        for (String d : System.getenv().getOrDefault("PATH", "").split(":")) {
            Path p = Path.of(d.isEmpty() ? "." : d, "qemu-system-x86_64");
            if (Files.isExecutable(p)) {
                qemu = p;
                return;
            }
        }
    }

    /** A file QEMU saved, and the "ram" object of its final {@code query-migrate}. */
    private record Saved(Path file, JsonNode ram) {
    }

    /**
     * Starts QEMU ({@code -S} when {@code paused}), optionally limits the bandwidth, saves the VM
     * with {@code migrate "exec:..."}, waits for "completed", quits QEMU and waits for the file.
     */
    private Saved save(boolean paused, long maxBandwidth) throws Exception {
        return save(List.of("-machine", "pc"), paused, maxBandwidth);
    }

    /** As above, on the machine and devices {@code machine} gives. */
    private Saved save(List<String> machine, boolean paused, long maxBandwidth) throws Exception {
        assumeTrue(qemu != null, "qemu-system-x86_64 is not on PATH (Debian: apt-get install qemu-system-x86)");
        Path sock = dir.resolve("qmp.sock");
        Path file = dir.resolve("vm.qevm");
        Path log = dir.resolve("qemu.log");
        List<String> cmd = new ArrayList<>(List.of(qemu.toString(), "-accel", "tcg", "-m", "128",
                "-nodefaults", "-nographic", "-display", "none", "-qmp", "unix:" + sock + ",server=on,wait=off"));
        cmd.addAll(machine);
        if (paused) {
            cmd.add("-S");
        }
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
        JsonNode ram;
        try (Qmp qmp = Qmp.connect(sock, p, log)) {
            qmp.execute("qmp_capabilities", null);
            if (maxBandwidth > 0) {
                qmp.execute("migrate-set-parameters", JSON.createObjectNode().put("max-bandwidth", maxBandwidth));
            }
            // Written under another name and renamed when cat is done: QEMU reports "completed" when
            // it has handed the last byte to the pipe, not when cat has written it.
            String uri = "exec:cat > '" + file + ".part' && mv '" + file + ".part' '" + file + "'";
            qmp.execute("migrate", JSON.createObjectNode().put("uri", uri));
            JsonNode info;
            while (true) {
                info = qmp.execute("query-migrate", null);
                String status = info.path("status").asText();
                assertTrue(!status.equals("failed") && !status.equals("cancelled"), info.toString());
                if (status.equals("completed")) {
                    break;
                }
                Thread.sleep(10);
            }
            ram = info.get("ram");
            qmp.execute("quit", null);
        } finally {
            if (!p.waitFor(10, TimeUnit.SECONDS)) {
                p.destroyForcibly();
            }
        }
        for (int i = 0; i < 1000 && !Files.exists(file); i++) {
            Thread.sleep(10);
        }
        assertTrue(Files.exists(file), "the exec: child never finished writing " + file);
        return new Saved(file, ram);
    }

    private static void assertSameAsQueryMigrate(JsonNode ram, StreamAnalysis a) {
        long total = ram.get("total").asLong();
        long duplicate = ram.get("duplicate").asLong();
        long normal = ram.get("normal").asLong();
        System.out.printf("QEMU %s query-migrate: total %d, duplicate %d, normal %d, dirty-sync-count %d; ferry analyze: "
                        + "RAM %d bytes in %d blocks, zero pages %d, normal pages %d, distinct %d, RAM sections %s; "
                        + "%d device sections decoded%n",
                a.configuration().machineType(), total, duplicate, normal, ram.path("dirty-sync-count").asLong(),
                a.ramTotalBytes(), a.ramBlocks().size(), a.zeroPages(), a.normalPages(), a.distinctPages(),
                a.sections().get(0), a.devices().size());
        assertEquals(total, a.ramTotalBytes(), "RAM total");
        assertEquals(duplicate, a.zeroPages(), "zero pages = query-migrate duplicate");
        assertEquals(normal, a.normalPages(), "normal pages = query-migrate normal");
    }

    @Test
    void ferryAnalyzeAgreesWithQemusQueryMigrateAndDecodesEveryDevice() throws Exception {
        Saved saved = save(true, 0);
        Path file = saved.file();
        JsonNode ram = saved.ram();
        StreamAnalysis a = StreamAnalyzer.analyze(file);
        assertSameAsQueryMigrate(ram, a);
        long total = ram.get("total").asLong();
        long duplicate = ram.get("duplicate").asLong();
        long normal = ram.get("normal").asLong();
        assertEquals(total / 4096, a.distinctPages(), "a paused guest's pages are each sent once");
        assertEquals(128L << 20, a.ramBlocks().stream().filter(b -> b.name().equals("pc.ram"))
                .mapToLong(RamBlockSummary::length).sum());
        assertTrue(a.configuration().machineType().startsWith("pc-i440fx-"), a.configuration().toString());

        // Every device section decoded with its vmdesc entry.
        assertNotNull(a.vmdesc());
        assertEquals(a.vmdesc().deviceCount(), a.devices().size());
        for (DeviceState d : a.devices()) {
            assertNotNull(d.state(), d.idstr() + ": " + d.note());
        }
        // The x86 reset state: CS selector 0xf000 with base 0xffff0000, IP 0xfff0; the BSP's APIC enabled.
        FieldValue.Struct cpu = a.device("cpu", 0).orElseThrow().state();
        assertEquals(new FieldValue.Unsigned(0xfff0, 8), cpu.get("env.eip"));
        FieldValue.Struct cs = (FieldValue.Struct) ((FieldValue.Array) cpu.get("env.segs")).elements().get(1);
        assertEquals(new FieldValue.Unsigned(0xf000, 4), cs.get("selector"));
        assertEquals(new FieldValue.Unsigned(0xffff0000L, 8), cs.get("base"));
        assertEquals(new FieldValue.Unsigned(0xfee00900L, 4), a.device("apic", 0).orElseThrow().state().get("apicbase"));

        // And the command line says the same.
        CommandLine cl = new CommandLine(new Ferry()).setCaseInsensitiveEnumValuesAllowed(true);
        StringWriter out = new StringWriter();
        cl.setOut(new PrintWriter(out));
        assertEquals(0, cl.execute("analyze", file.toString()));
        assertTrue(out.toString().contains("RAM " + total + " bytes (128.5 MiB); zero pages " + duplicate
                + " (query-migrate \"duplicate\"); normal pages " + normal + " (query-migrate \"normal\")"), out.toString());
    }

    /**
     * A running guest (the BIOS executes and writes memory while RAM is sent) under a bandwidth
     * limit, so RAM goes out in several PART sections and re-dirtied pages are sent again: the
     * counts still agree exactly, because QEMU counts every record it sends and so does the
     * analyzer.
     */
    @Test
    void aRunningGuestSavedInSeveralPassesStillAgrees() throws Exception {
        Saved saved = save(false, 400_000);
        StreamAnalysis a = StreamAnalyzer.analyze(saved.file());
        assertSameAsQueryMigrate(saved.ram(), a);
        SectionSummary ram = a.sections().get(0);
        assertEquals("ram", ram.idstr());
        assertTrue(ram.parts() > 1, ram.toString());
        assertTrue(a.devices().stream().allMatch(d -> d.state() != null));
    }

    /**
     * QEMU's own virtio-mmio state: a microvm with a modern virtio-blk-device (virtio-mmio's
     * force-legacy off, as Ferry's transport is), saved before any guest code ran. Its "virtio"
     * field decodes whole — no note — down to the subsection header virtio-mmio's extra state
     * carries inside virtio/extra_state ({@code virtio_mmio/state}), which is the layout Ferry's
     * VirtioState must write for QEMU to load it.
     */
    @Test
    void qemusVirtioMmioBlkStateDecodesWhole() throws Exception {
        Path image = dir.resolve("disk.img");
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(16L << 20);
        }
        Saved saved = save(List.of("-machine", "microvm", "-global", "virtio-mmio.force-legacy=false",
                "-drive", "if=none,id=d0,format=raw,file=" + image, "-device", "virtio-blk-device,drive=d0"), true, 0);
        StreamAnalysis a = StreamAnalyzer.analyze(saved.file());
        DeviceState disk = a.devices().stream().filter(d -> d.idstr().matches("virtio-mmio@[0-9a-f]{16}/virtio-blk"))
                .findFirst().orElseThrow(() -> new AssertionError("no virtio-mmio virtio-blk section in "
                        + a.devices().stream().map(DeviceState::idstr).toList()));
        assertEquals("virtio-blk", disk.vmsdName());
        FieldValue.Struct v = (FieldValue.Struct) disk.state().get("virtio");
        assertEquals(null, v.get("note"), () -> String.valueOf(v.get("note")));
        assertEquals(0, ((FieldValue.Flags) v.get("status")).value(), "no guest driver ran");
        FieldValue.Struct q = (FieldValue.Struct) ((FieldValue.Array) v.get("queues")).elements().get(0);
        assertEquals(new FieldValue.Unsigned(256, 4), q.get("num"));
        assertEquals(new FieldValue.Unsigned(4096, 4), q.get("align"));
        assertEquals(new FieldValue.Array(List.of()), ((FieldValue.Struct) v.get("device")).get("parked_requests"));
        assertEquals(List.of("virtio/64bit_features", "virtio/virtqueues", "virtio/extra_state"),
                v.subsections().stream().map(FieldValue.Subsection::name).toList());
        assertNotNull(v.subsection("virtio/extra_state").state().subsection("virtio_mmio/state"));
    }

    /**
     * Just enough of a QMP client: greeting, then one command at a time, skipping events. A read
     * that never returns ends with the test's timeout, which closes the channel.
     */
    private static final class Qmp implements AutoCloseable {
        private final SocketChannel channel;
        private final BufferedReader in;
        private final OutputStream out;

        private Qmp(SocketChannel channel) {
            this.channel = channel;
            this.in = new BufferedReader(new InputStreamReader(Channels.newInputStream(channel), StandardCharsets.UTF_8));
            this.out = Channels.newOutputStream(channel);
        }

        static Qmp connect(Path sock, Process qemu, Path log) throws Exception {
            for (int i = 0; i < 500; i++) {
                if (!qemu.isAlive()) {
                    throw new AssertionError("QEMU exited with " + qemu.exitValue() + ": " + Files.readString(log));
                }
                if (Files.exists(sock)) {
                    try {
                        Qmp q = new Qmp(SocketChannel.open(UnixDomainSocketAddress.of(sock)));
                        JsonNode greeting = q.read();
                        assertTrue(greeting.has("QMP"), greeting.toString());
                        return q;
                    } catch (IOException e) {
                        // not listening yet
                    }
                }
                Thread.sleep(20);
            }
            throw new AssertionError("no QMP socket at " + sock + ": " + Files.readString(log));
        }

        JsonNode execute(String command, ObjectNode arguments) throws IOException {
            ObjectNode c = JSON.createObjectNode().put("execute", command);
            if (arguments != null) {
                c.set("arguments", arguments);
            }
            out.write((JSON.writeValueAsString(c) + "\n").getBytes(StandardCharsets.UTF_8));
            out.flush();
            while (true) {
                JsonNode m = read();
                if (m.has("return")) {
                    return m.get("return");
                }
                if (m.has("error")) {
                    throw new AssertionError(command + ": " + m.get("error"));
                }
            }
        }

        private JsonNode read() throws IOException {
            String line = in.readLine();
            if (line == null) {
                throw new IOException("QMP connection closed");
            }
            return JSON.readTree(line);
        }

        @Override
        public void close() throws IOException {
            channel.close();
        }
    }
}
