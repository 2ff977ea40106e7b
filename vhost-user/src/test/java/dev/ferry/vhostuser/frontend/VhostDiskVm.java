package dev.ferry.vhostuser.frontend;

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
import dev.ferry.virtio.guest.BlkDriverArea;
import dev.ferry.virtio.guest.DiskVerifier;
import dev.ferry.virtio.guest.SoftBlkDriver;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A soft-engine VM whose disk is {@code vhost-user-blk} on a real back-end: 64 MiB of RAM, the
 * page-dirtying workload over the first 32 MiB, Ferry's guest disk driver ({@link SoftBlkDriver})
 * with its area at 48 MiB. Built the same way on a source and a destination.
 */
final class VhostDiskVm implements AutoCloseable {
    static final long MiB = 1L << 20;
    static final long RAM = 64 * MiB;
    static final long DRIVER_AREA = 48 * MiB;
    static final long SEED = 42;
    final Machine machine;
    final SoftCpuEngine cpus;
    final SoftInterruptController irqchip = new SoftInterruptController();
    final VirtioMmioDevice disk;
    final SoftBlkDriver driver;
    private boolean closed;

    VhostDiskVm(String name, Path socket, boolean incoming) throws DeviceConfigException {
        this(name, socket, incoming, 1000);
    }

    VhostDiskVm(String name, Path socket, boolean incoming, int replyTimeoutMs) throws DeviceConfigException {
        GuestMemory memory = GuestMemory.ofSize(RAM);
        cpus = new SoftCpuEngine(memory, SoftWorkload.of(1, 20 * MiB, 32 * MiB, SEED));
        machine = new Machine(name, memory, cpus, incoming ? RunState.INMIGRATE : RunState.PRELAUNCH);
        cpus.registerMigration(machine.migration());
        machine.attachInterruptController(irqchip);
        machine.migration().registerVmState(SoftInterruptController.IDSTR, 0, SoftInterruptController.VMSTATE, irqchip,
                MigrationPriority.DEVICE);
        DevicePlacement placement = new DevicePlacement(machine, incoming, (dev, state, event, data) -> {
            throw new AssertionError("a vhost-user disk never asks to stop the VM: " + event);
        });
        Map<String, Object> opts = new LinkedHashMap<>();
        opts.put("socket", socket.toString());
        opts.put("reply-timeout-ms", replyTimeoutMs);
        try {
            disk = (VirtioMmioDevice) new VhostUserBlkKind().create(placement.contextFor("disk0"),
                    new DeviceOptions("devices[0]", opts));
        } catch (DeviceConfigException | RuntimeException e) {
            machine.close();
            throw e;
        }
        machine.addDevice(disk);
        driver = new SoftBlkDriver(machine.deviceMemory(), DRIVER_AREA, machine.mmio(), disk.transport().base(), irqchip,
                disk.transport().irq().gsi(), SEED, 16, 4096);
        cpus.addProgram("disk0", driver);
    }

    VhostUserBlk model() {
        return (VhostUserBlk) disk.transport().model();
    }

    BlkDriverArea.Progress progress() {
        return driver.area().progress();
    }

    /** Runs until the driver completed at least {@code n} more requests than now (bounded). */
    void runFor(long n) throws InterruptedException {
        long target = progress().completed() + n;
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (progress().completed() < target) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError(machine.name() + ": the guest's disk I/O did not progress: " + progress()
                        + "; device " + describe());
            }
            Thread.sleep(5);
        }
    }

    DiskVerifier.Verdict verify(Path image) throws Exception {
        return DiskVerifier.verifyImage(driver.area(), image);
    }

    Map<String, Object> describe() {
        Map<String, Object> m = new LinkedHashMap<>();
        disk.describe(m);
        return m;
    }

    @SuppressWarnings("unchecked")
    Map<String, Object> vub() {
        return (Map<String, Object>) describe().get(VhostUserBlk.NAME);
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            machine.close();
        }
    }
}
