package dev.ferry.virtio.e2e;

import dev.ferry.core.cpu.soft.SoftCpuEngine;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.device.DeviceConfigException;
import dev.ferry.core.device.DeviceOptions;
import dev.ferry.core.device.DevicePlacement;
import dev.ferry.core.device.SoftInterruptController;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.guest.NetDriverArea;
import dev.ferry.virtio.guest.SoftNetDriver;
import dev.ferry.virtio.net.DgramBackend;
import dev.ferry.virtio.net.VirtioNet;
import dev.ferry.virtio.net.VirtioNetKind;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A soft-engine VM with a virtio-net NIC on a {@code dgram} back-end to a traffic peer, and
 * Ferry's guest net driver beside the page-dirtying vCPUs: 64 MiB of RAM, the workload over the
 * first 32 MiB, the driver's area at 48 MiB. Built the same way on a source and a destination.
 */
final class SoftNetVm implements AutoCloseable {
    static final long MiB = 1L << 20;
    static final long RAM = 64 * MiB;
    static final long DRIVER_AREA = 48 * MiB;
    static final byte[] MAC = {0x52, 0x54, 0, 0x12, 0x34, 0x56};

    final Machine machine;
    final SoftCpuEngine cpus;
    final SoftInterruptController irqchip = new SoftInterruptController();
    final VirtioMmioDevice nic;
    final SoftNetDriver driver;
    private final AtomicBoolean closed = new AtomicBoolean();

    SoftNetVm(String name, String netdev, boolean incoming, boolean guestAnnounce, int window, int frameLength)
            throws DeviceConfigException {
        GuestMemory memory = GuestMemory.ofSize(RAM);
        cpus = new SoftCpuEngine(memory, SoftWorkload.of(1, 20 * MiB, 32 * MiB, 7));
        machine = new Machine(name, memory, cpus, incoming ? RunState.INMIGRATE : RunState.PRELAUNCH);
        cpus.registerMigration(machine.migration());
        machine.attachInterruptController(irqchip);
        machine.migration().registerVmState(SoftInterruptController.IDSTR, 0, SoftInterruptController.VMSTATE, irqchip,
                MigrationPriority.DEVICE);
        DevicePlacement placement = new DevicePlacement(machine, incoming, (dev, state, event, data) -> {
        });
        Map<String, Object> opts = new HashMap<>();
        opts.put("netdev", netdev);
        opts.put("mac", "52:54:00:12:34:56");
        opts.put("guest-announce", guestAnnounce);
        try {
            nic = (VirtioMmioDevice) new VirtioNetKind().create(placement.contextFor("nic0"),
                    new DeviceOptions("devices[0]", opts));
        } catch (DeviceConfigException | RuntimeException e) {
            machine.close();
            throw e;
        }
        machine.addDevice(nic);
        driver = new SoftNetDriver(machine.deviceMemory(), DRIVER_AREA, machine.mmio(), nic.transport().base(), irqchip,
                nic.transport().irq().gsi(), window, frameLength);
        cpus.addProgram("nic0", driver);
    }

    SoftNetVm(String name, int peerPort, boolean incoming, boolean guestAnnounce) throws DeviceConfigException {
        this(name, "dgram:127.0.0.1:" + peerPort, incoming, guestAnnounce, 16, 128);
    }

    VirtioNet model() {
        return (VirtioNet) nic.transport().model();
    }

    /** The peer's name for this VM's port: {@code "udp /127.0.0.1:<port>"}. */
    String peerPortName() {
        return "udp /127.0.0.1:" + ((DgramBackend) model().backend()).localPort();
    }

    NetDriverArea.Progress progress() {
        return driver.area().progress();
    }

    /** Runs until the guest received at least {@code n} more replies from the peer (bounded). */
    void runFor(long n) throws InterruptedException {
        long target = progress().peerFrames() + n;
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (progress().peerFrames() < target) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError(machine.name() + ": the guest's traffic did not progress: " + progress()
                        + "; device " + describe());
            }
            Thread.sleep(2);
        }
    }

    Map<String, Object> describe() {
        Map<String, Object> m = new LinkedHashMap<>();
        nic.describe(m);
        return m;
    }

    @SuppressWarnings("unchecked")
    Map<String, Object> net() {
        return (Map<String, Object>) describe().get("virtio-net");
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            machine.close();
        }
    }
}
