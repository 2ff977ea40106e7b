package dev.ferry.vfio.check;

import dev.ferry.vfio.fsm.MigCapabilities;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The {@code --device} argument: emulated flags, kernel device names, and what is neither. */
class CheckTargetsTest {
    @Test
    void emulatedTakesTheVfFlags() {
        EmulatedCheckTarget t = (EmulatedCheckTarget) CheckTargets.forDevice("emulated:stop-copy,p2p,state=64K");
        assertEquals(MigCapabilities.STOP_COPY_P2P, t.spec().capabilities());
        assertEquals(64 << 10, t.spec().stateBytes());
        assertEquals("emulated:stop-copy,p2p,state=64K", t.description());
        assertEquals(MigCapabilities.ALL, ((EmulatedCheckTarget) CheckTargets.forDevice("emulated")).spec().capabilities());
    }

    @Test
    void openAndReplayableInstancesAreSeparateDevices() {
        EmulatedCheckTarget t = (EmulatedCheckTarget) CheckTargets.forDevice("emulated:state=64K,dirty-rate=1M");
        try (CheckedDevice a = t.open(); CheckedDevice b = t.openReplayable().orElseThrow()) {
            assertEquals("vf0", a.device().name());
            assertEquals("vf1", b.device().name());
            assertTrue(a.dmaSpace().isPresent() && b.dmaSpace().isPresent());
            assertEquals(2, t.instancesOpened());
        }
    }

    @Test
    void badEmulatedFlagsAreTheVfParsersError() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CheckTargets.forDevice("emulated:warp-drive"));
        assertTrue(e.getMessage().contains("unknown VF flag 'warp-drive'"), e.getMessage());
    }

    @Test
    void kernelDevicesOpenThroughTheKernelPathAndSayWhyTheyCannot() {
        // no VFIO device exists on these machines: opening must fail clearly, naming the device
        for (String path : new String[] {"/dev/vfio/devices/vfio97", "0000:3b:00.2", "3b:00.2"}) {
            Assumptions.assumeFalse(java.nio.file.Files.exists(java.nio.file.Path.of(path)), path + " exists here");
            CheckTarget t = CheckTargets.forDevice(path);
            assertEquals(path.startsWith("3b") ? "0000:" + path : path, t.description());
            assertTrue(assertDoesNotThrow(t::openReplayable).isEmpty(), "kernel devices cannot be replayed");
            dev.ferry.vfio.device.VfioException e = assertThrows(dev.ferry.vfio.device.VfioException.class, t::open);
            assertEquals(dev.ferry.core.sys.Errno.ENOENT, e.errno(), e.getMessage());
            assertTrue(e.getMessage().contains(path.startsWith("3b") ? "0000:" + path : path), e.getMessage());
        }
    }

    @Test
    void anythingElseIsNotADevice() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CheckTargets.forDevice("/tmp/x"));
        assertTrue(e.getMessage().contains("expected emulated[:FLAGS], /dev/vfio/devices/vfioN or a PCI address"),
                e.getMessage());
    }
}
