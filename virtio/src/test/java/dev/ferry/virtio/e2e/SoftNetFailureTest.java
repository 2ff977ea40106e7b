package dev.ferry.virtio.e2e;

import dev.ferry.core.machine.RunState;
import dev.ferry.core.machine.VmChangeStateHandler;
import dev.ferry.core.machine.VmStateChangeException;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.core.testing.FdLeakCheck;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.testing.FaultyDevice;
import dev.ferry.migration.testing.FaultyDevice.Phase;
import dev.ferry.migration.transport.NettyMigrationTransports;
import dev.ferry.virtio.guest.NetDriverArea;
import dev.ferry.virtio.net.peer.TrafficPeer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Failure is safe for a NIC: with the guest's traffic running, a migration that fails or is
 * cancelled in any phase — setup, iteration, after the source VM stopped, when the destination
 * cannot start, or when the destination dies mid-stream — leaves the source's NIC working: the
 * peer still sends to the source and sees its traffic go on with nothing duplicated, reordered or
 * lost; no announce was sent by anyone (the source never announces, the destination never ran);
 * the destination's NIC sent nothing. Migrations go over TCP with the return path.
 */
@Timeout(120)
class SoftNetFailureTest {
    static NettyMigrationTransports transports;

    record Outcome(SourceMigration out, DestinationMigration in, NetDriverArea.Progress atFault) {
    }

    record Setup(Phase sourceFails, Phase hookAt, Consumer<SoftNetVm> hook, Consumer<SoftNetVm> destination) {
        static Setup failing(Phase p) {
            return new Setup(p, p, d -> { }, d -> { });
        }
    }

    @BeforeAll
    static void warmUp() throws Exception {
        transports = new NettyMigrationTransports();
        // every Netty loop and lazily opened JDK file exists before the case that counts fds
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0))) {
            for (int i = 0; i < 2; i++) {
                try (SoftNetVm src = new SoftNetVm("warm-src", peer.port(), false, true);
                     SoftNetVm dst = new SoftNetVm("warm-dst", peer.port(), true, true)) {
                    src.machine.vmStart();
                    src.runFor(100);
                    AtomicReference<SourceMigration> ref = new AtomicReference<>();
                    Outcome o = migrate(src, dst, Setup.failing(Phase.NONE), cancelAtFirstPass(ref, new AtomicBoolean()),
                            ref);
                    assertEquals(MigrationStatus.CANCELLED, o.out.status(), () -> o.out.info().errorDesc());
                }
            }
        }
    }

    @AfterAll
    static void closeTransports() {
        transports.close();
    }

    @Test
    void saveSetupFails() throws Exception {
        assertSourceKeepsTheNic(Setup.failing(Phase.SAVE_SETUP), MigrationEventSink.NONE, null, MigrationStatus.FAILED,
                "fault-dev: injected failure in SAVE_SETUP");
    }

    @Test
    void cancelWhileActive() throws Exception {
        AtomicReference<SourceMigration> ref = new AtomicReference<>();
        AtomicBoolean running = new AtomicBoolean();
        FdLeakCheck fds = FdLeakCheck.start();
        assertSourceKeepsTheNic(Setup.failing(Phase.NONE), cancelAtFirstPass(ref, running), ref,
                MigrationStatus.CANCELLED, "cancelled by the user");
        assertTrue(running.get(), "the cancel came in the active phase, with the source VM running");
        for (int i = 0; i < 40 && !fds.leaked().isEmpty(); i++) {
            Thread.sleep(50);
        }
        fds.assertNoLeaks();
    }

    @Test
    void sourceFailsAfterTheVmStopped() throws Exception {
        assertSourceKeepsTheNic(Setup.failing(Phase.SAVE_COMPLETE), MigrationEventSink.NONE, null,
                MigrationStatus.FAILED, "fault-dev: injected failure in SAVE_COMPLETE");
    }

    /** Everything loaded, but the destination's start fails: the source takes the guest back and does not announce. */
    @Test
    void destinationFailsToStart() throws Exception {
        Consumer<SoftNetVm> failingStart = d -> d.machine.addVmChangeStateHandler(new VmChangeStateHandler() {
            @Override
            public void onChange(boolean running, RunState state) throws VmStateChangeException {
                if (running) {
                    throw new VmStateChangeException("disk0: cannot activate the image (EBUSY)");
                }
            }
        }, 0);
        Outcome o = assertSourceKeepsTheNic(new Setup(Phase.NONE, Phase.SAVE_COMPLETE, d -> { }, failingStart),
                MigrationEventSink.NONE, null, MigrationStatus.FAILED, "the destination failed to load");
        assertTrue(o.in.errorDesc().startsWith("starting the VM after migration failed"), o.in.errorDesc());
    }

    @Test
    void destinationDiesMidStream() throws Exception {
        assertSourceKeepsTheNic(new Setup(Phase.NONE, Phase.SAVE_ITERATE, SoftNetVm::close, d -> { }),
                MigrationEventSink.NONE, null, MigrationStatus.FAILED, "tcp:127.0.0.1:");
    }

    private Outcome assertSourceKeepsTheNic(Setup setup, MigrationEventSink events,
                                            AtomicReference<SourceMigration> ref, MigrationStatus expected,
                                            String reason) throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             SoftNetVm src = new SoftNetVm("src", peer.port(), false, true);
             SoftNetVm dst = new SoftNetVm("dst", peer.port(), true, true)) {
            src.machine.vmStart();
            src.runFor(300);
            String srcPort = src.peerPortName();
            Outcome o = migrate(src, dst, setup, events, ref);
            SourceMigration out = o.out;
            assertEquals(expected, out.status(), () -> "source: " + out.info().errorDesc() + "; destination: "
                    + o.in.status().qapiName() + " " + o.in.errorDesc());
            String desc = out.info().errorDesc();
            assertNotNull(desc);
            assertTrue(desc.contains(reason), "reason '" + reason + "' in: " + desc);
            assertNotNull(o.atFault, "the fault hook ran");

            // The destination never ran: its NIC sent nothing, the peer never heard of it.
            assertNotEquals(RunState.RUNNING, dst.machine.runState());
            Map<String, Object> dstNet = dst.net();
            assertEquals(0L, dstNet.get("tx-frames"), "the destination sent nothing: " + dstNet);
            assertEquals(0L, dstNet.get("rarps-sent"), "the destination never announced: " + dstNet);

            // The source runs on: the peer sends to it, traffic continues, nobody announced.
            assertEquals(RunState.RUNNING, src.machine.runState());
            src.runFor(300);
            src.machine.vmStop(RunState.PAUSED);
            assertEquals(srcPort, peer.portOf(SoftNetVm.MAC), "the peer still sends to the source");
            assertTrue(peer.announces().isEmpty(), "no announce: " + peer.announces());
            assertEquals(0L, src.net().get("rarps-sent"), "the source did not announce");
            assertEquals(0L, src.net().get("guest-announces"));
            TrafficPeer.FlowStats flow = peer.flow(SoftNetVm.MAC);
            assertEquals(0, flow.dupsOrReorders(), flow.toString());
            assertEquals(0, flow.lost(), "guest frames lost: " + flow.gaps());
            assertTrue(flow.lastSeq() > o.atFault.lastSentSeq(), "the peer saw the source's traffic go on");
            NetDriverArea.Progress p = src.progress();
            assertEquals(0, p.errors(), () -> "driver errors: " + p);
            assertEquals(0, p.peerDups(), () -> "duplicate/reordered replies: " + p);
            long droppedAtStop = (Long) src.net().get("rx-dropped-at-stop");
            assertTrue(p.peerLost() <= droppedAtStop, "replies lost " + p.peerLost() + " (" + p.gaps()
                    + "), more than the " + droppedAtStop + " frame(s) the device held when the VM stopped");
            System.out.printf("%s: peer->guest lost %d, guest->peer lost 0, announces 0%n", reason, p.peerLost());
            return o;
        }
    }

    private static Outcome migrate(SoftNetVm src, SoftNetVm dst, Setup setup, MigrationEventSink events,
                                   AtomicReference<SourceMigration> ref) throws Exception {
        AtomicReference<NetDriverArea.Progress> atFault = new AtomicReference<>();
        src.machine.migration().registerLive(new FaultyDevice(setup.sourceFails(), setup.hookAt(), () -> {
            atFault.set(src.progress());
            setup.hook().accept(dst);
        }), MigrationPriority.DEVICE);
        dst.machine.migration().registerLive(FaultyDevice.healthy(), MigrationPriority.DEVICE);
        setup.destination().accept(dst);
        MigrationEventSink sink = new MigrationEventSink() {
            @Override
            public void status(MigrationStatus s) {
                events.status(s);
            }

            @Override
            public void pass(long pass) {
                if (atFault.get() == null && ref != null) {
                    atFault.set(src.progress());
                }
                events.pass(pass);
            }
        };
        DestinationMigration d = new DestinationMigration(dst.machine, transports, MigrationCapabilities.defaults(),
                MigrationEventSink.NONE, true);
        String bound = d.listen("tcp:127.0.0.1:0");
        SourceMigration s = new SourceMigration(src.machine, transports,
                MigrationParameters.defaults().withMaxBandwidth(0), MigrationCapabilities.defaults(), sink);
        if (ref != null) {
            ref.set(s);
        }
        s.start(bound);
        s.await(Duration.ofSeconds(60));
        try {
            d.await(Duration.ofSeconds(20));
        } catch (TimeoutException e) {
            d.abort();
            d.await(Duration.ofSeconds(20));
        }
        return new Outcome(s, d, atFault.get());
    }

    private static MigrationEventSink cancelAtFirstPass(AtomicReference<SourceMigration> ref, AtomicBoolean running) {
        return new MigrationEventSink() {
            private final AtomicBoolean done = new AtomicBoolean();

            @Override
            public void status(MigrationStatus s) {
            }

            @Override
            public void pass(long pass) {
                if (done.compareAndSet(false, true)) {
                    SourceMigration s = ref.get();
                    running.set(s.status() == MigrationStatus.ACTIVE);
                    s.cancel();
                }
            }
        };
    }
}
