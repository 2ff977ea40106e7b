package dev.ferry.migration.e2e;

import dev.ferry.core.machine.RunState;
import dev.ferry.core.machine.VmChangeStateHandler;
import dev.ferry.core.machine.VmStateChangeException;
import dev.ferry.core.migration.LiveSaveHandler;
import dev.ferry.core.migration.LoadContext;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationEvent;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.core.migration.NonIterableSave;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.TestVm;
import dev.ferry.migration.transport.NettyMigrationTransports;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What the engine offers device participants beyond the basic phases, as VFIO uses it: a live
 * handler's non-iterable part (QEMU's save_state) as a FULL section under its own idstr; the
 * switchover-ack setting on both sides; a rollback failure reported in the migration's error; and
 * a destination whose start failed not running next to the source that keeps the guest.
 */
@Timeout(60)
class DeviceSpiTest {
    static NettyMigrationTransports transports;

    @BeforeAll
    static void transports() {
        transports = new NettyMigrationTransports();
    }

    @AfterAll
    static void close() {
        transports.close();
    }

    /** Sends one word per live phase, a text as its non-iterable part, and records what it saw. */
    static class Participant implements LiveSaveHandler, NonIterableSave {
        final List<String> loaded = new ArrayList<>();
        final List<Boolean> ackOnSave = new ArrayList<>();
        Boolean ackOnLoad;
        private LoadContext context;

        @Override
        public String idstr() {
            return "dev0/vfio";
        }

        @Override
        public int instanceId() {
            return 0;
        }

        @Override
        public int version() {
            return 1;
        }

        @Override
        public void saveSetup(SaveStream out) throws IOException {
            ackOnSave.add(out.switchoverAck());
            out.putBe32(1);
        }

        @Override
        public boolean saveIterate(SaveStream out) throws IOException {
            out.putBe32(2);
            return true;
        }

        @Override
        public long pendingEstimate() {
            return 0;
        }

        @Override
        public long pendingExact() {
            return 0;
        }

        @Override
        public void saveComplete(SaveStream out) throws IOException {
            out.putBe32(3);
        }

        @Override
        public void saveState(SaveStream out) throws IOException {
            byte[] text = "config".getBytes(StandardCharsets.UTF_8);
            out.putBe32(4);
            out.putBe32(text.length);
            out.putBytes(text);
        }

        @Override
        public void saveCleanup(boolean succeeded) {
        }

        @Override
        public void loadSetup(LoadContext ctx) {
            context = ctx;
            ackOnLoad = ctx.switchoverAck();
        }

        @Override
        public void loadState(LoadStream in, int versionId) throws IOException, MigrationException {
            int tag = in.getBe32();
            if (tag == 4) {
                byte[] b = new byte[in.getBe32()];
                in.getBytes(b, 0, b.length);
                loaded.add("full:" + new String(b, StandardCharsets.UTF_8));
            } else if (tag >= 1 && tag <= 3) {
                loaded.add("part" + tag);
            } else {
                throw new MigrationException("dev0: tag " + tag);
            }
        }

        @Override
        public void loadComplete() {
        }

        @Override
        public void loadCleanup(boolean succeeded) {
        }

        @Override
        public boolean switchoverAckNeeded() {
            return false;
        }
    }

    @Test
    void aLiveHandlersNonIterablePartIsAFullSectionAfterEveryEnd() throws Exception {
        Participant src = new Participant();
        Participant dst = new Participant();
        try (TestVm s = TestVm.builder("src").ram(16 << 10).running().build();
             TestVm d = TestVm.builder("dst").ram(16 << 10).build()) {
            s.machine().migration().registerLive(src, MigrationPriority.DMA_DEVICE);
            d.machine().migration().registerLive(dst, MigrationPriority.DMA_DEVICE);
            byte[] stream = InMemoryMigration.save(s.machine());
            InMemoryMigration.Incoming in = InMemoryMigration.load(d.machine(), stream);
            assertEquals(MigrationStatus.COMPLETED, in.status(), in::toString);
            assertEquals("part1", dst.loaded.get(0));
            assertEquals(List.of("part3", "full:config"), dst.loaded.subList(dst.loaded.size() - 2, dst.loaded.size()));
            String text = new String(stream, StandardCharsets.ISO_8859_1);
            // the vmdesc describes it as QEMU does a section without a VMStateDescription
            assertTrue(text.contains("{\"name\":\"dev0/vfio\",\"instance_id\":0,\"size\":14,\"fields\":[{\"name\":"
                    + "\"data\",\"size\":14,\"type\":\"buffer\"}]}"), text.substring(text.lastIndexOf('{') - 200));
            assertEquals(List.of(false), src.ackOnSave, "a file has no return path: no switchover-ack");
        }
    }

    @Test
    void bothSidesSeeWhetherSwitchoverAckIsOn() throws Exception {
        for (boolean ack : new boolean[] {true, false}) {
            Participant src = new Participant();
            Participant dst = new Participant();
            try (TestVm s = TestVm.builder("src").ram(16 << 10).running().build();
                 TestVm d = TestVm.builder("dst").ram(16 << 10).build()) {
                s.machine().migration().registerLive(src, MigrationPriority.DMA_DEVICE);
                d.machine().migration().registerLive(dst, MigrationPriority.DMA_DEVICE);
                MigrationCapabilities caps = MigrationCapabilities.defaults().withSwitchoverAck(ack);
                Outcome o = migrate(s, d, caps);
                assertEquals(MigrationStatus.COMPLETED, o.src.status(), () -> o.src.info().errorDesc());
                assertEquals(List.of(ack), src.ackOnSave);
                assertEquals(ack, dst.ackOnLoad);
            }
        }
    }

    /** A handler that needs the destination's approval and never gives it. */
    static final class NeverApproves extends Participant {
        @Override
        public boolean switchoverAckNeeded() {
            return true;
        }
    }

    /** QEMU's migration_can_switchover: with the VM stopped there is no approval to wait for. */
    @Test
    void aStoppedVmDoesNotWaitForSwitchoverAck() throws Exception {
        try (TestVm s = TestVm.builder("src").ram(16 << 10).runState(RunState.PAUSED).build();
             TestVm d = TestVm.builder("dst").ram(16 << 10).build()) {
            s.machine().migration().registerLive(new NeverApproves(), MigrationPriority.DMA_DEVICE);
            d.machine().migration().registerLive(new NeverApproves(), MigrationPriority.DMA_DEVICE);
            Outcome o = migrate(s, d, MigrationCapabilities.defaults().withSwitchoverAck(true));
            assertEquals(MigrationStatus.COMPLETED, o.src.status(), () -> o.src.info().errorDesc());
        }
    }

    record Outcome(SourceMigration src, DestinationMigration dst) {
    }

    private static Outcome migrate(TestVm s, TestVm d, MigrationCapabilities caps) throws Exception {
        DestinationMigration dst = new DestinationMigration(d.machine(), transports, caps, MigrationEventSink.NONE, true);
        String bound = dst.listen("tcp:127.0.0.1:0");
        SourceMigration src = new SourceMigration(s.machine(), transports,
                MigrationParameters.defaults().withMaxBandwidth(0), caps, MigrationEventSink.NONE);
        src.start(bound);
        src.await(Duration.ofSeconds(30));
        dst.await(Duration.ofSeconds(10));
        return new Outcome(src, dst);
    }

    @Test
    void aRollbackThatFailsIsPartOfTheMigrationsError() throws Exception {
        try (TestVm s = TestVm.builder("src").ram(16 << 10).running().build()) {
            s.machine().migration().addNotifier(e -> {
                if (e == MigrationEvent.FAILED) {
                    throw new MigrationException("dev0: SET MIG_DEVICE_STATE PRE_COPY->RUNNING: EIO; dev0 reset");
                }
            });
            SourceMigration src = new SourceMigration(s.machine(), transports, MigrationParameters.defaults(),
                    MigrationCapabilities.defaults(), MigrationEventSink.NONE);
            src.start("tcp:127.0.0.1:1");
            assertEquals(MigrationStatus.FAILED, src.await(Duration.ofSeconds(10)));
            String desc = src.info().errorDesc();
            assertTrue(desc.contains("tcp:127.0.0.1:1")
                    && desc.endsWith("; dev0: SET MIG_DEVICE_STATE PRE_COPY->RUNNING: EIO; dev0 reset"), desc);
        }
    }

    /** With a return path the source hears SHUT(1) and runs the guest: the destination must stop again. */
    @Test
    void aDestinationWhoseStartFailedDoesNotRun() throws Exception {
        try (TestVm s = TestVm.builder("src").ram(16 << 10).running().build();
             TestVm d = TestVm.builder("dst").ram(16 << 10).build()) {
            List<String> calls = new ArrayList<>();
            d.machine().addVmChangeStateHandler(new VmChangeStateHandler() {
                @Override
                public void onChange(boolean running, RunState state) throws VmStateChangeException {
                    calls.add(running + " " + state.qapiName());
                    if (running) {
                        throw new VmStateChangeException("dev0: SET MIG_DEVICE_STATE RESUMING->RUNNING: EINVAL");
                    }
                }
            }, 0);
            Outcome o = migrate(s, d, MigrationCapabilities.defaults());
            assertEquals(MigrationStatus.FAILED, o.dst.status());
            assertTrue(o.dst.errorDesc().startsWith("starting the VM after migration failed: dev0: SET MIG_DEVICE_STATE"
                    + " RESUMING->RUNNING: EINVAL") && o.dst.errorDesc().endsWith("the destination VM is stopped"
                    + " (internal-error), the source keeps the guest"), o.dst.errorDesc());
            assertEquals(RunState.INTERNAL_ERROR, d.machine().runState());
            assertEquals(List.of("true running", "false internal-error"), calls);
            assertFalse(d.cpus().running());
            assertEquals(MigrationStatus.FAILED, o.src.status());
            assertEquals(RunState.RUNNING, s.machine().runState());
        }
    }
}
