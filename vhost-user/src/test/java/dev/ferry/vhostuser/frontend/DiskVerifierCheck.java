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
}
