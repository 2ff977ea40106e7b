package dev.ferry.vhostuser.frontend;

import dev.ferry.core.machine.RunState;
import dev.ferry.vhostuser.backend.BackendMain;
import dev.ferry.virtio.guest.BlkDriverArea;
import dev.ferry.virtio.guest.DiskVerifier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The front-end's in-flight path against a back-end that has one (Ferry's, in a process of its
 * own): the guest's disk I/O runs at full depth, the back-end process is frozen and SIGKILLed with
 * requests out, a new one starts on the same socket, and the front-end reconnects and hands it the
 * in-flight region (SET_INFLIGHT_FD), from which it resubmits what its predecessor held. I/O goes
 * on, the device never needs a reset, no request is lost, and the image holds every acknowledged
 * write. (qemu-storage-daemon 7.2 offers no in-flight region; there the device goes NEEDS_RESET.)
 */
@Timeout(120)
class FerryBackendRestartTest {
    @TempDir
    Path dir;

    @Test
    void aKilledBackEndIsReplacedAndTheInflightRegionCarriesTheIo() throws Exception {
        Path img = QsdDiskTest.image(dir, 16 * VhostDiskVm.MiB);
        Path sock = dir.resolve("b.sock");
        Process backend = BackendMain.start(dir, "backend0", sock, img);
        try (VhostDiskVm vm = new VhostDiskVm("vm", sock, false)) {
            vm.machine.vmStart();
            vm.runFor(500);
            assertEquals(Boolean.TRUE, vm.vub().get("inflight-region"), "the back-end's in-flight region: " + vm.vub());
            BlkDriverArea.Progress start = vm.progress();
            assertTrue(start.completed() > 100, "I/O ran: " + start);
            // A kill finds requests out most of the time, not always (the page cache is fast):
            // up to five rounds, until a new back-end resubmitted from the region.
            boolean resubmitted = false;
            for (int round = 1; round <= 5 && !resubmitted; round++) {
                // Frozen first (SIGSTOP), so requests pile up popped but not completed; then SIGKILL.
                new ProcessBuilder("kill", "-STOP", Long.toString(backend.pid())).start().waitFor();
                Thread.sleep(200);
                backend.destroyForcibly().waitFor();
                QsdFailureTest.awaitTrue("the hang-up was seen", () -> Boolean.FALSE.equals(vm.vub().get("connected")));
                backend = BackendMain.start(dir, "backend" + round, sock, img);
                QsdFailureTest.awaitTrue("the device reconnected: " + vm.vub(),
                        () -> Boolean.TRUE.equals(vm.vub().get("connected")));
                long atRestart = vm.progress().completed();
                vm.runFor(600);
                BlkDriverArea.Progress after = vm.progress();
                assertTrue(after.completed() > atRestart + 100, "round " + round + ": the guest's I/O goes on through the"
                        + " new back-end: " + after);
                resubmitted = java.nio.file.Files.readString(dir.resolve("backend" + round + ".log")).contains("resubmitting");
            }
            vm.machine.vmStop(RunState.PAUSED);
            assertTrue(resubmitted, "a new back-end resubmitted from the in-flight region in one of five rounds");
            assertFalse(vm.describe().containsKey("needs-reset"), "no reset was needed: " + vm.describe());
            assertEquals(0, vm.progress().errors(), "the guest driver saw no error: " + vm.progress());
            DiskVerifier.Verdict v = vm.verify(img);
            assertTrue(v.ok(), v.toString());
            assertTrue(DiskVerifier.verifyContinuation(start, vm.progress(), 100).isEmpty(),
                    "every request out at a kill completed, none twice: "
                            + DiskVerifier.verifyContinuation(start, vm.progress(), 100));
        } finally {
            backend.destroyForcibly().waitFor();
        }
    }
}
