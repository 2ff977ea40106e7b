package dev.ferry.vmm.run;

import dev.ferry.vmm.config.VmConfig;
import dev.ferry.vmm.config.VmConfigParser;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The warm-up migrations a {@code ferry run} makes before QMP opens really migrate (a failed one
 * returns -1), and leave nothing behind: no fd, no thread, no socket file; the VMM then boots its
 * own guest as usual.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class MigrationWarmUpTest {
    @TempDir
    Path dir;

    private static long fds() throws Exception {
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }

    @Test
    void warmsUpAndLeavesNothingBehind() throws Exception {
        VmConfig cfg = VmConfigParser.parse("{\"name\": \"w\", \"memory\": {\"size\": \"32M\"}, \"engine\": \"soft\","
                + " \"workload\": {\"dirty-rate\": \"4M\", \"working-set\": \"8M\"}}", "vm.json");
        Vmm vmm = new Vmm(cfg, false, false, false, (name, data) -> { });
        try {
            assertTrue(vmm.warmUpMigration() >= 0, "the first warm-up migrated"); // creates what stays: JIT, pools
            long fds = fds();
            int threads = Thread.activeCount();
            MigrationWarmUp.Result r = vmm.warmUp();
            // three migrations of a 24 MiB working set each: every page of it sent and loaded
            long workingSetPages = MigrationWarmUp.RAM / 4 * 3 / 4096;
            assertTrue(r != null && r.pagesSent() >= MigrationWarmUp.ROUNDS * workingSetPages,
                    "the warm-up migrations sent their working sets: " + r);
            assertTrue(r.pagesLoaded() >= MigrationWarmUp.ROUNDS * workingSetPages, "and the destinations loaded them: " + r);
            assertEquals(fds, fds(), "no fd left behind");
            long deadline = System.nanoTime() + 5_000_000_000L; // migration threads end just after their await returns
            while (Thread.activeCount() > threads && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            assertTrue(Thread.activeCount() <= threads, "no thread left behind: " + Thread.activeCount() + " > " + threads);
            vmm.boot();
            assertTrue(vmm.machine().isRunning(), "the VMM's own guest runs after it");
        } finally {
            vmm.close();
        }
    }

    @Test
    void ferryRunWarmsUpBeforeQmpOpensUnlessAskedNotTo() throws Exception {
        VmConfig cfg = VmConfigParser.parse("{\"name\": \"w\", \"memory\": {\"size\": \"32M\"}, \"engine\": \"soft\"}", "vm.json");
        try (VmmInstance vm = VmmInstance.start(cfg, dir.resolve("a.qmp"), null, false, false, true)) {
            assertTrue(Files.exists(dir.resolve("a.qmp")));
        }
        try (Stream<Path> tmp = Files.list(Path.of(System.getProperty("java.io.tmpdir")))) {
            assertTrue(tmp.noneMatch(p -> p.getFileName().toString().startsWith("ferry-warm-up")
                            && Files.isDirectory(p) && isEmptyOrSocketOnly(p)),
                    "the warm-up's socket directory was removed");
        }
    }

    private static boolean isEmptyOrSocketOnly(Path p) {
        try (Stream<Path> s = Files.list(p)) {
            return s.allMatch(f -> f.toString().endsWith(".sock"));
        } catch (Exception e) {
            return false;
        }
    }
}
