package dev.ferry.vfio.check;

import dev.ferry.vfio.fsm.MigCapabilities;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
    void kernelDevicesNameTheMissingPiece() {
        for (String path : new String[] {"/dev/vfio/devices/vfio3", "0000:3b:00.2", "3b:00.2"}) {
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class,
                    () -> CheckTargets.forDevice(path));
            assertTrue(e.getMessage().startsWith("kernel devices: not available in this build"), e.getMessage());
            assertTrue(e.getMessage().contains("KernelVfioDevice") && e.getMessage().contains(path), e.getMessage());
        }
    }

    @Test
    void anythingElseIsNotADevice() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CheckTargets.forDevice("/tmp/x"));
        assertTrue(e.getMessage().contains("expected emulated[:FLAGS], /dev/vfio/devices/vfioN or a PCI address"),
                e.getMessage());
    }
}
