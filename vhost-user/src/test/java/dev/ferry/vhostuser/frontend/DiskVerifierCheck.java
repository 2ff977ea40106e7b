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

    /** The driver's code for "the device set NEEDS_RESET" (BlkDriverArea.ERR_DEVICE). */
    static final long ERR_DEVICE = 4;

    /**
     * As {@link #assertAcknowledgedWritesOnImage}, where the device may have gone NEEDS_RESET (a
     * back-end lost with requests out and no in-flight region): the driver then stops with that
     * error, and every block must still hold its last acknowledged write (or the one in flight).
     */
    static void assertImageSafeAfterDeviceReset(VhostDiskVm vm, Path img) throws Exception {
        DiskVerifier.Verdict v = vm.verify(img);
        var p = vm.progress();
        boolean onlyTheReset = p.errors() != 0 && p.firstError() == ERR_DEVICE
                && v.problems().stream().allMatch(s -> s.startsWith("the driver saw "));
        assertTrue(v.ok() || onlyTheReset, vm.machine.name() + ": " + v + "; driver " + p);
    }
}
