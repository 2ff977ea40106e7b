package dev.ferry.vhostuser.frontend;

import dev.ferry.core.cpu.soft.SoftCpuEngine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.testing.ByteArrayLoadStream;
import dev.ferry.core.testing.ByteArraySaveStream;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.guest.NetDriverArea;
import dev.ferry.virtio.guest.SoftNetDriver;
import dev.ferry.virtio.net.AnnounceTimer;
import dev.ferry.virtio.net.DgramBackend;
import dev.ferry.virtio.net.NetConfig;
import dev.ferry.virtio.net.NetControl;
import dev.ferry.virtio.net.NetOptions;
import dev.ferry.virtio.net.NetState;
import dev.ferry.virtio.net.RxFilter;
import dev.ferry.virtio.net.VirtioNet;
import dev.ferry.virtio.net.peer.TrafficPeer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The single-pair vhost-user-net NIC's control queue, which the front-end serves as QEMU's does:
 * what is offered (and what the back-end is told), every command good and bad, the control state
 * across a migration (round trip and refused loads), and the announce after a migration — by the
 * guest itself with GUEST_ANNOUNCE (no SEND_RARP), by the back-end's SEND_RARP without it.
 */
@Timeout(120)
class VhostUserNetControlTest {
    static final byte[] MAC = MultiQueueNetTest.MAC;
    static final byte[] NEW_MAC = {0x52, 0x54, 0x00, (byte) 0xab, (byte) 0xcd, (byte) 0xef};
    static final long CTRL_FEATURES = Virtio.bit(VirtioNet.F_CTRL_VQ) | Virtio.bit(VirtioNet.F_CTRL_RX)
            | Virtio.bit(VirtioNet.F_CTRL_MAC_ADDR);
    @TempDir
    Path dir;

    /** Ferry's single-pair back-end; {@code guestAnnounce}: it offers GUEST_ANNOUNCE, as DPDK does. */
    static VhostUserBackend ferryNet(Path socket, InetSocketAddress peer, boolean guestAnnounce) {
        return ferryNet(socket, peer, guestAnnounce, 1);
    }

    /** The same with {@code pairs} queue pairs (more than one: {@code MultiQueueNet}). */
    static VhostUserBackend ferryNet(Path socket, InetSocketAddress peer, boolean guestAnnounce, int pairs) {
        return VhostUserBackend.serveNet(new NetOptions(MAC, 256, guestAnnounce),
                new DgramBackend(new InetSocketAddress("127.0.0.1", 0), peer), BackendOptions.server(socket), pairs);
    }

    static void await(BooleanSupplier done, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (!done.getAsBoolean() && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
        assertTrue(done.getAsBoolean(), what);
    }

    static long number(MqNetVm vm, String key) {
        return ((Number) vm.vun().get(key)).longValue();
    }

    static boolean needsReset(MqNetVm vm) {
        return (vm.machine.mmio().read(vm.nic.transport().base() + 0x070, 4) & Virtio.STATUS_NEEDS_RESET) != 0;
    }

    @Test
    void oneQueuePairOffersTheControlQueueAndGuestAnnounceOnlyWhenTheBackEndDoes() throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend with = ferryNet(dir.resolve("a.sock"), (InetSocketAddress) peer.address(), true);
             VhostUserBackend without = ferryNet(dir.resolve("b.sock"), (InetSocketAddress) peer.address(), false)) {
            try (MqNetVm vm = new MqNetVm("a", with.socket(), 1, false, false)) {
                long f = vm.model().features();
                assertEquals(CTRL_FEATURES, f & CTRL_FEATURES, Long.toHexString(f));
                assertTrue(Virtio.has(f, VirtioNet.F_GUEST_ANNOUNCE), Long.toHexString(f));
                assertFalse(Virtio.has(f, VhostUserNet.F_MQ), Long.toHexString(f));
                assertEquals(3, vm.model().queueCount(), "rx0 tx0 ctrl");
                assertEquals(8, vm.model().config().length);
                assertEquals(3, vm.model().stateVersion());
                // The back-end is told GUEST_ANNOUNCE (it offered it), never the front-end's own bits.
                vm.machine.vmStart();
                long own = CTRL_FEATURES | Virtio.bit(VirtioNet.F_MAC) | Virtio.bit(VirtioNet.F_STATUS);
                new CtrlDriver(vm, Virtio.bit(Virtio.F_VERSION_1) | own | Virtio.bit(VirtioNet.F_GUEST_ANNOUNCE), 2);
                await(() -> Boolean.TRUE.equals(vm.vun().get("rings-running")), "rings running: " + vm.vun());
                long acked = with.stats().features();
                assertEquals(0, acked & own, Long.toHexString(acked));
                assertTrue(Virtio.has(acked, VirtioNet.F_GUEST_ANNOUNCE), Long.toHexString(acked));
                vm.machine.vmStop(RunState.PAUSED);
            }
            try (MqNetVm vm = new MqNetVm("b", without.socket(), 1, false, false)) {
                long f = vm.model().features();
                assertEquals(CTRL_FEATURES, f & CTRL_FEATURES, Long.toHexString(f));
                assertFalse(Virtio.has(f, VirtioNet.F_GUEST_ANNOUNCE), "QEMU offers it only when the back-end does");
            }
        }
    }

    /**
     * A driver that acks neither CTRL_VQ nor anything else of the control queue readies rings 0
     * and 1 only: they start at the back-end, nothing watches a control queue, no NEEDS_RESET.
     */
    @Test
    void aDriverWithoutTheControlQueueRunsOnRingsZeroAndOne() throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend be = ferryNet(dir.resolve("a.sock"), (InetSocketAddress) peer.address(), true);
             MqNetVm vm = new MqNetVm("vm", be.socket(), 1, false, false)) {
            vm.machine.vmStart();
            new CtrlDriver(vm, Virtio.bit(Virtio.F_VERSION_1), 1);
            await(() -> Boolean.TRUE.equals(vm.vun().get("rings-running")), "rings running: " + vm.vun());
            assertEquals(0, be.stats().baseSet(0), be.stats().toString());
            assertEquals(0, be.stats().baseSet(1), be.stats().toString());
            assertEquals(-1, be.stats().baseSet(2), "the back-end never gets the control queue");
            assertFalse(needsReset(vm));
            assertEquals(Virtio.bit(Virtio.F_VERSION_1), be.stats().features() & ~(1L << 30 | 1L << 26));
            vm.machine.vmStop(RunState.PAUSED);
        }
    }

    /**
     * Every command of a single-pair NIC, good and bad, from a hand-written driver: RX mode,
     * MAC_ADDR_SET (the config's MAC follows), MAC_TABLE_SET, ANNOUNCE ACK with nothing raised,
     * MQ without MQ, an unknown class, wrong lengths, counts past the data, data above 1024
     * bytes: OK or ERR, and ERR changes nothing. Then hostile chains: NEEDS_RESET, and a reset
     * puts the MAC and the filter back.
     */
    @Test
    void theControlCommandsAnswerOkOrErrAndHostileChainsNeedAReset() throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend be = ferryNet(dir.resolve("a.sock"), (InetSocketAddress) peer.address(), true);
             MqNetVm vm = new MqNetVm("vm", be.socket(), 1, false, false)) {
            vm.machine.vmStart();
            CtrlDriver d = new CtrlDriver(vm, Virtio.bit(Virtio.F_VERSION_1) | CTRL_FEATURES
                    | Virtio.bit(VirtioNet.F_GUEST_ANNOUNCE), 2);
            int ok = NetControl.OK;
            int err = NetControl.ERR;
            // RX mode
            assertEquals(Boolean.TRUE, vm.vun().get("promisc"), "promiscuous at power-on");
            assertEquals(ok, d.command(NetControl.CLASS_RX, NetControl.RX_PROMISC, 0));
            assertEquals(Boolean.FALSE, vm.vun().get("promisc"));
            assertEquals(err, d.command(NetControl.CLASS_RX, NetControl.RX_PROMISC, 1, 1), "two data bytes");
            assertEquals(err, d.command(NetControl.CLASS_RX, NetControl.RX_PROMISC), "no data");
            assertEquals(err, d.command(NetControl.CLASS_RX, NetControl.RX_ALLUNI, 1), "CTRL_RX_EXTRA not offered");
            assertEquals(Boolean.FALSE, vm.vun().get("promisc"), "refused commands change nothing");
            assertEquals(ok, d.command(NetControl.CLASS_RX, NetControl.RX_ALLMULTI, 1));
            // MAC address: the config follows
            assertEquals(ok, d.command(NetControl.CLASS_MAC, NetControl.MAC_ADDR_SET, NEW_MAC));
            assertArrayEquals(NEW_MAC, configMac(d));
            assertArrayEquals(NEW_MAC, vm.model().mac());
            assertEquals(err, d.command(NetControl.CLASS_MAC, NetControl.MAC_ADDR_SET, Arrays.copyOf(MAC, 5)));
            assertEquals(err, d.command(NetControl.CLASS_MAC, NetControl.MAC_ADDR_SET, Arrays.copyOf(MAC, 7)));
            assertArrayEquals(NEW_MAC, configMac(d), "refused MAC_ADDR_SET changes nothing");
            // MAC table: le32 n | n macs | le32 m | m macs, exactly
            assertEquals(ok, d.command(NetControl.CLASS_MAC, NetControl.MAC_TABLE_SET, table(1, 2)));
            assertEquals(3L, number(vm, "mac-table-entries"));
            assertEquals(err, d.command(NetControl.CLASS_MAC, NetControl.MAC_TABLE_SET,
                    Arrays.copyOf(table(1, 2), table(1, 2).length - 1)), "one byte short");
            assertEquals(err, d.command(NetControl.CLASS_MAC, NetControl.MAC_TABLE_SET,
                    Arrays.copyOf(table(1, 2), table(1, 2).length + 1)), "one byte over");
            byte[] huge = table(0, 0);
            ByteBuffer.wrap(huge).order(ByteOrder.LITTLE_ENDIAN).putInt(0, 0x7fffffff);
            assertEquals(err, d.command(NetControl.CLASS_MAC, NetControl.MAC_TABLE_SET, huge), "n past the data");
            ByteBuffer.wrap(huge).order(ByteOrder.LITTLE_ENDIAN).putInt(0, 0).putInt(4, -1);
            assertEquals(err, d.command(NetControl.CLASS_MAC, NetControl.MAC_TABLE_SET, huge), "m = 0xffffffff");
            assertEquals(err, d.command(NetControl.CLASS_MAC, NetControl.MAC_TABLE_SET, new byte[7]), "under 8 bytes");
            assertEquals(err, d.command(NetControl.CLASS_MAC, NetControl.MAC_TABLE_SET,
                    new byte[NetControl.MAX_DATA + 1]), "above 1024 bytes");
            assertEquals(3L, number(vm, "mac-table-entries"), "refused tables change nothing");
            assertEquals(ok, d.command(NetControl.CLASS_MAC, NetControl.MAC_TABLE_SET, table(65, 0)));
            assertEquals(0L, number(vm, "mac-table-entries"), "65 unicast entries overflow: none kept");
            // announce, MQ, unknown classes
            assertEquals(err, d.command(NetControl.CLASS_ANNOUNCE, NetControl.ANNOUNCE_ACK), "no announce raised");
            assertEquals(err, d.command(NetControl.CLASS_MQ, NetControl.MQ_VQ_PAIRS_SET, 1, 0), "MQ not negotiated");
            assertEquals(err, d.command(NetControl.CLASS_VLAN, 0, 1, 0));
            assertEquals(err, d.command(0xff, 0xff));
            assertEquals(1, vm.model().enabledPairs());
            assertEquals(20L, number(vm, "ctrl-commands"), vm.vun().toString());
            assertEquals(15L, number(vm, "ctrl-errors"), vm.vun().toString());
            assertFalse(needsReset(vm));
            // hostile chains
            d.shortHeader();
            await(() -> needsReset(vm), "a request without its command byte: NEEDS_RESET");
            vm.machine.mmio().write(vm.nic.transport().base() + 0x070, 4, 0);
            await(() -> Arrays.equals(vm.model().mac(), MAC) && Boolean.TRUE.equals(vm.vun().get("promisc")),
                    "a reset puts the configured MAC and promiscuous mode back: " + vm.vun());
            assertEquals(0L, number(vm, "mac-table-entries"));
            d = new CtrlDriver(vm, Virtio.bit(Virtio.F_VERSION_1) | CTRL_FEATURES, 2);
            assertEquals(ok, d.command(NetControl.CLASS_RX, NetControl.RX_PROMISC, 0));
            assertEquals(err, d.command(NetControl.CLASS_ANNOUNCE, NetControl.ANNOUNCE_ACK),
                    "GUEST_ANNOUNCE not negotiated");
            d.noAck();
            MqNetVm v = vm;
            await(() -> needsReset(v), "a request without an ack byte: NEEDS_RESET");
            vm.machine.mmio().write(vm.nic.transport().base() + 0x070, 4, 0);
            d = new CtrlDriver(vm, Virtio.bit(Virtio.F_VERSION_1) | CTRL_FEATURES, 2);
            d.requestAt(1L << 40, 3);
            await(() -> needsReset(v), "a request outside guest RAM: NEEDS_RESET");
            vm.machine.mmio().write(vm.nic.transport().base() + 0x070, 4, 0);
            d = new CtrlDriver(vm, Virtio.bit(Virtio.F_VERSION_1) | CTRL_FEATURES, 2);
            assertEquals(ok, d.command(NetControl.CLASS_RX, NetControl.RX_PROMISC, 0),
                    "the control queue serves on after the driver's reset");
            vm.machine.vmStop(RunState.PAUSED);
        }
    }

    static byte[] configMac(CtrlDriver d) {
        byte[] m = new byte[6];
        for (int i = 0; i < 6; i++) {
            m[i] = (byte) d.config(NetConfig.MAC_OFFSET + i);
        }
        return m;
    }

    /** MAC_TABLE_SET data with {@code uni} unicast and {@code multi} multicast entries. */
    static byte[] table(int uni, int multi) {
        ByteBuffer b = ByteBuffer.allocate(8 + 6 * (uni + multi)).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(uni);
        for (int i = 0; i < uni; i++) {
            b.put(new byte[] {0x02, 0, 0, 0, (byte) (i >> 8), (byte) i});
        }
        b.putInt(multi);
        for (int i = 0; i < multi; i++) {
            b.put(new byte[] {0x01, 0, 0x5e, 0, 0, (byte) i});
        }
        return b.array();
    }

    /** The device part of a state: no back-end state, {@code pairs}, the configured MAC, then {@code control}. */
    static byte[] state(int pairs, byte[] configured, NetState control) throws Exception {
        ByteArraySaveStream out = new ByteArraySaveStream();
        out.putU8(0);
        out.putBe16(pairs);
        out.putBytes(configured, 0, 6);
        control.save(out, true);
        return out.toByteArray();
    }

    static NetState control(byte[] mac, int status, boolean promisc) {
        RxFilter f = new RxFilter();
        NetState s = NetState.of(mac, status, f);
        return new NetState(s.mac(), s.status(), promisc, true, false, false, false, false, false, false, s.table(),
                0, 0);
    }

    /**
     * The control state loads (and only commits with the load) and a bad one is refused with the
     * reason: pairs out of range, another configured MAC, a multicast MAC, a status without
     * LINK_UP or with unknown bits, a table above 64 entries, a truncated state, an old version.
     * The config must then carry the state's MAC.
     */
    @Test
    void theControlStateLoadsAndBadStatesAreRefused() throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend be = ferryNet(dir.resolve("a.sock"), (InetSocketAddress) peer.address(), true);
             MqNetVm vm = new MqNetVm("vm", be.socket(), 1, true, false)) {
            VhostUserNet m = vm.model();
            int up = NetConfig.S_LINK_UP;
            record Bad(byte[] bytes, String says) { }
            byte[] multicast = MAC.clone();
            multicast[0] |= 1;
            byte[] good = state(1, MAC, control(NEW_MAC, up | NetConfig.S_ANNOUNCE, false));
            ByteBuffer bigTable = ByteBuffer.wrap(good.clone());
            bigTable.putInt(1 + 2 + 6 + 6 + 4 + 2 + 2 + 1 + 1, 65);
            List<Bad> bad = List.of(
                    new Bad(state(0, MAC, control(MAC, up, true)), "enabled 0 queue pairs"),
                    new Bad(state(2, MAC, control(MAC, up, true)), "enabled 2 queue pairs"),
                    new Bad(state(1, NEW_MAC, control(MAC, up, true)), "configured with MAC 52:54:00:ab:cd:ef"),
                    new Bad(state(1, MAC, control(multicast, up, true)), "multicast"),
                    new Bad(state(1, MAC, control(MAC, 0, true)), "without LINK_UP"),
                    new Bad(state(1, MAC, control(MAC, up | 4, true)), "bits virtio-net lacks"),
                    new Bad(bigTable.array(), "MAC table of 65 entries"),
                    new Bad(Arrays.copyOf(good, good.length - 3), ""));
            for (Bad b : bad) {
                Exception e = assertThrows(Exception.class, () -> m.load(new ByteArrayLoadStream(b.bytes()), 3),
                        b.says());
                assertTrue(b.says().isEmpty() || e.getMessage().contains(b.says()), e.getMessage());
            }
            MigrationException old = assertThrows(MigrationException.class,
                    () -> m.load(new ByteArrayLoadStream(new byte[] {0, 0, 1}), 2));
            assertTrue(old.getMessage().contains("state version 2"), old.getMessage());
            m.load(new ByteArrayLoadStream(good), 3);
            assertArrayEquals(MAC, m.mac(), "kept aside until the load commits");
            byte[] cfg = m.config();
            MigrationException e = assertThrows(MigrationException.class, () -> m.restoreConfig(cfg));
            assertTrue(e.getMessage().contains("carries MAC 52:54:00:12:34:56, its state 52:54:00:ab:cd:ef"),
                    e.getMessage());
            byte[] moved = cfg.clone();
            System.arraycopy(NEW_MAC, 0, moved, 0, 6);
            m.restoreConfig(moved);
            m.commitLoad();
            assertArrayEquals(NEW_MAC, m.mac());
            assertEquals(up | NetConfig.S_ANNOUNCE, m.status());
            assertEquals(Boolean.FALSE, vm.vun().get("promisc"));
            assertArrayEquals(NEW_MAC, Arrays.copyOf(m.config(), 6), "the config carries the loaded MAC");
        }
    }

    /**
     * The round trip through {@code save}: what a driver set on the source (MAC, RX mode, MAC
     * table) is what a second NIC has after loading the bytes, and its config carries the MAC.
     */
    @Test
    void theControlStateRoundTripsThroughSave() throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend a = ferryNet(dir.resolve("a.sock"), (InetSocketAddress) peer.address(), true);
             VhostUserBackend b = ferryNet(dir.resolve("b.sock"), (InetSocketAddress) peer.address(), true);
             MqNetVm src = new MqNetVm("src", a.socket(), 1, false, false);
             MqNetVm dst = new MqNetVm("dst", b.socket(), 1, true, false)) {
            src.machine.vmStart();
            CtrlDriver d = new CtrlDriver(src, Virtio.bit(Virtio.F_VERSION_1) | CTRL_FEATURES, 2);
            assertEquals(NetControl.OK, d.command(NetControl.CLASS_MAC, NetControl.MAC_ADDR_SET, NEW_MAC));
            assertEquals(NetControl.OK, d.command(NetControl.CLASS_RX, NetControl.RX_PROMISC, 0));
            assertEquals(NetControl.OK, d.command(NetControl.CLASS_MAC, NetControl.MAC_TABLE_SET, table(2, 3)));
            src.machine.vmStop(RunState.PAUSED);
            ByteArraySaveStream out = new ByteArraySaveStream();
            src.model().save(out);
            VhostUserNet m = dst.model();
            m.load(out.toLoadStream(), VhostUserNet.STATE_VERSION);
            m.restoreConfig(src.model().config());
            m.commitLoad();
            assertArrayEquals(NEW_MAC, m.mac());
            assertArrayEquals(NEW_MAC, Arrays.copyOf(m.config(), 6));
            assertEquals(Boolean.FALSE, dst.vun().get("promisc"), dst.vun().toString());
            assertEquals(5L, number(dst, "mac-table-entries"), dst.vun().toString());
            assertEquals(NetConfig.S_LINK_UP, m.status());
        }
    }

    /** A Ferry guest (SoftNetDriver) on a single-pair NIC, with its area at 48 MiB. */
    static SoftNetDriver driver(MqNetVm vm) {
        SoftNetDriver d = new SoftNetDriver(vm.machine.deviceMemory(), 48L << 20, vm.machine.mmio(),
                vm.nic.transport().base(), vm.irqchip, vm.nic.transport().irq().gsi(), 16, 128);
        ((SoftCpuEngine) vm.machine.cpus()).addProgram("nic0", d);
        return d;
    }

    static NetDriverArea.Progress awaitProgress(SoftNetDriver d, java.util.function.Predicate<NetDriverArea.Progress> done)
            throws InterruptedException {
        long deadline = System.nanoTime() + 30_000_000_000L;
        NetDriverArea.Progress p = d.area().progress();
        while (!done.test(p) && p.errors() == 0 && System.nanoTime() < deadline) {
            Thread.sleep(10);
            p = d.area().progress();
        }
        return p;
    }

    /**
     * Ferry's guest driver on a single-pair NIC, migrated between two Ferry back-ends offering
     * GUEST_ANNOUNCE: the driver turned promiscuous mode off and set a MAC table on the source,
     * the destination has both; after the switchover the guest is asked to announce itself five
     * times on QEMU's schedule, acks each round, and the peer sees its gratuitous ARPs from the
     * destination's port — and no RARP: the destination sent no SEND_RARP and neither back-end
     * sent one. With two pairs the back-ends are {@code MultiQueueNet}s offering GUEST_ANNOUNCE (the
     * driver takes no MQ: pair 0, the control queue at 2).
     */
    @ParameterizedTest(name = "{0} queue pair(s)")
    @ValueSource(ints = {1, 2})
    void aMigratedGuestWithGuestAnnounceAnnouncesItselfAndNoRarpIsSent(int pairs) throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend a = ferryNet(dir.resolve("a.sock"), (InetSocketAddress) peer.address(), true, pairs);
             VhostUserBackend b = ferryNet(dir.resolve("b.sock"), (InetSocketAddress) peer.address(), true, pairs);
             MqNetVm src = new MqNetVm("src", a.socket(), pairs, false, false)) {
            SoftNetDriver sd = driver(src);
            src.machine.vmStart();
            NetDriverArea.Progress before = awaitProgress(sd, p -> p.txCompleted() >= 64 && p.rxFrames() >= 64);
            assertTrue(before.txCompleted() >= 64 && before.rxFrames() >= 64, before.toString());
            assertEquals(Boolean.FALSE, src.vun().get("promisc"), "the driver turned promiscuous mode off");
            assertEquals(0, before.ctrlErrors(), before.toString());
            String sourcePort = peer.portOf(MAC);
            byte[] stream = InMemoryMigration.save(src.machine);
            try (MqNetVm dst = new MqNetVm("dst", b.socket(), pairs, true, false)) {
                SoftNetDriver dd = driver(dst);
                InMemoryMigration.Incoming in = InMemoryMigration.load(dst.machine, stream);
                assertEquals(MigrationStatus.COMPLETED, in.status(), in.toString());
                assertEquals(Boolean.FALSE, dst.vun().get("promisc"), "the RX mode came with the state");
                NetDriverArea.Progress p = awaitProgress(dd, q -> q.announceAcks() >= AnnounceTimer.ROUNDS
                        && q.rxFrames() >= before.rxFrames() + 64);
                assertEquals(AnnounceTimer.ROUNDS, p.announceAcks(), p.toString());
                assertEquals(AnnounceTimer.ROUNDS, p.garpsSent(), p.toString());
                assertEquals(0, p.errors(), p.toString());
                assertEquals(0, p.ctrlErrors(), p.toString());
                assertEquals((long) AnnounceTimer.ROUNDS, number(dst, "guest-announces"), dst.vun().toString());
                assertEquals((long) AnnounceTimer.ROUNDS, number(dst, "announce-acks"), dst.vun().toString());
                assertEquals(AnnounceTimer.State.IDLE, dst.model().announceState());
                assertEquals(NetConfig.S_LINK_UP, dst.model().status(), "the last ack cleared ANNOUNCE");
                assertEquals(0L, number(dst, "rarps-sent"), "no SEND_RARP: " + dst.vun());
                assertEquals(0, a.stats().rarps() + b.stats().rarps(), "no back-end sent a RARP");
                List<TrafficPeer.Announce> seen = peer.announces();
                assertTrue(seen.stream().filter(x -> x.kind().equals("arp")).count() >= AnnounceTimer.ROUNDS,
                        peer.report());
                assertTrue(seen.stream().noneMatch(x -> x.kind().equals("rarp")), "no RARP on the wire: " + seen);
                assertFalse(sourcePort.equals(peer.portOf(MAC)), "the peer moved the MAC: " + peer.report());
                dst.machine.vmStop(RunState.PAUSED);
            }
        }
    }

    /**
     * The same migration on back-ends without GUEST_ANNOUNCE: the driver cannot announce itself,
     * so the destination asks its back-end for SEND_RARP in each of QEMU's five announce rounds and
     * the peer sees those RARPs.
     */
    @Test
    void onBackEndsWithoutGuestAnnounceTheDestinationSendsSendRarp() throws Exception {
        migrateAndExpectSendRarp(false, 0);
    }

    /** Back-ends offering GUEST_ANNOUNCE, a driver that does not take it: SEND_RARP as well. */
    @Test
    void aDriverWithoutGuestAnnounceIsAnnouncedBySendRarp() throws Exception {
        migrateAndExpectSendRarp(true, Virtio.bit(VirtioNet.F_GUEST_ANNOUNCE));
    }

    /** A VM stopped after the first SEND_RARP: the rounds end with it (a paused guest is announced by nobody). */
    @Test
    void aStopMidScheduleEndsTheSendRarpRounds() throws Exception {
        migrateAndExpectSendRarp(false, 0, true);
    }

    private void migrateAndExpectSendRarp(boolean offered, long declined) throws Exception {
        migrateAndExpectSendRarp(offered, declined, false);
    }

    private void migrateAndExpectSendRarp(boolean offered, long declined, boolean stopAfterFirst) throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend a = ferryNet(dir.resolve("a.sock"), (InetSocketAddress) peer.address(), offered);
             VhostUserBackend b = ferryNet(dir.resolve("b.sock"), (InetSocketAddress) peer.address(), offered);
             MqNetVm src = new MqNetVm("src", a.socket(), 1, false, false)) {
            SoftNetDriver sd = driver(src).without(declined);
            src.machine.vmStart();
            NetDriverArea.Progress before = awaitProgress(sd, p -> p.txCompleted() >= 64 && p.rxFrames() >= 64);
            assertTrue(before.txCompleted() >= 64 && before.rxFrames() >= 64, before.toString());
            assertEquals(Boolean.FALSE, src.vun().get("promisc"), "the driver still has CTRL_RX");
            byte[] stream = InMemoryMigration.save(src.machine);
            try (MqNetVm dst = new MqNetVm("dst", b.socket(), 1, true, false)) {
                SoftNetDriver dd = driver(dst).without(declined);
                InMemoryMigration.Incoming in = InMemoryMigration.load(dst.machine, stream);
                assertEquals(MigrationStatus.COMPLETED, in.status(), in.toString());
                if (stopAfterFirst) {
                    await(() -> b.stats().rarps() >= 1, "the first SEND_RARP: " + b.stats());
                    dst.machine.vmStop(RunState.PAUSED);
                    assertEquals(AnnounceTimer.State.IDLE, dst.model().rarpAnnounceState(), "the stop ended the rounds");
                    long sent = number(dst, "rarps-sent");
                    assertTrue(sent < AnnounceTimer.ROUNDS, sent + " sent before the stop");
                    Thread.sleep(1000); // past the whole schedule (800 ms): proving that nothing follows
                    assertEquals(sent, number(dst, "rarps-sent"), "no SEND_RARP after the stop");
                    assertEquals(sent, b.stats().rarps());
                    return;
                }
                // QEMU's schedule: five rounds, each a SEND_RARP, no ack awaited; then the timer is idle.
                await(() -> b.stats().rarps() == AnnounceTimer.ROUNDS && dst.model().rarpAnnounceState() == AnnounceTimer.State.IDLE,
                        "five SEND_RARPs reached the destination's back-end: " + b.stats());
                NetDriverArea.Progress p = awaitProgress(dd, q -> q.rxFrames() >= before.rxFrames() + 64);
                assertTrue(p.rxFrames() >= before.rxFrames() + 64, p.toString());
                assertEquals(0, p.announcesSeen(), p.toString());
                assertEquals(0, p.errors(), p.toString());
                assertEquals((long) AnnounceTimer.ROUNDS, number(dst, "rarps-sent"));
                assertEquals(AnnounceTimer.ROUNDS, b.stats().rarps(), "no round after the fifth");
                assertEquals(0L, number(dst, "guest-announces"));
                await(() -> peer.announces().stream().filter(x -> x.kind().equals("rarp")).count() == AnnounceTimer.ROUNDS,
                        "one RARP per round, the back-end's for SEND_RARP: " + peer.report());
                dst.machine.vmStop(RunState.PAUSED);
            }
        }
    }
}
