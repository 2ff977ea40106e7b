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
import dev.ferry.virtio.VirtioDeviceModel;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.blk.VirtioBlk;
import dev.ferry.virtio.blk.VirtioBlkKind;
import dev.ferry.virtio.guest.BlkDriverArea;
import dev.ferry.virtio.guest.DiskVerifier;
import dev.ferry.virtio.guest.SoftBlkDriver;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.UnaryOperator;

/**
 * A soft-engine VM with a virtio-blk disk and Ferry's guest disk driver beside the page-dirtying
 * vCPUs: 64 MiB of RAM, the workload over the first 32 MiB, the driver's area at 48 MiB. Built the
 * same way on a source and a destination, so migrated state lands on the same device at the same
 * address and GSI.
 */
final class SoftDiskVm implements AutoCloseable {
    static final long MiB = 1L << 20;
    static final long RAM = 64 * MiB;
    static final long DRIVER_AREA = 48 * MiB;
    static final long SEED = 42;

    final Machine machine;
    final SoftCpuEngine cpus;
    final SoftInterruptController irqchip = new SoftInterruptController();
    final VirtioMmioDevice disk;
    final SoftBlkDriver driver;
    final List<String> stopEvents = new CopyOnWriteArrayList<>();
    /** Stop requests whose {@code vmStop} has not returned yet. */
    private final AtomicInteger stopsInProgress = new AtomicInteger();
    private final AtomicBoolean closed = new AtomicBoolean();

    SoftDiskVm(String name, Path image, boolean incoming) throws DeviceConfigException {
        this(name, Map.of("image", image.toString()), incoming, 16);
    }

    SoftDiskVm(String name, Map<String, Object> diskOptions, boolean incoming, int depth) throws DeviceConfigException {
        this(name, diskOptions, incoming, depth, SoftBlkDriver.ResetLimit.DEFAULT, null);
    }

    /**
     * @param wrapModel null, or what the disk's model is wrapped in (a fault of the device's own)
     */
    SoftDiskVm(String name, Map<String, Object> diskOptions, boolean incoming, int depth,
               SoftBlkDriver.ResetLimit resetLimit, UnaryOperator<VirtioDeviceModel> wrapModel)
            throws DeviceConfigException {
        GuestMemory memory = GuestMemory.ofSize(RAM);
        cpus = new SoftCpuEngine(memory, SoftWorkload.of(1, 20 * MiB, 32 * MiB, SEED));
        machine = new Machine(name, memory, cpus, incoming ? RunState.INMIGRATE : RunState.PRELAUNCH);
        cpus.registerMigration(machine.migration());
        machine.attachInterruptController(irqchip);
        machine.migration().registerVmState(SoftInterruptController.IDSTR, 0, SoftInterruptController.VMSTATE, irqchip,
                MigrationPriority.DEVICE);
        DevicePlacement placement = new DevicePlacement(machine, incoming, (dev, state, event, data) -> {
            stopEvents.add(event + " " + data);
            stopsInProgress.incrementAndGet();
            Thread t = new Thread(() -> {
                try {
                    machine.vmStop(state);
                } catch (Exception e) {
                    stopEvents.add("stop failed: " + e);
                } finally {
                    stopsInProgress.decrementAndGet();
                }
            }, "stop-for-" + dev);
            t.start();
        });
        Map<String, Object> opts = new HashMap<>(diskOptions);
        try {
            if (wrapModel == null) {
                disk = (VirtioMmioDevice) new VirtioBlkKind().create(placement.contextFor("disk0"),
                        new DeviceOptions("devices[0]", opts));
            } else {
                VirtioBlk model = new VirtioBlk("disk0", VirtioBlkKind.parse(new DeviceOptions("devices[0]", opts)),
                        incoming, (dev, op, reason) -> stopEvents.add("io-error " + op + ": " + reason));
                disk = VirtioMmioDevice.attach(placement.contextFor("disk0"), VirtioBlkKind.NAME,
                        wrapModel.apply(model));
            }
        } catch (java.io.IOException e) {
            machine.close();
            throw new DeviceConfigException("disk0: " + e.getMessage());
        } catch (DeviceConfigException | RuntimeException e) {
            machine.close();
            throw e;
        }
        machine.addDevice(disk);
        driver = new SoftBlkDriver(machine.deviceMemory(), DRIVER_AREA, machine.mmio(), disk.transport().base(), irqchip,
                disk.transport().irq().gsi(), SEED, depth, 4096, resetLimit);
        cpus.addProgram("disk0", driver);
    }

    VirtioBlk model() {
        return (VirtioBlk) disk.transport().model();
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

    /**
     * Waits (bounded) until the VM is in {@code state} and every stop a device requested has
     * returned: each failing request asks once, so a late request must not stop the VM again after
     * the test continued it.
     */
    void awaitStopped(RunState state) throws InterruptedException {
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (machine.runState() != state || stopsInProgress.get() != 0) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError(machine.name() + ": not " + state.qapiName() + " with every stop request done: "
                        + machine.runState().qapiName() + ", " + stopsInProgress.get() + " in progress; events "
                        + stopEvents + "; driver " + progress());
            }
            Thread.sleep(5);
        }
    }

    DiskVerifier.Verdict verify(Path image) throws Exception {
        return DiskVerifier.verifyImage(driver.area(), image);
    }

    Map<String, Object> describe() {
        Map<String, Object> m = new java.util.LinkedHashMap<>();
        disk.describe(m);
        return m;
    }

    @SuppressWarnings("unchecked")
    Map<String, Object> blk() {
        return (Map<String, Object>) describe().get("virtio-blk");
    }

    /** Closes the machine once (a test may close it early, as if the VMM process died). */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            machine.close();
        }
    }
}
