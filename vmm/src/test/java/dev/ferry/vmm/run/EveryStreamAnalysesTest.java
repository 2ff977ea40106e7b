package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.migration.analyze.DeviceState;
import dev.ferry.migration.analyze.FieldValue;
import dev.ferry.migration.analyze.SectionSummary;
import dev.ferry.migration.analyze.StreamAnalysis;
import dev.ferry.migration.analyze.StreamAnalyzer;
import dev.ferry.migration.analyze.VfioDeviceSummary;
import dev.ferry.vmm.run.LocalVmms.Vm;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static dev.ferry.vmm.run.LocalVmms.args;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Ferry reads everything it writes: each kind of stream the VMM produces — a soft guest alone, VFs
 * (pre-copy and stop-copy only), a virtio-blk disk doing I/O, a disk stopped on an I/O error with
 * requests parked, and all of them together — is saved through QMP with {@code file:} migration
 * and then read whole by {@link StreamAnalyzer}: every section ends at its footer, every device
 * state decodes, every VF's data is counted. QEMU's {@code scripts/analyze-migration.py} (found
 * through {@code FERRY_ANALYZE_MIGRATION}; skipped with the reason when absent) reads the same
 * files, except the VFIO sections, which no vmdesc can describe to it (docs/migration-engine.md):
 * there it must fail, and only past every section before the first VFIO one. Without the script
 * (or python3) only Ferry's analyzer runs and the reason is printed.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class EveryStreamAnalysesTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String DISK = "virtio-mmio@d0000000/virtio-blk";

    @TempDir
    Path dir;
    private LocalVmms vms;
    private Path mnt;

    @BeforeEach
    void setUp() {
        vms = new LocalVmms(dir);
    }

    @AfterEach
    void tearDown() throws Exception {
        vms.close();
        if (mnt != null && run(List.of("umount", mnt.toString())) != 0) {
            run(List.of("umount", "-l", mnt.toString()));
        }
    }

    private static int run(List<String> cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        p.getInputStream().readAllBytes();
        return p.waitFor(30, TimeUnit.SECONDS) ? p.exitValue() : -1;
    }

    private static String vfs() {
        return "{\"id\": \"vf0\", \"kind\": \"vf\", \"flags\": \"stop-copy,p2p,pre-copy,state=256K,dirty-rate=64K\"},"
                + "{\"id\": \"vf1\", \"kind\": \"vf\", \"flags\": \"stop-copy,p2p,state=64K\"}";
    }

    private String disk(Path image, boolean stopOnError) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(16L << 20);
        }
        return "{\"id\": \"disk0\", \"kind\": \"virtio-blk\", \"image\": \"" + image + "\""
                + (stopOnError ? ", \"werror\": \"stop\", \"rerror\": \"stop\"" : "") + "}";
    }

    /** Migrates {@code vm} to a file and returns it. */
    private Path save(Vm vm, String name) throws Exception {
        Path file = dir.resolve(name + ".qevm");
        vm.run("migrate", args("uri", "file:" + file));
        JsonNode info = vm.awaitMigrationEnd();
        assertEquals("completed", info.path("status").asText(), info.toString());
        return file;
    }

    private void awaitDiskIo(Vm vm) throws Exception {
        long deadline = System.nanoTime() + LocalVmms.WAIT.toNanos();
        while (vm.run("x-ferry-guest").path("disks").path(0).path("completed").asLong() < 50) {
            assertTrue(System.nanoTime() < deadline, "the guest's disk I/O does not progress");
            Thread.sleep(10);
        }
    }

    /** The analyzer reads the whole file; each section and device is accounted for. */
    private static StreamAnalysis analyzeWhole(Path file) throws Exception {
        StreamAnalysis a = StreamAnalyzer.analyze(file);
        assertEquals(Files.size(file), a.fileSize());
        assertTrue(a.vmdesc() != null, "Ferry writes a vmdesc");
        assertTrue(a.notes().isEmpty(), () -> "notes: " + a.notes());
        for (SectionSummary s : a.sections()) {
            assertTrue(s.fulls() == 1 || (s.starts() == 1 && s.ends() == 1), s.toString());
        }
        for (DeviceState d : a.devices()) {
            assertTrue(d.state() != null, d.idstr() + " decodes");
        }
        return a;
    }

    private static List<String> sectionNames(StreamAnalysis a) {
        return a.sections().stream().map(SectionSummary::idstr).toList();
    }

    @Test
    void aSoftGuestAlone() throws Exception {
        Path f = save(vms.source("soft"), "soft");
        StreamAnalysis a = analyzeWhole(f);
        assertTrue(sectionNames(a).containsAll(List.of("ram", "cpu-soft")), sectionNames(a).toString());
        assertTrue(a.device("cpu-soft", 0).isPresent());
        QemuScript.assertReadsWhole(f, dir);
    }

    @Test
    void vfsPrecopyAndStopCopyOnly() throws Exception {
        vms.devices = "[" + vfs() + "]";
        Vm src = vms.source("vfs");
        Thread.sleep(100); // the VFs receive and DMA
        Path f = save(src, "vfs");
        StreamAnalysis a = analyzeWhole(f);
        assertVfs(a);
        QemuScript.assertStopsAtTheFirstVfioSection(f, dir, a);
    }

    private static void assertVfs(StreamAnalysis a) {
        assertEquals(List.of("vf0/vfio", "vf1/vfio"), a.vfioDevices().stream().map(VfioDeviceSummary::idstr).toList());
        for (VfioDeviceSummary v : a.vfioDevices()) {
            assertTrue(v.dataBytes() > 0 && v.configBytes() > 0, v.toString());
            SectionSummary s = a.sections().stream().filter(x -> x.idstr().equals(v.idstr())).findFirst().orElseThrow();
            assertEquals(SectionSummary.Kind.VFIO, s.kind(), s.toString());
            assertEquals(1, s.fulls(), "the config travels as a FULL section under the live section's id: " + s);
        }
        VfioDeviceSummary vf0 = a.vfioDevices().get(0);
        assertTrue(vf0.dataBytes() >= 256 << 10, "vf0's state went out: " + vf0);
    }

    @Test
    void aVirtioBlkDiskDoingIo() throws Exception {
        vms.devices = "[" + disk(dir.resolve("disk.img"), false) + "]";
        Vm src = vms.source("disk");
        awaitDiskIo(src);
        Path f = save(src, "disk");
        StreamAnalysis a = analyzeWhole(f);
        FieldValue.Struct v = (FieldValue.Struct) a.device(DISK, 0).orElseThrow().state().get("virtio");
        assertEquals(null, v.get("note"), () -> String.valueOf(v.get("note")));
        QemuScript.assertReadsWhole(f, dir);
    }

    /** A VM stopped in io-error: its disk's state carries the parked requests (needs root for a tiny tmpfs). */
    @Test
    void aDiskStoppedOnAnIoErrorWithParkedRequests() throws Exception {
        mnt = Files.createDirectory(dir.resolve("tmpfs"));
        if (run(List.of("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt.toString())) != 0) {
            mnt = null;
            Assumptions.abort("needs root (CAP_SYS_ADMIN) to mount a small tmpfs that makes the disk's writes fail"
                    + " with ENOSPC");
        }
        vms.devices = "[" + disk(mnt.resolve("disk.img"), true) + "]";
        Vm src = vms.source("ioerror");
        long deadline = System.nanoTime() + LocalVmms.WAIT.toNanos();
        while (!src.runState().equals("io-error")) {
            assertTrue(System.nanoTime() < deadline, "the VM did not stop in io-error: " + src.runState());
            Thread.sleep(5);
        }
        Path f = save(src, "ioerror");
        StreamAnalysis a = analyzeWhole(f);
        FieldValue.Struct v = (FieldValue.Struct) a.device(DISK, 0).orElseThrow().state().get("virtio");
        assertEquals(null, v.get("note"), () -> String.valueOf(v.get("note")));
        FieldValue parked = ((FieldValue.Struct) v.get("device")).get("parked_requests");
        assertFalse(((FieldValue.Array) parked).elements().isEmpty(), "requests are parked: " + parked);
        assertTrue(a.device("globalstate", 0).isPresent(), "the io-error run state travels");
        QemuScript.assertReadsWhole(f, dir);
    }

    @Test
    void everythingTogether() throws Exception {
        vms.devices = "[" + vfs() + "," + disk(dir.resolve("disk.img"), false) + "]";
        Vm src = vms.source("all");
        awaitDiskIo(src);
        Path f = save(src, "all");
        StreamAnalysis a = analyzeWhole(f);
        assertVfs(a);
        assertTrue(a.device(DISK, 0).isPresent());
        assertTrue(a.device("cpu-soft", 0).isPresent());
        QemuScript.assertStopsAtTheFirstVfioSection(f, dir, a);
    }

    /** QEMU's analyze-migration.py, when FERRY_ANALYZE_MIGRATION points at it. */
    static final class QemuScript {
        private QemuScript() {
        }

        /**
         * The script, or null when it is not available: then only Ferry's analyzer ran, which the
         * test has checked already, and the reason is printed (an abort here would report the
         * whole test as skipped).
         */
        private static Path script() throws Exception {
            String env = System.getenv("FERRY_ANALYZE_MIGRATION");
            String missing = env == null || env.isBlank()
                    ? "FERRY_ANALYZE_MIGRATION is not set (point it at QEMU's scripts/analyze-migration.py)"
                    : !Files.isRegularFile(Path.of(env)) ? "analyze-migration.py not found at " + env
                    : run(List.of("python3", "--version")) != 0 ? "python3 is not available" : null;
            if (missing != null) {
                System.err.println("EveryStreamAnalysesTest: QEMU's reader not run: " + missing);
                return null;
            }
            return Path.of(env);
        }

        private record Result(int exit, String out) {
        }

        private static Result analyze(Path script, Path file, Path dir) throws Exception {
            Path out = Files.createTempFile(dir, "analyze", ".out");
            Process p = new ProcessBuilder(new ArrayList<>(List.of("python3", script.toString(), "-f",
                    file.toString()))).redirectErrorStream(true).redirectOutput(out.toFile()).start();
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "analyze-migration.py did not finish");
            return new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8));
        }

        static void assertReadsWhole(Path file, Path dir) throws Exception {
            Path script = script();
            if (script == null) {
                return;
            }
            Result r = analyze(script, file, dir);
            assertEquals(0, r.exit(), r::out);
            JsonNode state = JSON.readTree(r.out());
            assertTrue(state.size() > 1, r.out());
        }

        /**
         * The script keys a section's description by (idstr, instance): a VFIO device's START,
         * PART, END and FULL sections share one key and one fixed-size description, and their sizes
         * differ, so it fails there — at the VFIO START section, after reading every section before it.
         */
        static void assertStopsAtTheFirstVfioSection(Path file, Path dir, StreamAnalysis a) throws Exception {
            Path script = script();
            if (script == null) {
                return;
            }
            Result r = analyze(script, file, dir);
            assertTrue(r.exit() != 0, () -> "analyze-migration.py read the VFIO sections; docs/migration-engine.md"
                    + " says it cannot:\n" + r.out());
            SectionSummary first = a.sections().stream().filter(s -> s.kind() == SectionSummary.Kind.VFIO)
                    .findFirst().orElseThrow();
            assertTrue(r.out().contains("Traceback"), r.out());
            // every section START before the first VFIO one is RAM's; the failure is past it
            assertTrue(a.sections().stream().filter(s -> s.firstOffset() < first.firstOffset())
                    .allMatch(s -> s.kind() == SectionSummary.Kind.RAM), a.sections().toString());
        }
    }
}
