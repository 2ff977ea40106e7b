package dev.ferry.vhostuser.frontend;

import dev.ferry.core.machine.RunState;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.guest.BlkDriverArea;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Ferry's guest disk driver on a vhost-user-blk device served by a real qemu-storage-daemon. */
@Timeout(60)
class QsdDiskTest {
    @TempDir
    Path dir;

    @BeforeAll
    static void peer() {
        Qsd.assumeInstalled();
    }

    static Path image(Path dir, long bytes) throws Exception {
        Path p = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(bytes);
        }
        return p;
    }

    @Test
    void guestDriverDoesVerifiedIoThroughTheDaemon() throws Exception {
        Path img = image(dir, 16 * VhostDiskVm.MiB);
        try (Qsd qsd = new Qsd(img, dir.resolve("vub.sock"));
             VhostDiskVm vm = new VhostDiskVm("vm", qsd.socket, false)) {
            vm.machine.vmStart();
            vm.runFor(2000);
            vm.machine.vmStop(RunState.PAUSED);
            BlkDriverArea.Progress p = vm.progress();
            assertTrue(p.writesAcked() > 300 && p.readsVerified() > 300, p.toString());
            assertEquals(0, p.errors(), p.toString());
            assertEquals(0, p.readMismatches(), p.toString());
            assertTrue(p.interrupts() > 0, "interrupts through the call eventfd: " + p);
            int status = (int) vm.machine.mmio().read(vm.disk.transport().base() + 0x70, 4);
            assertEquals(Virtio.STATUS_DRIVER_OK, status & Virtio.STATUS_DRIVER_OK);
            assertTrue(vm.verify(img).ok(), vm.verify(img).toString());
            assertEquals(Boolean.TRUE, vm.vub().get("connected"));
        }
    }
}
