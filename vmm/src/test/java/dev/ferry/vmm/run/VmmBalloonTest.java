package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.vmm.qmp.QmpError;
import dev.ferry.vmm.qmp.QmpEvent;
import dev.ferry.vmm.run.LocalVmms.Vm;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static dev.ferry.vmm.run.LocalVmms.args;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A VM with a virtio-balloon in the VMM, driven through QMP like QEMU: {@code balloon} makes the
 * soft guest's driver inflate, {@code BALLOON_CHANGE} and {@code query-balloon} report the guest's
 * memory, the inflated pages are holes in the host's memory, guest stats come through
 * {@code qom-get}, and after a migration the destination holds the same balloon with the same holes,
 * while free page hints kept the freed region off the wire.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class VmmBalloonTest {
    private static final long RAM = 32L << 20;
    private static final long TARGET = RAM - (4L << 20);

    @TempDir
    Path dir;
    private LocalVmms vms;

    @BeforeEach
    void setUp() {
        vms = new LocalVmms(dir);
        vms.devices = "[{\"id\": \"balloon0\", \"kind\": \"virtio-balloon\"}]";
    }

    @AfterEach
    void tearDown() {
        vms.close();
    }

    private static void awaitActual(Vm vm, long bytes) throws Exception {
        long deadline = System.nanoTime() + LocalVmms.WAIT.toNanos();
        while (vm.run("query-balloon").path("actual").asLong() != bytes) {
            assertTrue(System.nanoTime() < deadline, vm.name() + ": actual stays " + vm.run("query-balloon"));
            Thread.sleep(10);
        }
    }

    @Test
    void theBalloonInflatesMigratesAndKeepsItsHoles() throws Exception {
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        String uri = dst.listen("tcp:127.0.0.1:0");
        assertEquals(RAM, src.run("query-balloon").path("actual").asLong());

        long deadline = System.nanoTime() + LocalVmms.WAIT.toNanos();
        while (!src.run("x-ferry-guest").path("balloon").path("free-region-written").asBoolean()) {
            assertTrue(System.nanoTime() < deadline, "the guest did not write its free region");
            Thread.sleep(10);
        }
        long allocatedBefore = src.run("x-ferry-guest").path("balloon").path("host-allocated-bytes").asLong();
        src.run("balloon", args("value", TARGET));
        QmpEvent change = src.awaitEvent("BALLOON_CHANGE");
        assertTrue(change.data().path("actual").asLong() < RAM, change.toString());
        awaitActual(src, TARGET);
        JsonNode v = src.run("x-ferry-verify").path("balloon");
        assertTrue(v.path("ok").asBoolean(), v.toString());
        assertEquals(1024, v.path("given-pages").asLong(), v.toString());
        assertEquals(1024, v.path("given-pages-discarded").asLong(), v.toString());
        long allocatedAfter = src.run("x-ferry-guest").path("balloon").path("host-allocated-bytes").asLong();
        assertTrue(allocatedAfter <= allocatedBefore - (4L << 20),
                "the host got the 4 MiB back: " + allocatedBefore + " -> " + allocatedAfter);

        src.run("qom-set", args("path", "/machine/peripheral/balloon0", "property", "guest-stats-polling-interval",
                "value", 1));
        assertEquals(1, src.run("qom-get", args("path", "/machine/peripheral/balloon0",
                "property", "guest-stats-polling-interval")).asInt());
        deadline = System.nanoTime() + LocalVmms.WAIT.toNanos();
        JsonNode stats;
        do {
            stats = src.run("qom-get", args("path", "/machine/peripheral/balloon0", "property", "guest-stats"));
            assertTrue(System.nanoTime() < deadline, "no guest stats: " + stats);
            Thread.sleep(20);
        } while (stats.path("last-update").asLong() == 0);
        assertTrue(stats.path("stats").path("stat-total-memory").asLong() > 0, stats.toString());

        // Hints race the first RAM pass, in QEMU too: a hint that comes after the pass sent its pages
        // clears nothing. A link slower than the guest's answer (8 MiB/s: over 1 s for this
        // guest) keeps the race won on a loaded host, where the loopback pass can end before the
        // guest's vCPU thread runs.
        src.run("migrate-set-parameters", args("max-bandwidth", 8L << 20));
        src.run("migrate", args("uri", uri));
        JsonNode info = src.awaitMigrationEnd();
        assertEquals("completed", info.path("status").asText(), info.toString());
        assertEquals("completed", dst.awaitMigrationEnd().path("status").asText());
        assertEquals(TARGET, dst.run("query-balloon").path("actual").asLong(), "the balloon's size migrated");
        JsonNode dv = dst.run("x-ferry-verify").path("balloon");
        assertTrue(dv.path("ok").asBoolean(), dv.toString());
        assertEquals(1024, dv.path("given-pages-discarded").asLong(), "the destination's balloon pages are holes: " + dv);
        assertEquals(1024, dv.path("given-pages-at-load").asLong(), dv.toString());
        JsonNode sb = src.run("x-ferry-guest").path("balloon");
        assertTrue(sb.path("hinted-pages").asLong() > 0, "free page hints reached the migration: " + sb);
        assertTrue(info.path("ram").path("transferred").asLong() < RAM - (4L << 20),
                "the hinted free region and the balloon did not travel as data: " + info.path("ram"));
    }

    @Test
    void withoutABalloonTheCommandsFailAsQemus() throws Exception {
        vms.devices = "[]";
        Vm src = vms.source("src");
        QmpError e = src.refused("query-balloon", null);
        assertEquals("DeviceNotActive", e.errorClass());
        assertEquals("No balloon device has been activated", e.desc());
        e = src.refused("balloon", args("value", 1 << 20));
        assertEquals("DeviceNotActive", e.errorClass());
        e = src.refused("qom-get", args("path", "/machine/peripheral/balloon0", "property", "guest-stats"));
        assertEquals("DeviceNotFound", e.errorClass());
    }

    @Test
    void aTargetOfZeroIsRefused() throws Exception {
        Vm src = vms.source("src");
        src.assertRefused("balloon", args("value", 0), "Parameter 'target' expects a size");
    }
}
