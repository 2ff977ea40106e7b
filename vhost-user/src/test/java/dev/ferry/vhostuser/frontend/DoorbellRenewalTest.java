package dev.ferry.vhostuser.frontend;

import dev.ferry.core.machine.RunState;
import dev.ferry.core.sys.EventFd;
import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import dev.ferry.virtio.blk.BlkOptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every start of a vhost-user device's rings hands the back-end a new doorbell and closes the one
 * before, as QEMU renews a vhost back-end's host notifiers: a back-end dropped while its process
 * still runs keeps a duplicate of the old eventfd, which no guest kick reaches any more. Here a
 * VM stop and start (and a back-end replaced while the guest runs) each leave the previous
 * doorbell closed, and the guest's disk I/O goes on through the new one.
 */
@Timeout(60)
class DoorbellRenewalTest {
    @TempDir
    Path dir;

    @Test
    void eachStartHandsTheBackEndAFreshDoorbellAndClosesTheOld() throws Exception {
        Path img = QsdDiskTest.image(dir, 16 * VhostDiskVm.MiB);
        Path sock = dir.resolve("a.sock");
        VhostUserBackend a = VhostUserBackend.serveBlk(BlkOptions.of(img), BackendOptions.server(sock));
        try (VhostDiskVm vm = new VhostDiskVm("vm", sock, false)) {
            vm.machine.vmStart();
            vm.runFor(100);
            EventFd first = vm.disk.transport().kickFd(0);
            vm.machine.vmStop(RunState.PAUSED);
            vm.machine.vmStart();
            vm.runFor(100);
            EventFd second = vm.disk.transport().kickFd(0);
            assertNotSame(first, second, "the restart handed over a new doorbell");
            assertThrows(IllegalStateException.class, first::signal, "the old doorbell is closed");

            a.close(); // the back-end goes away while the guest runs; a new one takes its socket
            a = VhostUserBackend.serveBlk(BlkOptions.of(img), BackendOptions.server(sock));
            QsdFailureTest.awaitTrue("the device reconnected: " + vm.vub(),
                    () -> ((Number) vm.vub().get("reconnects")).longValue() == 1
                            && Boolean.TRUE.equals(vm.vub().get("rings-running")));
            vm.runFor(100);
            assertNotSame(second, vm.disk.transport().kickFd(0), "the new back-end got a doorbell of its own");
            assertThrows(IllegalStateException.class, second::signal, "the lost back-end's doorbell is closed");
            vm.machine.vmStop(RunState.PAUSED);
            assertTrue(vm.verify(img).ok(), vm.verify(img).toString());
        } finally {
            a.close();
        }
    }
}
