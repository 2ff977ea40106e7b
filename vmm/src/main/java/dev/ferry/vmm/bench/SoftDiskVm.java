package dev.ferry.vmm.bench;

import dev.ferry.core.cpu.CpuEngine;
import dev.ferry.core.cpu.soft.SoftCpuEngine;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.device.DeviceConfigException;
import dev.ferry.core.device.DeviceOptions;
import dev.ferry.core.device.DevicePlacement;
import dev.ferry.core.device.SoftInterruptController;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.machine.VmChangeStateHandler;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.blk.VirtioBlkKind;
import dev.ferry.virtio.guest.BlkDriverArea;
import dev.ferry.virtio.guest.DiskVerifier;
import dev.ferry.virtio.guest.SoftBlkDriver;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A soft-engine VM with a virtio-blk disk and Ferry's guest disk driver ({@link SoftBlkDriver}, a
 * soft "vCPU" of its own) beside one page-dirtying vCPU: 64 MiB of RAM, the workload dirtying
 * 20 MiB/s over the first 32 MiB, the driver's area at 48 MiB. Built the same way on a source and
 * a destination, so migrated state lands on the same device at the same address and GSI. (The
 * minimum of the virtio module's test fixture of the same name, for {@code ferry bench disk-downtime}.)
 *
 * <p>It also times the two parts of a VM stop that come before any state is saved: the vCPUs'
 * pause (the CPU engine's {@code pause()}, timed by a delegating engine), and the disk's drain:
 * two VM-change-state handlers bracket the virtio device's own (stop runs handlers from the
 * highest priority down), so the time between them is the device completing every request in
 * flight and flushing the image.
 */
final class SoftDiskVm implements AutoCloseable {
    static final long MiB = 1L << 20;
    private static final long RAM = 64 * MiB;
    private static final long DRIVER_AREA = 48 * MiB;
    private static final long SEED = 42;

    final Machine machine;
    final SoftInterruptController irqchip = new SoftInterruptController();
    final VirtioMmioDevice disk;
    final SoftBlkDriver driver;
    private final PauseTimedCpus timedCpus;
    private volatile long drainStart;
    private volatile long drainEnd;

    SoftDiskVm(String name, Path image, boolean incoming, int depth, long blocks) throws DeviceConfigException {
        GuestMemory memory = GuestMemory.ofSize(RAM);
        SoftCpuEngine cpus = new SoftCpuEngine(memory, SoftWorkload.of(1, 20 * MiB, 32 * MiB, SEED));
        timedCpus = new PauseTimedCpus(cpus);
        machine = new Machine(name, memory, timedCpus, incoming ? RunState.INMIGRATE : RunState.PRELAUNCH);
        cpus.registerMigration(machine.migration());
        machine.attachInterruptController(irqchip);
        machine.migration().registerVmState(SoftInterruptController.IDSTR, 0, SoftInterruptController.VMSTATE, irqchip,
                MigrationPriority.DEVICE);
        DevicePlacement placement = new DevicePlacement(machine, incoming, (dev, state, event, data) -> {
            throw new IllegalStateException(dev + " asked to stop the VM (" + event + " " + data + ")");
        });
        try {
            disk = (VirtioMmioDevice) new VirtioBlkKind().create(placement.contextFor("disk0"),
                    new DeviceOptions("bench.disk0", Map.of("image", image.toString(), "depth", depth)));
        } catch (DeviceConfigException | RuntimeException e) {
            machine.close();
            throw e;
        }
        machine.addDevice(disk);
        machine.addVmChangeStateHandler(stopClock(true), VirtioMmioDevice.VM_STATE_PRIORITY + 1);
        machine.addVmChangeStateHandler(stopClock(false), VirtioMmioDevice.VM_STATE_PRIORITY - 1);
        driver = new SoftBlkDriver(machine.deviceMemory(), DRIVER_AREA, machine.mmio(), disk.transport().base(), irqchip,
                disk.transport().irq().gsi(), SEED, depth, blocks);
        cpus.addProgram("disk0", driver);
    }

    private VmChangeStateHandler stopClock(boolean before) {
        return (running, state) -> {
            if (!running) {
                if (before) {
                    drainStart = System.nanoTime();
                } else {
                    drainEnd = System.nanoTime();
                }
            }
        };
    }

    /** How long the disk took to quiesce at the last VM stop. */
    long lastDrainNanos() {
        return drainEnd - drainStart;
    }

    /** How long the vCPUs (the dirtying one and the disk driver's) took to pause at the last stop. */
    long lastVcpuPauseNanos() {
        return timedCpus.lastPauseNanos;
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
                throw new IllegalStateException(machine.name() + ": the guest's disk I/O did not progress: "
                        + progress() + "; device " + blk());
            }
            Thread.sleep(2);
        }
    }

    DiskVerifier.Verdict verify(Path image) throws Exception {
        return DiskVerifier.verifyImage(driver.area(), image);
    }

    @SuppressWarnings("unchecked")
    Map<String, Object> blk() {
        Map<String, Object> m = new LinkedHashMap<>();
        disk.describe(m);
        return (Map<String, Object>) m.get("virtio-blk");
    }

    @Override
    public void close() {
        machine.close();
    }

    /** The soft engine, with the duration of its last {@link #pause()} recorded. Thread-safe as the engine is. */
    private static final class PauseTimedCpus implements CpuEngine {
        private final SoftCpuEngine engine;
        volatile long lastPauseNanos;

        PauseTimedCpus(SoftCpuEngine engine) {
            this.engine = engine;
        }

        @Override
        public String name() {
            return engine.name();
        }

        @Override
        public int vcpuCount() {
            return engine.vcpuCount();
        }

        @Override
        public void resume() {
            engine.resume();
        }

        @Override
        public void pause() {
            long t0 = System.nanoTime();
            engine.pause();
            lastPauseNanos = System.nanoTime() - t0;
        }

        @Override
        public void setThrottlePercentage(int percentage) {
            engine.setThrottlePercentage(percentage);
        }

        @Override
        public int throttlePercentage() {
            return engine.throttlePercentage();
        }

        @Override
        public void close() {
            engine.close();
        }
    }
}
