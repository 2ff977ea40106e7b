package dev.ferry.vfio.migration;

import dev.ferry.core.machine.RunState;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.testing.FdLeakCheck;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.transport.NettyMigrationTransports;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;
import dev.ferry.vfio.uapi.VfioDeviceState;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Whole migrations of VMs with emulated VFs through the real engine: for each capability set,
 * the device states on both sides follow QEMU's sequence exactly, each destination VF holds the
 * state its source VF had when it stopped, guest RAM the VF wrote by DMA during pre-copy arrives,
 * and the statistics add up to what the devices sent and took.
 */
@Timeout(120)
class VfioMigrationEndToEndTest {
    static NettyMigrationTransports transports;
    static final MigrationCapabilities ACK = MigrationCapabilities.defaults().withSwitchoverAck(true);

    @BeforeAll
    static void transports() {
        transports = new NettyMigrationTransports();
    }

    @AfterAll
    static void close() {
        transports.close();
    }

    /** QEMU's source sequence (hw/vfio/migration.c, docs/devel/migration/vfio.rst) per capability set. */
    static List<VfioDeviceState> sourceSequence(String caps) {
        return switch (caps) {
            case "stop-copy" -> List.of(RUNNING, STOP, STOP_COPY, STOP);
            case "stop-copy,p2p" -> List.of(RUNNING, RUNNING_P2P, STOP, STOP_COPY, STOP);
            case "stop-copy,pre-copy" -> List.of(RUNNING, PRE_COPY, STOP_COPY, STOP);
            case "stop-copy,p2p,pre-copy" -> List.of(RUNNING, PRE_COPY, PRE_COPY_P2P, STOP_COPY, STOP);
            default -> throw new IllegalArgumentException(caps);
        };
    }

    /** QEMU's destination sequence; the kernel skips RUNNING_P2P where the device lacks P2P. */
    static List<VfioDeviceState> destinationSequence(String caps) {
        return caps.contains("p2p")
                ? List.of(RUNNING, RUNNING_P2P, STOP, RESUMING, STOP, RUNNING_P2P, RUNNING)
                : List.of(RUNNING, STOP, RESUMING, STOP, RUNNING);
    }

    static final String STATE = ",state=256K";

    @ParameterizedTest
    @ValueSource(strings = {"stop-copy", "stop-copy,p2p", "stop-copy,pre-copy", "stop-copy,p2p,pre-copy"})
    void oneVfMigratesInQemusSequence(String caps) throws Exception {
        try (VfioVmPair pair = VfioVmPair.builder().vf(caps + STATE).dmaWriter().build()) {
            VfioVmPair.Outcome o = pair.migrate(transports, ACK);
            assertEquals(MigrationStatus.COMPLETED, o.source(), o::toString);
            assertEquals(MigrationStatus.COMPLETED, o.destination(), o::toString);
            assertEquals(RunState.POSTMIGRATE, pair.source.machine().runState());
            assertEquals(RunState.RUNNING, pair.destination.machine().runState());
            assertVfsMigrated(pair, caps);
            // The VF wrote guest pages by DMA until it stopped: its DMA log brought every one over.
            assertEquals(pair.source.memory().digest(), o.destinationMemoryDigest(),
                    "destination RAM at load differs from the source's at switchover");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"stop-copy,p2p", "stop-copy,p2p,pre-copy"})
    void twoP2pVfsMigrateWithEveryPrepareBeforeAnyStop(String caps) throws Exception {
        try (VfioVmPair pair = VfioVmPair.builder().vf(caps + STATE).vf(caps + STATE + ",seed=9").build()) {
            VfioVmPair.Outcome o = pair.migrate(transports, ACK);
            assertEquals(MigrationStatus.COMPLETED, o.source(), o::toString);
            assertEquals(MigrationStatus.COMPLETED, o.destination(), o::toString);
            assertVfsMigrated(pair, caps);
            // At the VM stop, both devices reach their *_P2P state before either stops.
            VfioDeviceState quiesce = caps.contains("pre-copy") ? PRE_COPY_P2P : RUNNING_P2P;
            VfioDeviceState stop = caps.contains("pre-copy") ? STOP_COPY : STOP;
            List<String> log = new ArrayList<>(pair.setLog);
            int lastPrepare = Math.max(log.indexOf("vf0 " + quiesce), log.indexOf("vf1 " + quiesce));
            int firstStop = Math.min(log.indexOf("vf0 " + stop), log.indexOf("vf1 " + stop));
            assertTrue(log.indexOf("vf0 " + quiesce) >= 0 && log.indexOf("vf1 " + quiesce) >= 0, log::toString);
            assertTrue(lastPrepare < firstStop, () -> "a device stopped before every device was in " + quiesce
                    + ": " + log);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"stop-copy", "stop-copy,pre-copy"})
    void twoVfsWithoutP2pAreBlocked(String caps) throws Exception {
        try (VfioVmPair pair = VfioVmPair.builder().vf(caps + STATE).vf(caps + STATE).build()) {
            SourceMigration s = new SourceMigration(pair.source.machine(), transports, MigrationParameters.defaults(),
                    ACK, MigrationEventSink.NONE);
            MigrationException e = assertThrows(MigrationException.class, () -> s.start("tcp:127.0.0.1:1"));
            assertTrue(e.getMessage().contains("vf0, vf1: more than one VFIO device migrates only if all of them"
                    + " support P2P migration, and vf0, vf1 do not"), e.getMessage());
            for (EmulatedVfioDevice vf : pair.srcVfs) {
                assertEquals(List.of(RUNNING), vf.stateHistory(), "a blocked migration touches no device");
            }
        }
    }

    private static void assertVfsMigrated(VfioVmPair pair, String caps) {
        for (int i = 0; i < pair.srcVfs.size(); i++) {
            EmulatedVfioDevice src = pair.srcVfs.get(i);
            EmulatedVfioDevice dst = pair.dstVfs.get(i);
            assertEquals(sourceSequence(caps), src.stateHistory(), "source vf" + i);
            assertEquals(destinationSequence(caps), dst.stateHistory(), "destination vf" + i);
            assertEquals(0, src.resets());
            assertEquals(0, dst.resets());
            assertTrue(src.churnSteps() > 0, "the source VF's state changed while it ran");
            // The source VF stopped at switchover and has not changed since; the destination VF
            // does not churn, so it still holds exactly what it loaded.
            assertEquals(src.stateDigest(), dst.stateDigest(), "vf" + i + " state differs after migration");
            assertEquals(STOP, pair.srcMigs.get(i).deviceState());
            assertEquals(RUNNING, pair.dstMigs.get(i).deviceState());
        }
    }

    @Test
    void statisticsAddUpToWhatTheDevicesSentAndLoaded() throws Exception {
        try (VfioVmPair pair = VfioVmPair.builder().vf("stop-copy,p2p,pre-copy" + STATE).build()) {
            VfioVmPair.Outcome o = pair.migrate(transports, ACK);
            assertEquals(MigrationStatus.COMPLETED, o.source(), o::toString);
            VfioMigrationStats.Snapshot s = pair.srcMigs.get(0).stats();
            VfioMigrationStats.Snapshot d = pair.dstMigs.get(0).stats();
            assertEquals("vf0", s.device());
            assertTrue(s.precopyBytes() >= 256 << 10, "the initial state went out in pre-copy: " + s);
            assertTrue(s.stopCopyBytes() > 0, "the control state went out in stop-copy: " + s);
            assertEquals(pair.srcVfs.get(0).savedBytes(), s.precopyBytes() + s.stopCopyBytes());
            assertEquals(s.stopCopyBytes(), s.downtimeBytes());
            assertTrue(s.iterateReads() >= 1);
            assertEquals(pair.dstVfs.get(0).loadedBytes(), d.loadedBytes());
            assertEquals(s.precopyBytes() + s.stopCopyBytes(), d.loadedBytes());
            assertEquals(STOP, s.finalState());
            assertEquals(RUNNING, d.finalState());
            Map<VfioDeviceState, Long> in = s.nanosInState();
            assertTrue(in.getOrDefault(PRE_COPY, 0L) > 0 && in.getOrDefault(STOP_COPY, 0L) > 0, in::toString);
            assertTrue(s.setNanos().containsKey("RUNNING->PRE_COPY") && s.setNanos().containsKey("PRE_COPY_P2P->STOP_COPY")
                    && s.setNanos().containsKey("STOP_COPY->STOP"), s.setNanos()::toString);
            // the destination leaves RESUMING when the stream is loaded (validation), then starts
            assertEquals(java.util.Set.of("RUNNING->RESUMING", "RESUMING->STOP", "STOP->RUNNING_P2P",
                    "RUNNING_P2P->RUNNING"), d.setNanos().keySet(), d.setNanos()::toString);
            assertEquals(0, s.resets());
            assertFalse(s.lost());
            assertTrue(s.errors().isEmpty(), s.errors()::toString);
            assertTrue(s.dmaSyncs() > 0, "the DMA log was synced");
            List<VfioMigrationStats.Snapshot> all = VfioMigrationSet.of(pair.source.machine()).stats();
            assertEquals(List.of("vf0"), all.stream().map(VfioMigrationStats.Snapshot::device).toList());
            assertEquals(s.stopCopyBytes(), all.get(0).stopCopyBytes());
        }
    }

    /** A paused VM's device is already stopped: no pre-copy, STOP_COPY only in the complete step. */
    @Test
    void aPausedVmMigratesWithoutPrecopy() throws Exception {
        try (VfioVmPair pair = VfioVmPair.builder().vf("stop-copy,p2p,pre-copy" + STATE).build()) {
            pair.source.machine().vmStop(RunState.PAUSED);
            VfioVmPair.Outcome o = pair.migrate(transports, ACK);
            assertEquals(MigrationStatus.COMPLETED, o.source(), o::toString);
            assertEquals(List.of(RUNNING, RUNNING_P2P, STOP, STOP_COPY, STOP), pair.srcVfs.get(0).stateHistory());
            assertEquals(0, pair.srcMigs.get(0).stats().precopyBytes());
            assertEquals(pair.srcVfs.get(0).stateDigest(), pair.dstVfs.get(0).stateDigest());
        }
    }

    @Test
    void withoutSwitchoverAckAPrecopyDeviceStillMigrates() throws Exception {
        try (VfioVmPair pair = VfioVmPair.builder().vf("stop-copy,p2p,pre-copy" + STATE).build()) {
            VfioVmPair.Outcome o = pair.migrate(transports, MigrationCapabilities.defaults());
            assertEquals(MigrationStatus.COMPLETED, o.source(), o::toString);
            assertVfsMigrated(pair, "stop-copy,p2p,pre-copy");
        }
    }

    @Test
    void configStateTravelsInTheConfigSection() throws Exception {
        byte[] sent = "BAR0=0xfe000000;MSIX=on".getBytes();
        byte[][] received = new byte[1][];
        VfioDeviceConfig srcConfig = new VfioDeviceConfig() {
            @Override
            public byte[] save() {
                return sent;
            }

            @Override
            public void load(byte[] state) {
                throw new AssertionError("the source loads nothing");
            }
        };
        VfioDeviceConfig dstConfig = new VfioDeviceConfig() {
            @Override
            public byte[] save() {
                return new byte[0];
            }

            @Override
            public void load(byte[] state) {
                received[0] = state;
            }
        };
        try (VfioVmPair pair = VfioVmPair.builder().build()) {
            var sv = new EmulatedVfioDevice("vf0", dev.ferry.vfio.emulated.EmulatedVfSpec.parse("stop-copy" + STATE),
                    new dev.ferry.vfio.device.GuestDmaSpace(pair.source.memory()));
            pair.source.machine().addDevice(sv);
            VfioMigration.attach(pair.source.machine(), sv, VfioMigration.Options.defaults().withConfig(srcConfig));
            var dv = new EmulatedVfioDevice("vf0", dev.ferry.vfio.emulated.EmulatedVfSpec.parse("stop-copy" + STATE
                    + ",dirty-rate=0"), new dev.ferry.vfio.device.GuestDmaSpace(pair.destination.memory()));
            pair.destination.machine().addDevice(dv);
            VfioMigration.attach(pair.destination.machine(), dv, VfioMigration.Options.defaults().withConfig(dstConfig));
            VfioVmPair.Outcome o = pair.migrate(transports, ACK);
            assertEquals(MigrationStatus.COMPLETED, o.source(), o::toString);
            assertNotNull(received[0]);
            assertEquals(new String(sent), new String(received[0]));
            assertEquals(sv.stateDigest(), dv.stateDigest());
        }
    }

    @Test
    void aWholeMigrationLeaksNoFd() throws Exception {
        // warm up the transport's event loops and the JDK's lazily opened files
        try (VfioVmPair pair = VfioVmPair.builder().vf("stop-copy,p2p,pre-copy" + STATE).build()) {
            VfioVmPair.Outcome o = pair.migrate(transports, ACK);
            assertEquals(MigrationStatus.COMPLETED, o.source(), o::toString);
        }
        FdLeakCheck check = FdLeakCheck.start();
        try (VfioVmPair pair = VfioVmPair.builder().vf("stop-copy,p2p,pre-copy" + STATE).build()) {
            VfioVmPair.Outcome o = pair.migrate(transports, ACK);
            assertEquals(MigrationStatus.COMPLETED, o.source(), o::toString);
        }
        try (VfioVmPair pair = VfioVmPair.builder().vf("stop-copy,p2p,pre-copy" + STATE + ",fault=fail-read").build()) {
            VfioVmPair.Outcome o = pair.migrate(transports, ACK);
            assertEquals(MigrationStatus.FAILED, o.source(), o::toString);
        }
        check.assertNoLeaks();
    }
}
