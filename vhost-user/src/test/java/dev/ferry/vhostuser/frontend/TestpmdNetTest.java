package dev.ferry.vhostuser.frontend;

import dev.ferry.core.cpu.soft.SoftCpuEngine;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.device.DeviceOptions;
import dev.ferry.core.device.DevicePlacement;
import dev.ferry.core.device.SoftInterruptController;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.guest.NetDriverArea;
import dev.ferry.virtio.guest.SoftNetDriver;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Ferry's guest net driver on a vhost-user-net NIC served by a real DPDK testpmd (macswap): the
 * driver's frames leave through the back-end's TX ring and come back into its RX buffers, written
 * by testpmd; the back-end can log (no migration blocker).
 */
@Timeout(60)
class TestpmdNetTest {
    @TempDir
    Path dir;

    @BeforeAll
    static void peer() {
        Testpmd.assumeInstalled();
    }

    /** A soft VM with a vhost-user-net NIC on {@code socket} and Ferry's guest net driver. */
    static final class NetVm implements AutoCloseable {
        final Machine machine;
        final SoftInterruptController irqchip = new SoftInterruptController();
        final VirtioMmioDevice nic;
        final SoftNetDriver driver;

        NetVm(String name, Path socket, boolean incoming) throws Exception {
            this(name, socket, incoming, 0);
        }

        /** {@code declined}: features the guest driver does not take (GUEST_ANNOUNCE). */
        NetVm(String name, Path socket, boolean incoming, long declined) throws Exception {
            GuestMemory memory = GuestMemory.ofSize(64L << 20);
            SoftCpuEngine cpus = new SoftCpuEngine(memory, SoftWorkload.of(1, 1L << 20, 8L << 20, 7));
            machine = new Machine(name, memory, cpus, incoming ? RunState.INMIGRATE : RunState.PRELAUNCH);
            cpus.registerMigration(machine.migration());
            machine.attachInterruptController(irqchip);
            machine.migration().registerVmState(SoftInterruptController.IDSTR, 0, SoftInterruptController.VMSTATE,
                    irqchip, dev.ferry.core.migration.MigrationPriority.DEVICE);
            DevicePlacement placement = new DevicePlacement(machine, incoming, (dev, state, event, data) -> { });
            Map<String, Object> opts = new LinkedHashMap<>();
            opts.put("socket", socket.toString());
            nic = (VirtioMmioDevice) new VhostUserNetKind().create(placement.contextFor("nic0"),
                    new DeviceOptions("devices[0]", opts));
            machine.addDevice(nic);
            driver = new SoftNetDriver(machine.deviceMemory(), 48L << 20, machine.mmio(), nic.transport().base(),
                    irqchip, nic.transport().irq().gsi(), 16, 128).without(declined);
            cpus.addProgram("nic0", driver);
        }

        @SuppressWarnings("unchecked")
        Map<String, Object> vun() {
            Map<String, Object> d = new LinkedHashMap<>();
            nic.describe(d);
            return (Map<String, Object>) d.get(VhostUserNet.NAME);
        }

        Map<String, Object> describe() {
            Map<String, Object> d = new LinkedHashMap<>();
            nic.describe(d);
            return d;
        }

        NetDriverArea.Progress awaitFrames(long n) throws InterruptedException {
            long deadline = System.nanoTime() + 20_000_000_000L;
            NetDriverArea.Progress p = driver.area().progress();
            while ((p.txCompleted() < n || p.rxFrames() < n) && System.nanoTime() < deadline) {
                Thread.sleep(10);
                p = driver.area().progress();
            }
            return p;
        }

        @Override
        public void close() {
            machine.close();
        }
    }

    /**
     * The NIC migrates between two testpmds: guest RAM on the destination equals the source's at
     * switchover (the RX buffers and used rings testpmd wrote came through its log), the rings
     * resume at GET_VRING_BASE's index, and the guest's frames go on through the destination's
     * testpmd. testpmd offers GUEST_ANNOUNCE, so the front-end offers it (as QEMU's does) and
     * Ferry's driver takes it: the guest announces itself five times, acking each round, and the
     * destination sends no SEND_RARP.
     */
    @Test
    void migratesBetweenTwoTestpmdsAndTheGuestAnnouncesItself() throws Exception {
        migrateBetweenTwoTestpmds(0, d -> {
            NetDriverArea.Progress p = d.driver.area().progress();
            long deadline = System.nanoTime() + 20_000_000_000L;
            while (p.announceAcks() < dev.ferry.virtio.net.AnnounceTimer.ROUNDS && System.nanoTime() < deadline) {
                Thread.sleep(10);
                p = d.driver.area().progress();
            }
            assertEquals(dev.ferry.virtio.net.AnnounceTimer.ROUNDS, p.announceAcks(), p.toString());
            assertEquals(dev.ferry.virtio.net.AnnounceTimer.ROUNDS, p.garpsSent(), p.toString());
            assertEquals(0L, ((Number) d.vun().get("rarps-sent")).longValue(), "no SEND_RARP: " + d.vun());
        });
    }

    /**
     * The same with a driver that does not take GUEST_ANNOUNCE: the destination asks its testpmd
     * to announce the guest (SEND_RARP) in each of QEMU's five announce rounds.
     */
    @Test
    void aDriverWithoutGuestAnnounceIsAnnouncedByTestpmd() throws Exception {
        migrateBetweenTwoTestpmds(dev.ferry.virtio.Virtio.bit(dev.ferry.virtio.net.VirtioNet.F_GUEST_ANNOUNCE),
                d -> {
                    long deadline = System.nanoTime() + 10_000_000_000L;
                    while (((Number) d.vun().get("rarps-sent")).longValue() < dev.ferry.virtio.net.AnnounceTimer.ROUNDS
                            && System.nanoTime() < deadline) {
                        Thread.sleep(10);
                    }
                    assertEquals((long) dev.ferry.virtio.net.AnnounceTimer.ROUNDS,
                            ((Number) d.vun().get("rarps-sent")).longValue(), d.vun().toString());
                    assertEquals(0L, d.driver.area().progress().announcesSeen());
                });
    }

    interface DestinationCheck {
        void check(NetVm dst) throws Exception;
    }

    /** Migrates a NIC whose driver declines {@code declined} from one testpmd to another, then checks the announce. */
    private void migrateBetweenTwoTestpmds(long declined, DestinationCheck announced) throws Exception {
        try (Testpmd a = new Testpmd(dir.resolve("a.sock"), "ferry-vhu-a-" + ProcessHandle.current().pid());
             Testpmd b = new Testpmd(dir.resolve("b.sock"), "ferry-vhu-b-" + ProcessHandle.current().pid());
             NetVm src = new NetVm("src", a.socket, false, declined)) {
            src.machine.vmStart();
            NetDriverArea.Progress before = src.awaitFrames(16);
            assertTrue(before.rxFrames() >= 16, before.toString());
            byte[] stream = dev.ferry.migration.testing.InMemoryMigration.save(src.machine);
            long srcDigest = src.machine.memory().digest();
            NetDriverArea.Progress atSwitchover = src.driver.area().progress();
            try (NetVm dst = new NetVm("dst", b.socket, true, declined)) {
                dev.ferry.migration.testing.InMemoryMigration.Incoming in =
                        dev.ferry.migration.testing.InMemoryMigration.load(dst.machine, stream);
                assertEquals(dev.ferry.migration.MigrationStatus.COMPLETED, in.status(), in.toString());
                assertEquals(srcDigest, in.memoryDigest().longValue(), "RAM equal at switchover");
                // the destination runs (autostart): traffic goes on through the destination's testpmd
                NetDriverArea.Progress now = dst.awaitFrames(atSwitchover.rxFrames() + 64);
                assertTrue(now.txCompleted() >= atSwitchover.txCompleted() + 64
                        && now.rxFrames() >= atSwitchover.rxFrames() + 64, atSwitchover + " -> " + now);
                assertEquals(0, now.errors(), now.toString());
                announced.check(dst);
                assertEquals(Boolean.TRUE, dst.vun().get("rings-running"), dst.vun().toString());
                dst.machine.vmStop(RunState.PAUSED);
            }
        }
    }

    @Test
    void framesGoThroughTestpmdAndComeBack() throws Exception {
        try (Testpmd pmd = new Testpmd(dir.resolve("net.sock"), "ferry-vhu-" + ProcessHandle.current().pid())) {
            GuestMemory memory = GuestMemory.ofSize(64L << 20);
            SoftCpuEngine cpus = new SoftCpuEngine(memory, SoftWorkload.of(1, 1L << 20, 8L << 20, 7));
            try (Machine machine = new Machine("vm", memory, cpus, RunState.PRELAUNCH)) {
                SoftInterruptController irqchip = new SoftInterruptController();
                machine.attachInterruptController(irqchip);
                DevicePlacement placement = new DevicePlacement(machine, false, (dev, state, event, data) -> { });
                Map<String, Object> opts = new LinkedHashMap<>();
                opts.put("socket", pmd.socket.toString());
                VirtioMmioDevice nic = (VirtioMmioDevice) new VhostUserNetKind().create(placement.contextFor("nic0"),
                        new DeviceOptions("devices[0]", opts));
                machine.addDevice(nic);
                SoftNetDriver driver = new SoftNetDriver(machine.deviceMemory(), 48L << 20, machine.mmio(),
                        nic.transport().base(), irqchip, nic.transport().irq().gsi(), 16, 128);
                cpus.addProgram("nic0", driver);
                Map<String, Object> d = new LinkedHashMap<>();
                nic.describe(d);
                @SuppressWarnings("unchecked")
                Map<String, Object> vun = (Map<String, Object>) d.get(VhostUserNet.NAME);
                assertNull(vun.get("migration-blocker"), "testpmd logs (LOG_ALL, LOG_SHMFD): " + vun);
                machine.vmStart();
                long deadline = System.nanoTime() + 20_000_000_000L;
                NetDriverArea.Progress p = driver.area().progress();
                while ((p.txCompleted() < 16 || p.rxFrames() < 16) && System.nanoTime() < deadline) {
                    Thread.sleep(10);
                    p = driver.area().progress();
                }
                assertTrue(p.txCompleted() >= 16 && p.rxFrames() >= 16, "frames out and back through testpmd: " + p
                        + "; " + d);
                assertEquals(0, p.errors(), p.toString());
                machine.vmStop(RunState.PAUSED);
            }
        }
    }
    /**
     * Two queue pairs on testpmd (vhost PMD {@code queues=2}, rxq i forwarded to txq i): each
     * pair's flow comes back on its own pair, in order, and the NIC migrates to a second testpmd
     * with both pairs enabled; every flow goes on there without loss (the stop drops no pair's
     * frames: issue 11), duplicates or reordering.
     */
    @Test
    void twoPairsMigrateBetweenTwoTestpmds() throws Exception {
        try (Testpmd a = new Testpmd(dir.resolve("a.sock"), "ferry-vhu-mqa-" + ProcessHandle.current().pid(), 2);
             Testpmd b = new Testpmd(dir.resolve("b.sock"), "ferry-vhu-mqb-" + ProcessHandle.current().pid(), 2);
             MqNetVm src = new MqNetVm("src", a.socket, 2, false)) {
            src.machine.vmStart();
            dev.ferry.virtio.guest.SoftMqNetDriver.Progress before =
                    src.await(p -> p.pairs() == 2 && p.leastReceived() >= 16);
            assertTrue(before.pairs() == 2 && before.leastReceived() >= 16, before.toString());
            byte[] stream = dev.ferry.migration.testing.InMemoryMigration.save(src.machine);
            long srcDigest = src.machine.memory().digest();
            dev.ferry.virtio.guest.SoftMqNetDriver.Progress at = src.driver.progress();
            try (MqNetVm dst = new MqNetVm("dst", b.socket, 2, true)) {
                dev.ferry.migration.testing.InMemoryMigration.Incoming in =
                        dev.ferry.migration.testing.InMemoryMigration.load(dst.machine, stream);
                assertEquals(dev.ferry.migration.MigrationStatus.COMPLETED, in.status(), in.toString());
                assertEquals(srcDigest, in.memoryDigest().longValue(), "RAM equal at switchover");
                assertEquals(2, dst.model().enabledPairs());
                dev.ferry.virtio.guest.SoftMqNetDriver.Progress now = dst.await(p -> p.flows().length == 2
                        && p.flows()[0].received() >= at.flows()[0].received() + 64
                        && p.flows()[1].received() >= at.flows()[1].received() + 64);
                for (int f = 0; f < 2; f++) {
                    assertTrue(now.flows()[f].received() >= at.flows()[f].received() + 64, at + " -> " + now);
                    assertEquals(0, now.flows()[f].lost(), "no frame of flow " + f + " lost: " + at + " -> " + now);
                    assertEquals(0, now.flows()[f].dups(), now.toString());
                    assertEquals(0, now.flows()[f].misdelivered(), now.toString());
                }
                assertEquals(0, now.errors(), now.toString());
                dst.machine.vmStop(RunState.PAUSED);
            }
        }
    }

    /**
     * One queue pair on testpmd, the frames counted: the multiqueue driver on a single-queue NIC
     * (no MQ, no pair switch) checks every frame testpmd's macswap turns around, so the
     * single-queue migration between two testpmds is held to the same rule as the others — no
     * frame lost (the stop drains what the guest sent), duplicated or reordered.
     */
    @Test
    void onePairMigratesWithEveryFrameCounted() throws Exception {
        try (Testpmd a = new Testpmd(dir.resolve("a.sock"), "ferry-vhu-1a-" + ProcessHandle.current().pid());
             Testpmd b = new Testpmd(dir.resolve("b.sock"), "ferry-vhu-1b-" + ProcessHandle.current().pid());
             MqNetVm src = new MqNetVm("src", a.socket, 1, false)) {
            src.machine.vmStart();
            dev.ferry.virtio.guest.SoftMqNetDriver.Progress before = src.await(p -> p.leastReceived() >= 16);
            assertEquals(1, before.flows().length, before.toString());
            byte[] stream = dev.ferry.migration.testing.InMemoryMigration.save(src.machine);
            long srcDigest = src.machine.memory().digest();
            dev.ferry.virtio.guest.SoftMqNetDriver.Progress at = src.driver.progress();
            try (MqNetVm dst = new MqNetVm("dst", b.socket, 1, true)) {
                dev.ferry.migration.testing.InMemoryMigration.Incoming in =
                        dev.ferry.migration.testing.InMemoryMigration.load(dst.machine, stream);
                assertEquals(dev.ferry.migration.MigrationStatus.COMPLETED, in.status(), in.toString());
                assertEquals(srcDigest, in.memoryDigest().longValue(), "RAM equal at switchover");
                dev.ferry.virtio.guest.SoftMqNetDriver.Progress now = dst.await(p -> p.flows().length == 1
                        && p.flows()[0].received() >= at.flows()[0].received() + 64);
                assertTrue(now.flows()[0].received() >= at.flows()[0].received() + 64, at + " -> " + now);
                assertEquals(0, now.flows()[0].lost(), "no frame lost: " + at + " -> " + now);
                assertEquals(0, now.flows()[0].dups(), now.toString());
                assertEquals(0, now.errors(), now.toString());
                dst.machine.vmStop(RunState.PAUSED);
            }
        }
    }
}
