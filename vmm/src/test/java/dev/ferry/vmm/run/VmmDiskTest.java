package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.vmm.config.ConfigException;
import dev.ferry.vmm.run.LocalVmms.Vm;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static dev.ferry.vmm.run.LocalVmms.args;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A VM with a virtio-blk disk in the VMM, driven through QMP like QEMU: the soft guest's disk driver
 * does verified I/O, the VM migrates between two VMMs sharing the image, and on the destination the
 * image holds every acknowledged write and the guest's I/O continues. Config errors name the path.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class VmmDiskTest {
    @TempDir
    Path dir;
    private LocalVmms vms;
    private Path image;

    @BeforeEach
    void setUp() throws Exception {
        vms = new LocalVmms(dir);
        image = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(16L << 20);
        }
        vms.devices = "[{\"id\": \"disk0\", \"kind\": \"virtio-blk\", \"image\": \"" + image + "\"}]";
    }

    @AfterEach
    void tearDown() {
        vms.close();
    }

    private static JsonNode disk(JsonNode verify) {
        return verify.path("disks").path(0);
    }

    @Test
    void aGuestDoingDiskIoMigratesAndItsImageVerifies() throws Exception {
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        String uri = dst.listen("tcp:127.0.0.1:0");
        long deadline = System.nanoTime() + LocalVmms.WAIT.toNanos();
        while (src.run("x-ferry-guest").path("disks").path(0).path("completed").asLong() < 500) {
            assertTrue(System.nanoTime() < deadline, "the guest's disk I/O does not progress");
            Thread.sleep(10);
        }
        JsonNode devices = src.run("x-ferry-devices").path("devices");
        assertEquals("disk0", devices.path(0).path("id").asText());
        assertEquals("virtio-blk", devices.path(0).path("kind").asText());
        assertEquals(15, devices.path(0).path("status").asInt(), "ACK|DRIVER|FEATURES_OK|DRIVER_OK");

        src.run("migrate", args("uri", uri));
        JsonNode info = src.awaitMigrationEnd();
        assertEquals("completed", info.path("status").asText(), info.toString());
        boolean section = false;
        for (JsonNode d : info.path("x-ferry-devices")) {
            section |= d.path("id").asText().equals("virtio-mmio@d0000000/virtio-blk");
        }
        assertTrue(section, "query-migrate lists the disk's section: " + info);
        assertEquals("completed", dst.awaitMigrationEnd().path("status").asText());
        assertEquals("running", dst.runState());

        long at = disk(dst.run("x-ferry-guest")).path("completed").asLong();
        while (disk(dst.run("x-ferry-guest")).path("completed").asLong() < at + 500) {
            assertTrue(System.nanoTime() < deadline, "the guest's disk I/O does not continue on the destination");
            Thread.sleep(10);
        }
        JsonNode v = disk(dst.run("x-ferry-verify"));
        assertTrue(v.path("ok").asBoolean(), v.toString());
        assertTrue(v.path("continuation").path("ok").asBoolean(), v.toString());
        assertTrue(v.path("writes-acked").asLong() > 0, v.toString());
        JsonNode blk = dst.run("x-ferry-devices").path("devices").path(0).path("virtio-blk");
        assertTrue(blk.path("active").asBoolean(), "the destination took the image over: " + blk);
    }

    /**
     * QMP block_resize grows the disk under the running guest: the image file grows, the config
     * space shows the capacity with a new generation, and the grown guest migrates to a
     * destination that opened the image before it grew (it takes the new size from the shared
     * file). Shrinking, sizes that are not whole sectors and unknown devices are refused.
     */
    @Test
    void blockResizeGrowsTheDiskUnderTheRunningGuestAndTheGrownGuestMigrates() throws Exception {
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        String uri = dst.listen("tcp:127.0.0.1:0");
        long deadline = System.nanoTime() + LocalVmms.WAIT.toNanos();
        while (disk(src.run("x-ferry-guest")).path("completed").asLong() < 200) {
            assertTrue(System.nanoTime() < deadline, "the guest's disk I/O does not progress");
            Thread.sleep(10);
        }
        JsonNode before = src.run("x-ferry-devices").path("devices").path(0);
        assertEquals(16L << 20, before.path("virtio-blk").path("capacity").asLong(), before.toString());

        src.run("block_resize", args("device", "disk0", "size", 24L << 20));
        assertEquals(24L << 20, java.nio.file.Files.size(image), "the image file grew");
        JsonNode after = src.run("x-ferry-devices").path("devices").path(0);
        assertEquals(24L << 20, after.path("virtio-blk").path("capacity").asLong(), after.toString());
        assertTrue(after.path("config-generation").asInt() > before.path("config-generation").asInt(),
                "the driver is told with a new config generation: " + after);

        dev.ferry.vmm.qmp.QmpError e = src.refused("block_resize", args("device", "disk0", "size", 8L << 20));
        assertTrue(e.getMessage().contains("only growing"), e.toString());
        e = src.refused("block_resize", args("device", "disk0", "size", (32L << 20) + 100));
        assertTrue(e.getMessage().contains("sectors"), e.toString());
        e = src.refused("block_resize", args("device", "disk9", "size", 32L << 20));
        assertEquals("DeviceNotFound", e.errorClass(), e.toString());
        assertEquals(24L << 20, java.nio.file.Files.size(image), "a refused resize changed nothing");

        src.run("migrate", args("uri", uri));
        JsonNode info = src.awaitMigrationEnd();
        assertEquals("completed", info.path("status").asText(), info.toString());
        assertEquals("completed", dst.awaitMigrationEnd().path("status").asText());
        JsonNode there = dst.run("x-ferry-devices").path("devices").path(0);
        assertEquals(24L << 20, there.path("virtio-blk").path("capacity").asLong(), there.toString());
        long at = disk(dst.run("x-ferry-guest")).path("completed").asLong();
        while (disk(dst.run("x-ferry-guest")).path("completed").asLong() < at + 200) {
            assertTrue(System.nanoTime() < deadline, "the guest's disk I/O does not continue on the destination");
            Thread.sleep(10);
        }
        JsonNode v = disk(dst.run("x-ferry-verify"));
        assertTrue(v.path("ok").asBoolean(), v.toString());
    }

    @Test
    void aMissingImageIsAConfigErrorNamingThePath() {
        Path missing = dir.resolve("nope.img");
        vms.devices = "[{\"id\": \"disk0\", \"kind\": \"virtio-blk\", \"image\": \"" + missing + "\"}]";
        Exception e = assertThrows(Exception.class, () -> vms.source("src"));
        assertTrue(e.getMessage().contains(missing.toString()) && e.getMessage().contains("devices[0].image"),
                e.getMessage());
    }

    @Test
    void diskOptionsAreCheckedWithTheirPath() {
        ConfigException e = assertThrows(ConfigException.class, () -> LocalVmms.config("vm", 0,
                "[{\"id\": \"disk0\", \"kind\": \"virtio-blk\", \"image\": \"x.img\", \"queue-size\": 100}]"));
        assertTrue(e.getMessage().contains("devices[0].queue-size: must be a power of two"), e.getMessage());
        e = assertThrows(ConfigException.class, () -> LocalVmms.config("vm", 0,
                "[{\"id\": \"disk0\", \"kind\": \"virtio-blk\", \"image\": \"x.img\", \"werror\": \"ignore\"}]"));
        assertTrue(e.getMessage().contains("devices[0].werror: 'ignore' is not one of report, stop"), e.getMessage());
        e = assertThrows(ConfigException.class, () -> LocalVmms.config("vm", 0,
                "[{\"id\": \"disk0\", \"kind\": \"virtio-blk\", \"imag\": \"x.img\"}]"));
        assertTrue(e.getMessage().contains("devices[0].imag: unknown field"), e.getMessage());
        e = assertThrows(ConfigException.class, () -> LocalVmms.config("vm", 0,
                "[{\"id\": \"disk0\", \"kind\": \"virtio-scsi\"}]"));
        assertTrue(e.getMessage().contains("'virtio-scsi' is not a device kind this build supports"), e.getMessage());
    }
}
