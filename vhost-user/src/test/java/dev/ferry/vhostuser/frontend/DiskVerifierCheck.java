package dev.ferry.vhostuser.frontend;

import dev.ferry.virtio.guest.DiskVerifier;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertTrue;

final class DiskVerifierCheck {
    private DiskVerifierCheck() {
    }

    /** Every write the guest saw acknowledged is on the image (the VM stopped). */
    static void assertAcknowledgedWritesOnImage(VhostDiskVm vm, Path img) throws Exception {
        DiskVerifier.Verdict v = vm.verify(img);
        assertTrue(v.ok(), vm.machine.name() + ": " + v + "; driver " + vm.progress());
    }

    /**
     * As {@link #assertAcknowledgedWritesOnImage}, where the device may have gone NEEDS_RESET (a
     * back-end lost with requests out and no in-flight region): the guest's driver resets it and
     * submits again what had no completion, and its image is then verified with no excuse. Only a
     * driver that stopped at its reset limit (the back-end stayed away through every attempt) is
     * judged by its image alone: every block must still hold its last acknowledged write (or the
     * one in flight).
     */
    static void assertImageSafeAfterDeviceReset(VhostDiskVm vm, Path img) throws Exception {
        var p = vm.progress();
        DiskVerifier.Verdict v = DiskVerifier.verifyImage(vm.driver.area(), img, false, p.deviceNeedsReset());
        assertTrue(v.ok(), vm.machine.name() + ": " + v + "; driver " + p);
        System.out.println(vm.machine.name() + ": driver " + (p.deviceNeedsReset() ? "stopped at its reset limit"
                : p.errors() != 0 ? "stopped on error " + p.firstError()
                : p.resetPending() ? "waiting to try a reset again" : "running") + " after " + p.resets() + " reset(s), " + p.resetFailures() + " refused, "
                + p.resubmitted() + " request(s) submitted again; " + v);
    }
}
