package dev.ferry.vhostuser.frontend;

import dev.ferry.core.device.DeviceConfigException;
import dev.ferry.core.device.DeviceOptions;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.testing.ByteArrayLoadStream;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.MultiQueueNet;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.guest.SoftMqNetDriver;
import dev.ferry.virtio.net.DgramBackend;
import dev.ferry.virtio.net.NetOptions;
import dev.ferry.virtio.net.VirtioNet;
import dev.ferry.virtio.net.peer.TrafficPeer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Multiqueue vhost-user-net ({@code queues} above 1) on Ferry's own back-end: negotiation (MQ
 * offered only with more than one pair, the control queue with any, a back-end serving too few
 * queues refused), and a
 * migration with traffic on both pairs — one flow per pair, checked by the guest and the peer.
 */
@Timeout(90)
class MultiQueueNetTest {
    static final byte[] MAC = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    @TempDir
    Path dir;

    static VhostUserBackend ferryNet(Path socket, InetSocketAddress peer, int pairs) throws Exception {
        return VhostUserBackend.serveNet(new NetOptions(MAC, 256, false),
                new DgramBackend(new InetSocketAddress("127.0.0.1", 0), peer), BackendOptions.server(socket), pairs);
    }

    static long features(VhostUserNet m) {
        return m.features();
    }

    @Test
    void mqIsOfferedOnlyWithMoreThanOnePairTheControlQueueAlways() throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend be = ferryNet(dir.resolve("a.sock"), (InetSocketAddress) peer.address(), 2)) {
            try (MqNetVm one = new MqNetVm("one", be.socket(), 1, false)) {
                long f = features(one.model());
                assertFalse(Virtio.has(f, VhostUserNet.F_MQ), Long.toHexString(f));
                assertTrue(Virtio.has(f, VirtioNet.F_CTRL_VQ), "the control queue, as QEMU: " + Long.toHexString(f));
                assertEquals(8, one.model().config().length);
                assertEquals(3, one.model().queueCount());
                assertEquals(3, one.model().stateVersion());
            }
            try (MqNetVm two = new MqNetVm("two", be.socket(), 2, false)) {
                long f = features(two.model());
                assertTrue(Virtio.has(f, VhostUserNet.F_MQ) && Virtio.has(f, VirtioNet.F_CTRL_VQ), Long.toHexString(f));
                byte[] c = two.model().config();
                assertEquals(10, c.length);
                assertEquals(2, (c[8] & 0xff) | (c[9] & 0xff) << 8, "max_virtqueue_pairs");
                assertEquals(5, two.model().queueCount(), "rx0 tx0 rx1 tx1 ctrl");
            }
        }
    }

    @Test
    void aBackEndServingFewerQueuesIsRefused() throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend be = ferryNet(dir.resolve("a.sock"), (InetSocketAddress) peer.address(), 2)) {
            DeviceConfigException e = assertThrows(DeviceConfigException.class,
                    () -> new MqNetVm("three", be.socket(), 3, false).close());
            assertTrue(e.getMessage().contains("3 queue pairs (6 queues) asked for")
                    && e.getMessage().contains("serves 4"), e.getMessage());
        }
    }

    @Test
    void queuesOutsideOneToEightIsAConfigError() {
        for (int q : new int[] {0, 9, 65536}) {
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("socket", dir.resolve("none.sock").toString());
            o.put("queues", q);
            DeviceConfigException e = assertThrows(DeviceConfigException.class,
                    () -> new VhostUserNetKind().validate(new DeviceOptions("devices[0]", o)));
            assertTrue(e.getMessage().contains("queues"), e.getMessage());
        }
    }

    /**
     * Issue 11: a stop takes the rings with GET_VRING_BASE alone, every TX ring before any RX
     * ring. A lone SET_VRING_ENABLE(0) on rx0 while tx0 still ran let testpmd take pair 0's frames
     * and drop them, having no RX ring to answer into.
     */
    @Test
    void aStopSendsGetVringBaseAloneTxRingsFirst() throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend be = ferryNet(dir.resolve("a.sock"), (InetSocketAddress) peer.address(), 2);
             MqNetVm vm = new MqNetVm("vm", be.socket(), 2, false)) {
            vm.machine.vmStart();
            SoftMqNetDriver.Progress p = vm.await(q -> q.pairs() == 2 && q.leastReceived() >= 4);
            assertTrue(p.pairs() == 2 && p.leastReceived() >= 4, p.toString());
            java.util.List<Integer> requests = new java.util.concurrent.CopyOnWriteArrayList<>();
            vm.model().withFrontend(f -> f.requestObserver(requests::add));
            vm.machine.vmStop(RunState.PAUSED);
            assertEquals(java.util.List.of(VhostUser.GET_VRING_BASE, VhostUser.GET_VRING_BASE, VhostUser.GET_VRING_BASE,
                    VhostUser.GET_VRING_BASE), requests, "the stop: GET_VRING_BASE per ring, no SET_VRING_ENABLE(0)");
            int[] order = new int[4];
            for (int k = 0; k < 4; k++) {
                order[k] = vm.model().stopOrder(k, 4);
            }
            assertEquals("[1, 3, 0, 2]", java.util.Arrays.toString(order), "tx0 tx1 rx0 rx1");
        }
    }

    /**
     * The control queue, driven by a hand-written (hostile) driver: VQ_PAIRS_SET within 1..N is
     * OK and enables or disables exactly the pairs that change at the back-end; 0, N+1, 0xffff,
     * a wrong data length or another class is ERR and changes nothing; a request without its ack
     * byte sets NEEDS_RESET.
     */
    @Test
    void vqPairsSetIsBoundedAndEnablesExactlyTheChangedPairs() throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend be = ferryNet(dir.resolve("a.sock"), (InetSocketAddress) peer.address(), 2);
             MqNetVm vm = new MqNetVm("vm", be.socket(), 2, false, false)) {
            vm.machine.vmStart();
            java.util.concurrent.atomic.AtomicInteger enables = new java.util.concurrent.atomic.AtomicInteger();
            vm.model().withFrontend(f -> f.requestObserver(r -> {
                if (r == VhostUser.SET_VRING_ENABLE) {
                    enables.incrementAndGet();
                }
            }));
            CtrlDriver d = new CtrlDriver(vm, 2);
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (!Boolean.TRUE.equals(vm.vun().get("rings-running")) && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            assertEquals(Boolean.TRUE, vm.vun().get("rings-running"), vm.vun().toString());
            assertEquals(2, enables.getAndSet(0), "the start enables rx0 and tx0 only: pair 1 is set up, disabled");
            assertEquals(1, vm.model().enabledPairs());
            assertEquals(0, d.command(4, 0, 2, 0), "VQ_PAIRS_SET 2");
            assertEquals(2, vm.model().enabledPairs());
            assertEquals(2, enables.getAndSet(0), "rx1 and tx1 enabled");
            for (byte[] bad : new byte[][] {{0, 0}, {3, 0}, {(byte) 0xff, (byte) 0xff}, {1}, {1, 0, 0}}) {
                assertEquals(1, d.command(4, 0, bad), "VQ_PAIRS_SET " + java.util.Arrays.toString(bad));
            }
            assertEquals(1, d.command(0, 0, 1), "RX class: CTRL_RX not negotiated");
            assertEquals(1, d.command(4, 1, 1, 0), "MQ command 1: not served");
            assertEquals(2, vm.model().enabledPairs(), "refused requests change nothing");
            assertEquals(0, enables.get(), "refused requests send nothing to the back-end");
            assertEquals(0, d.command(4, 0, 1, 0), "VQ_PAIRS_SET 1");
            assertEquals(1, vm.model().enabledPairs());
            assertEquals(2, enables.getAndSet(0), "rx1 and tx1 disabled");
            // SET_VRING_ENABLE fails (the back-end goes as it is sent): ERR, the back-end is dropped
            vm.model().withFrontend(f -> f.requestObserver(r -> {
                if (r == VhostUser.SET_VRING_ENABLE) {
                    enables.incrementAndGet();
                    be.close();
                }
            }));
            assertEquals(1, d.command(4, 0, 2, 0), "VQ_PAIRS_SET 2, the back-end failing");
            assertEquals(1, enables.getAndSet(0));
            assertEquals(2, vm.model().enabledPairs(), "kept for the next back-end's start");
            assertEquals(Boolean.FALSE, vm.vun().get("connected"), vm.vun().toString());
            assertEquals(Boolean.FALSE, vm.vun().get("rings-running"), vm.vun().toString());
            // the back-end gone: the count is kept for the next start, nothing is sent now
            assertEquals(0, d.command(4, 0, 1, 0), "VQ_PAIRS_SET 1 with the back-end gone");
            assertEquals(1, vm.model().enabledPairs());
            assertEquals(0, enables.get());
            assertEquals(0, vm.machine.mmio().read(vm.nic.transport().base() + 0x070, 4) & Virtio.STATUS_NEEDS_RESET);
            d.noAck();
            deadline = System.nanoTime() + 5_000_000_000L;
            while ((vm.machine.mmio().read(vm.nic.transport().base() + 0x070, 4) & Virtio.STATUS_NEEDS_RESET) == 0
                    && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            assertTrue((vm.machine.mmio().read(vm.nic.transport().base() + 0x070, 4) & Virtio.STATUS_NEEDS_RESET) != 0,
                    "a control request without an ack byte: NEEDS_RESET");
            vm.machine.mmio().write(vm.nic.transport().base() + 0x070, 4, 0);
            deadline = System.nanoTime() + 5_000_000_000L;
            while (vm.model().enabledPairs() != 1 && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            assertEquals(1, vm.model().enabledPairs(), "a reset: one pair");
            vm.machine.vmStop(RunState.PAUSED);
        }
    }

    /** A state naming more enabled pairs than this NIC has is refused, naming both counts. */
    @Test
    void aStateWithMorePairsThanConfiguredIsRefused() throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend be = ferryNet(dir.resolve("a.sock"), (InetSocketAddress) peer.address(), 2);
             MqNetVm vm = new MqNetVm("vm", be.socket(), 2, true)) {
            dev.ferry.virtio.net.NetState control = VhostUserNetControlTest.control(MAC,
                    dev.ferry.virtio.net.NetConfig.S_LINK_UP, true);
            MigrationException e = assertThrows(MigrationException.class, () -> vm.model().load(
                    new ByteArrayLoadStream(VhostUserNetControlTest.state(3, MAC, control)), 3));
            assertTrue(e.getMessage().contains("the source enabled 3 queue pairs; this NIC has 2"), e.getMessage());
            assertThrows(MigrationException.class, () -> vm.model().load(
                    new ByteArrayLoadStream(VhostUserNetControlTest.state(0, MAC, control)), 3));
            vm.model().load(new ByteArrayLoadStream(VhostUserNetControlTest.state(2, MAC, control)), 3);
            assertEquals(1, vm.model().enabledPairs(), "kept aside until the load commits");
            vm.model().commitLoad();
            assertEquals(2, vm.model().enabledPairs());
        }
    }

    /**
     * Two pairs, traffic on both, migrated between two Ferry back-ends: RAM equal at switchover
     * (both back-ends' rings logged), the destination restores two enabled pairs and every flow
     * goes on; no flow sees a duplicate or reordering (guest and peer), no frame lands on another
     * pair's rx queue, and each back-end carried frames on both pairs.
     */
    @Test
    void migratesWithTrafficOnBothPairs() throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend a = ferryNet(dir.resolve("a.sock"), (InetSocketAddress) peer.address(), 2);
             VhostUserBackend b = ferryNet(dir.resolve("b.sock"), (InetSocketAddress) peer.address(), 2);
             MqNetVm src = new MqNetVm("src", a.socket(), 2, false)) {
            src.machine.vmStart();
            SoftMqNetDriver.Progress before = src.await(p -> p.pairs() == 2 && p.leastReceived() >= 32);
            assertEquals(2, before.pairs(), before.toString());
            assertTrue(before.leastReceived() >= 32, before.toString());
            assertEquals(2, src.model().enabledPairs());
            byte[] stream = InMemoryMigration.save(src.machine);
            long srcDigest = src.machine.memory().digest();
            SoftMqNetDriver.Progress atSwitchover = src.driver.progress();
            for (int f = 0; f < 2; f++) { // the counts migrate with the guest: tell the source's apart
                assertEquals(0, atSwitchover.flows()[f].misdelivered(), "on the source: " + atSwitchover);
            }
            MultiQueueNet am = (MultiQueueNet) a.model();
            assertTrue(am.txFrames(0) > 0 && am.txFrames(1) > 0 && am.rxFrames(0) > 0 && am.rxFrames(1) > 0,
                    "source back-end: " + describe(a));
            assertTrue(a.stats().logAllSeen() && a.stats().loggedWrites() > 0, a.stats().toString());
            try (MqNetVm dst = new MqNetVm("dst", b.socket(), 2, true)) {
                InMemoryMigration.Incoming in = InMemoryMigration.load(dst.machine, stream);
                assertEquals(MigrationStatus.COMPLETED, in.status(), in.toString());
                assertEquals(srcDigest, in.memoryDigest().longValue(), "RAM equal at switchover");
                assertEquals(2, dst.model().enabledPairs(), "the enabled pairs came with the state");
                SoftMqNetDriver.Progress now = dst.await(p -> p.flows().length == 2
                        && p.flows()[0].received() >= atSwitchover.flows()[0].received() + 64
                        && p.flows()[1].received() >= atSwitchover.flows()[1].received() + 64);
                for (int f = 0; f < 2; f++) {
                    assertTrue(now.flows()[f].received() >= atSwitchover.flows()[f].received() + 64,
                            "flow " + f + ": " + atSwitchover + " -> " + now);
                    assertEquals(0, now.flows()[f].dups(), now.toString());
                    assertEquals(0, now.flows()[f].misdelivered(), "on the destination: " + now + "; back-end "
                            + describe(b));
                    TrafficPeer.FlowStats ps = peer.flow(MAC, f);
                    assertEquals(0, ps.dupsOrReorders(), "peer, flow " + f + ": " + peer.report());
                    assertTrue(ps.received() >= now.flows()[f].received(), peer.report());
                }
                assertEquals(0, now.errors(), now.toString());
                MultiQueueNet bm = (MultiQueueNet) b.model();
                assertTrue(bm.txFrames(0) > 0 && bm.txFrames(1) > 0 && bm.rxFrames(0) > 0 && bm.rxFrames(1) > 0,
                        "destination back-end: " + describe(b));
                dst.machine.vmStop(RunState.PAUSED);
            }
        }
    }

    /**
     * A driver that does not take MQ (Ferry's single-queue {@code SoftNetDriver}) on a two-pair
     * NIC: it finds the control queue at 2 and uses pair 0 only; the back-end gets rings 0 and 1,
     * so its pair 1 carries nothing, and the peer's replies come back in order.
     */
    @Test
    void aDriverWithoutMqUsesPairZeroAndTheControlQueueAtTwo() throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend be = ferryNet(dir.resolve("a.sock"), (InetSocketAddress) peer.address(), 2);
             MqNetVm vm = new MqNetVm("vm", be.socket(), 2, false, false)) {
            dev.ferry.virtio.guest.SoftNetDriver driver = new dev.ferry.virtio.guest.SoftNetDriver(
                    vm.machine.deviceMemory(), 48L << 20, vm.machine.mmio(), vm.nic.transport().base(), vm.irqchip,
                    vm.nic.transport().irq().gsi(), 16, 128);
            ((dev.ferry.core.cpu.soft.SoftCpuEngine) vm.machine.cpus()).addProgram("nic0", driver);
            vm.machine.vmStart();
            long deadline = System.nanoTime() + 20_000_000_000L;
            dev.ferry.virtio.guest.NetDriverArea.Progress p = driver.area().progress();
            while ((p.txCompleted() < 64 || p.rxFrames() < 64) && p.errors() == 0 && System.nanoTime() < deadline) {
                Thread.sleep(10);
                p = driver.area().progress();
            }
            assertTrue(p.txCompleted() >= 64 && p.rxFrames() >= 64, p.toString());
            assertEquals(0, p.errors(), p.toString());
            assertEquals(0, peer.flow(MAC).dupsOrReorders(), peer.report());
            MultiQueueNet m = (MultiQueueNet) be.model();
            assertTrue(m.txFrames(0) >= 64 && m.rxFrames(0) >= 64, describe(be).toString());
            assertEquals(0, m.txFrames(1) + m.rxFrames(1), describe(be).toString());
            assertEquals(1, vm.model().enabledPairs());
            vm.machine.vmStop(RunState.PAUSED);
        }
    }

    static Map<String, Object> describe(VhostUserBackend b) {
        Map<String, Object> m = new LinkedHashMap<>();
        b.model().describe(m);
        return m;
    }
}
