package dev.ferry.vhostuser.frontend;

import dev.ferry.core.machine.RunState;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import dev.ferry.virtio.blk.BlkOptions;
import dev.ferry.virtio.blk.VirtioBlk;
import dev.ferry.virtio.guest.BlkDriverArea;
import dev.ferry.virtio.guest.DiskVerifier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A disk grown under a running guest whose disk a vhost-user back-end serves. Ferry's back-end
 * grows the image and sends CONFIG_CHANGE_MSG on the request channel the front-end gave it
 * (SET_BACKEND_REQ_FD); the front-end takes the new capacity (GET_CONFIG) into the guest's config
 * space with a new config generation, and the guest's I/O goes on. The grown guest migrates to a
 * back-end started on the grown image. A back-end replaced while the guest runs is asked for its
 * capacity when the device reconnects.
 */
@Timeout(90)
class BackendResizeTest {
    private static final long MiB = VhostDiskVm.MiB;

    @TempDir
    Path dir;

    /** The capacity in the guest's config space, read as a driver reads it (two 32-bit reads). */
    static long capacitySectors(VhostDiskVm vm) {
        long at = vm.disk.transport().base() + 0x100;
        return (vm.machine.mmio().read(at + 4, 4) & 0xffffffffL) << 32 | vm.machine.mmio().read(at, 4) & 0xffffffffL;
    }

    static int configGeneration(VhostDiskVm vm) {
        return (int) vm.machine.mmio().read(vm.disk.transport().base() + 0x0fc, 4);
    }

    @Test
    void aDiskGrownByItsBackEndReachesTheRunningGuestAndMigrates() throws Exception {
        Path img = QsdDiskTest.image(dir, 16 * MiB);
        try (VhostUserBackend a = VhostUserBackend.serveBlk(BlkOptions.of(img), BackendOptions.server(dir.resolve("a.sock")))) {
            VhostDiskVm src = new VhostDiskVm("src", a.socket(), false);
            try {
                src.machine.vmStart();
                src.runFor(200);
                assertEquals(16 * MiB / 512, capacitySectors(src));
                int generation = configGeneration(src);

                ((VirtioBlk) a.model()).grow(24 * MiB);
                assertEquals(24 * MiB, Files.size(img), "the back-end grew the image");
                VhostDiskVm vm = src;
                QsdFailureTest.awaitTrue("the guest's config space shows the new capacity: " + src.vub(),
                        () -> capacitySectors(vm) == 24 * MiB / 512);
                assertNotEquals(generation, configGeneration(src), "a new config generation comes with the capacity");
                assertEquals(1L, a.stats().configChanges(), a.stats().toString());
                assertEquals(1L, ((Number) src.vub().get("capacity-changes")).longValue(), src.vub().toString());
                assertEquals(Boolean.TRUE, src.vub().get("connected"));
                assertEquals(0L, ((Number) src.vub().get("reconnects")).longValue(), src.vub().toString());
                src.runFor(200);

                // Shrinking is refused; nothing changes.
                IOException e = assertThrows(IOException.class, () -> ((VirtioBlk) a.model()).grow(8 * MiB));
                assertTrue(e.getMessage().contains("only growing"), e.getMessage());
                assertEquals(24 * MiB, Files.size(img));

                try (VhostUserBackend b = VhostUserBackend.serveBlk(BlkOptions.of(img),
                        BackendOptions.server(dir.resolve("b.sock")))) {
                    byte[] stream = InMemoryMigration.save(src.machine);
                    BlkDriverArea.Progress atSwitchover = src.progress();
                    try (VhostDiskVm dst = new VhostDiskVm("dst", b.socket(), true)) {
                        QsdMigrationTest.Loaded l = QsdMigrationTest.load(dst, stream);
                        assertEquals(MigrationStatus.COMPLETED, l.status(), () -> "incoming: " + l.error());
                        assertEquals(24 * MiB / 512, capacitySectors(dst));
                        dst.machine.vmStart();
                        dst.runFor(300);
                        dst.machine.vmStop(RunState.PAUSED);
                        List<String> problems = DiskVerifier.verifyContinuation(atSwitchover, dst.progress(), 300);
                        assertTrue(problems.isEmpty(), problems.toString());
                        DiskVerifier.Verdict v = dst.verify(img);
                        assertTrue(v.ok(), v.toString());
                    }
                }
            } finally {
                src.close();
            }
        }
    }

    /**
     * A back-end that goes away and comes back serving an image grown meanwhile: the front-end
     * reads the capacity again when it reconnects and tells the driver; the requests the first
     * back-end left in flight are resubmitted from its in-flight region and the image verifies.
     */
    @Test
    void aReconnectedBackEndsNewCapacityReachesTheGuest() throws Exception {
        Path img = QsdDiskTest.image(dir, 16 * MiB);
        Path sock = dir.resolve("a.sock");
        VhostUserBackend a = VhostUserBackend.serveBlk(BlkOptions.of(img), BackendOptions.server(sock));
        try (VhostDiskVm vm = new VhostDiskVm("vm", sock, false)) {
            vm.machine.vmStart();
            vm.runFor(200);
            a.close(); // while the guest runs (a paused VM's device loop notices nothing until it runs)
            try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
                f.setLength(32 * MiB);
            }
            int generation = configGeneration(vm);
            a = VhostUserBackend.serveBlk(BlkOptions.of(img), BackendOptions.server(sock));
            QsdFailureTest.awaitTrue("the device reconnected with the new capacity: " + vm.vub(),
                    () -> capacitySectors(vm) == 32 * MiB / 512);
            assertNotEquals(generation, configGeneration(vm));
            assertEquals(1L, ((Number) vm.vub().get("reconnects")).longValue(), vm.vub().toString());
            vm.runFor(200);
            vm.machine.vmStop(RunState.PAUSED);
            assertTrue(vm.verify(img).ok(), vm.verify(img).toString());
        } finally {
            a.close();
        }
    }
}
