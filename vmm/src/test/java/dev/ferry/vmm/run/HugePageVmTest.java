package dev.ferry.vmm.run;

import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.memory.HugePages;
import dev.ferry.vmm.config.VmConfig;
import dev.ferry.vmm.config.VmConfigParser;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@code "memory": {"hugetlb": true}}: the VM's RAM comes from the host's 2 MiB huge page pool, and
 * a pool too small for it stops {@code ferry run} before anything starts, with one line that says
 * how many pages it needs and how many there are.
 */
class HugePageVmTest {
    @TempDir
    Path tmp;

    @Test
    void aShortPoolIsOneClearLineAndExitOne() throws Exception {
        long pages = Math.max(0, HugePages.available()) + 1;
        Path cfg = tmp.resolve("vm.json");
        Files.writeString(cfg, "{\"name\": \"h\", \"memory\": {\"size\": " + pages * HugePages.SIZE
                + ", \"hugetlb\": true}, \"engine\": \"soft\"}");
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream saved = System.err;
        int code;
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        try {
            code = new CommandLine(new RunCommand()).execute("--config", cfg.toString(), "--qmp", tmp.resolve("q").toString());
        } finally {
            System.setErr(saved);
        }
        String text = err.toString(StandardCharsets.UTF_8).trim();
        assertEquals(1, code, text);
        assertTrue(text.startsWith("ferry run: pc.ram: " + pages + " huge pages of 2 MiB needed"), text);
        assertFalse(text.contains("\tat "), "no stack trace: " + text);
        assertFalse(Files.exists(tmp.resolve("q")), "no QMP socket was left behind");
    }

    @Test
    void aHugePageVmRunsItsGuestOnPoolPages() throws Exception {
        long available = HugePages.available();
        assumeTrue(available >= 16, "the host's 2 MiB huge page pool has " + available
                + " pages available, this VM needs 16 (sysctl vm.nr_hugepages; .ci/run reserves them)");
        VmConfig cfg = VmConfigParser.parse("{\"name\": \"h\", \"memory\": {\"size\": \"32M\", \"hugetlb\": true},"
                + " \"engine\": \"soft\", \"workload\": {\"dirty-rate\": \"8M\", \"working-set\": \"8M\"}}", "vm.json");
        try (VmmInstance vm = VmmInstance.start(cfg, tmp.resolve("q"), null, false, false)) {
            GuestRegion ram = vm.vmm().machine().memory().regions().get(0);
            assertTrue(ram.hugetlb());
            assertEquals(available - 16, HugePages.available(), "its 16 pages are reserved from the pool");
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (ram.allocatedBytes() == 0 && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            assertTrue(ram.allocatedBytes() > 0 && ram.allocatedBytes() % HugePages.SIZE == 0,
                    "the running guest's writes allocated whole huge pages: " + ram.allocatedBytes());
        }
        assertEquals(available, HugePages.available(), "closing the VM gave the pool its pages back");
    }
}
