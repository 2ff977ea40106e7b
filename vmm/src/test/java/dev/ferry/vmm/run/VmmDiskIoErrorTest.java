package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.vmm.qmp.QmpEvent;
import dev.ferry.vmm.run.LocalVmms.Vm;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A disk error under {@code werror: stop}, through QMP as QEMU reports it: BLOCK_IO_ERROR (write,
 * stop, nospace), then STOP with run state {@code io-error}; once there is room again {@code cont}
 * runs the guest, which never saw the error, and its image verifies. The image sits on a tmpfs
 * too small for it, so writes fail with ENOSPC; mounting it needs root (skipped otherwise).
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class VmmDiskIoErrorTest {
    @TempDir
    Path dir;
    private Path mnt;
    private boolean mounted;
    private LocalVmms vms;

    private static int run(String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        p.getInputStream().readAllBytes();
        return p.waitFor(30, TimeUnit.SECONDS) ? p.exitValue() : -1;
    }

    @BeforeEach
    void setUp() throws Exception {
        mnt = Files.createDirectory(dir.resolve("tmpfs"));
        Assumptions.assumeTrue(run("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt.toString()) == 0,
                "needs root (CAP_SYS_ADMIN) to mount a small tmpfs that makes the disk's writes fail with ENOSPC");
        mounted = true;
        vms = new LocalVmms(dir);
    }

    @AfterEach
    void tearDown() throws Exception {
        if (vms != null) {
            vms.close();
        }
        if (mounted && run("umount", mnt.toString()) != 0) {
            run("umount", "-l", mnt.toString());
        }
    }

    @Test
    void aWriteErrorStopsTheVmWithQemusEventsAndContResumesIt() throws Exception {
        Path image = mnt.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(16L << 20);
        }
        vms.devices = "[{\"id\": \"disk0\", \"kind\": \"virtio-blk\", \"image\": \"" + image
                + "\", \"werror\": \"stop\", \"rerror\": \"stop\"}]";
        Vm vm = vms.start("vm", null, true, false); // -S: the client listens before the guest runs
        vm.run("cont");
        QmpEvent err = vm.awaitEvent("BLOCK_IO_ERROR");
        assertEquals("disk0", err.dataText("device"));
        assertEquals("write", err.dataText("operation"));
        assertEquals("stop", err.dataText("action"));
        assertTrue(err.data().path("nospace").asBoolean(), err.toString());
        vm.awaitEvent("STOP");
        long deadline = System.nanoTime() + LocalVmms.WAIT.toNanos();
        while (!vm.runState().equals("io-error")) {
            assertTrue(System.nanoTime() < deadline, "the VM did not stop in io-error: " + vm.runState());
            Thread.sleep(5);
        }
        JsonNode blk = vm.run("x-ferry-devices").path("devices").path(0).path("virtio-blk");
        assertTrue(blk.path("parked").asInt() > 0, blk.toString());

        assertEquals(0, run("mount", "-o", "remount,size=64m", mnt.toString()));
        vm.run("cont");
        assertEquals("running", vm.runState());
        long at = vm.run("x-ferry-guest").path("disks").path(0).path("completed").asLong();
        while (vm.run("x-ferry-guest").path("disks").path(0).path("completed").asLong() < at + 300) {
            assertTrue(System.nanoTime() < deadline, "the guest's disk I/O does not go on after cont");
            Thread.sleep(10);
        }
        JsonNode v = vm.run("x-ferry-verify").path("disks").path(0);
        assertTrue(v.path("ok").asBoolean(), v.toString());
        assertEquals(0, v.path("io-errors").asLong(), "the guest never saw the error: " + v);
        assertEquals(0, vm.run("x-ferry-devices").path("devices").path(0).path("virtio-blk").path("parked").asInt());
    }
}
