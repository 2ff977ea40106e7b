package dev.ferry.vfio.migration;

import dev.ferry.core.migration.MigrationBlocker;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.testing.MemoryTransports;
import dev.ferry.migration.testing.TestVm;
import dev.ferry.vfio.device.GuestDmaSpace;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What keeps a VM with VFIO devices from migrating, as QEMU decides it: a device without
 * migration support, more than one migratable device unless all have P2P (re-evaluated as
 * devices come and go), and — when asked for — a device that cannot log its DMA.
 */
class VfioMigrationBlockerTest {
    private TestVm vm;

    @BeforeEach
    void vm() {
        vm = TestVm.builder("vm").ram(64 << 10).running().build();
    }

    @AfterEach
    void close() {
        vm.close();
    }

    private EmulatedVfioDevice vf(String name, String flags) {
        EmulatedVfioDevice d = new EmulatedVfioDevice(name, EmulatedVfSpec.parse(flags + ",state=64K"),
                new GuestDmaSpace(vm.memory()));
        vm.machine().addDevice(d);
        return d;
    }

    private List<String> reasons() {
        return vm.machine().migration().blockers().stream().map(MigrationBlocker::reason).toList();
    }

    private String startRefusal() {
        SourceMigration s = new SourceMigration(vm.machine(), new MemoryTransports(), MigrationParameters.defaults(),
                MigrationCapabilities.defaults(), MigrationEventSink.NONE);
        return assertThrows(MigrationException.class, () -> s.start(MemoryTransports.FILE_URI)).getMessage();
    }

    @Test
    void aDeviceWithoutMigrationSupportBlocksAndRegistersNothing() {
        VfioMigration m = VfioMigration.attach(vm.machine(), vf("vf0", "no-migration"));
        assertFalse(m.migratable());
        assertEquals(List.of("vf0: device does not support migration"), reasons());
        assertTrue(startRefusal().contains("vf0: device does not support migration"));
        assertTrue(m.sectionId().isEmpty());
        assertTrue(vm.machine().migration().entries().stream().noneMatch(e -> e.idstr().contains("vf0")));
        assertTrue(vm.machine().migration().dirtyLogSources().isEmpty());
        m.close();
        assertEquals(List.of(), reasons());
    }

    @Test
    void aMigratableDeviceRegistersItsSectionNotifierAndDmaLog() {
        VfioMigration m = VfioMigration.attach(vm.machine(), vf("vf0", "stop-copy,p2p"));
        assertTrue(m.migratable());
        assertEquals("vf0/vfio", m.sectionId().orElseThrow());
        var entry = vm.machine().migration().entries().stream().filter(e -> e.idstr().equals("vf0/vfio")).findFirst()
                .orElseThrow();
        assertEquals(0, entry.instanceId());
        assertEquals(1, entry.version());
        assertEquals(dev.ferry.core.migration.MigrationPriority.DMA_DEVICE, entry.priority());
        assertEquals(List.of("vf0 dma"), vm.machine().migration().dirtyLogSources().stream().map(s -> s.name()).toList());
        assertEquals(1, vm.machine().migration().notifiers().size());
        assertEquals(List.of(), reasons());
        m.close();
        assertTrue(vm.machine().migration().entries().stream().noneMatch(e -> e.idstr().endsWith("/vfio")),
                "no VFIO section is left (the machine's own globalstate stays)");
        assertTrue(vm.machine().migration().dirtyLogSources().isEmpty());
        assertTrue(vm.machine().migration().notifiers().isEmpty());
    }

    @Test
    void twoDevicesWithoutP2pBlockUntilOneLeaves() {
        VfioMigration a = VfioMigration.attach(vm.machine(), vf("vf0", "stop-copy,p2p"));
        assertEquals(List.of(), reasons(), "one device migrates alone, P2P or not");
        VfioMigration b = VfioMigration.attach(vm.machine(), vf("vf1", "stop-copy,pre-copy"));
        String multi = "vf0, vf1: more than one VFIO device migrates only if all of them support P2P migration,"
                + " and vf1 does not";
        assertEquals(List.of(multi), reasons());
        assertEquals(multi, VfioMigrationSet.of(vm.machine()).blocker().orElseThrow().reason());
        assertTrue(startRefusal().contains(multi));
        b.close();
        assertEquals(List.of(), reasons(), "the blocker goes with the second device");
        VfioMigration c = VfioMigration.attach(vm.machine(), vf("vf2", "stop-copy,p2p,pre-copy"));
        assertEquals(List.of(), reasons(), "two P2P devices may migrate");
        VfioMigration d = VfioMigration.attach(vm.machine(), vf("vf3", "stop-copy"));
        assertEquals(List.of("vf0, vf2, vf3: more than one VFIO device migrates only if all of them support P2P"
                + " migration, and vf3 does not"), reasons());
        d.close();
        c.close();
        a.close();
        assertEquals(List.of(), reasons());
        assertTrue(VfioMigrationSet.of(vm.machine()).members().isEmpty());
    }

    @Test
    void aDeviceWithoutMigrationDoesNotCountAsASecondDevice() {
        VfioMigration.attach(vm.machine(), vf("vf0", "stop-copy"));
        VfioMigration.attach(vm.machine(), vf("vf1", "no-migration"));
        assertEquals(List.of("vf1: device does not support migration"), reasons());
    }

    @Test
    void noDmaLoggingBlocksOnlyWhenDirtyTrackingIsRequired() {
        VfioMigration warned = VfioMigration.attach(vm.machine(), vf("vf0", "stop-copy,p2p,no-dma-log"));
        assertEquals(List.of(), reasons());
        assertEquals(1, warned.stats().warnings().size());
        assertTrue(warned.stats().warnings().get(0).contains("vf0: the device cannot log its DMA writes"));
        warned.close();
        VfioMigration blocked = VfioMigration.attach(vm.machine(), vf("vf1", "stop-copy,p2p,no-dma-log"),
                VfioMigration.Options.defaults().withRequireDirtyTracking(true));
        assertEquals(List.of("vf1: VFIO device does not support device dirty tracking (no DMA logging)"), reasons());
        blocked.close();
        assertEquals(List.of(), reasons());
    }

    @Test
    void closingTheMachineDetachesItsDevices() {
        VfioMigration m = VfioMigration.attach(vm.machine(), vf("vf0", "stop-copy,p2p"));
        assertEquals(List.of(m), VfioMigrationSet.of(vm.machine()).members());
        vm.close();
        assertTrue(vm.machine().migration().entries().stream().noneMatch(e -> e.idstr().endsWith("/vfio")),
                "no VFIO section is left (the machine's own globalstate stays)");
        assertTrue(VfioMigrationSet.of(vm.machine()).members().isEmpty());
    }
}
