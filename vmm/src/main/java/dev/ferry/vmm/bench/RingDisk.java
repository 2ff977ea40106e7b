package dev.ferry.vmm.bench;

import dev.ferry.core.device.DeviceConfigException;
import dev.ferry.core.device.DeviceOptions;
import dev.ferry.core.device.DevicePlacement;
import dev.ferry.core.device.SoftInterruptController;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.machine.VmStateChangeException;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.blk.VirtioBlkKind;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A running machine with one virtio-blk disk on {@code image} (the config kind, as {@code ferry run}
 * builds it: 256-entry queue, depth 32, {@code ioThreads} I/O threads, errors reported) and the
 * benchmark's guest driver booted on it, its rings and buffers at guest-physical 0. The calling
 * thread plays the only vCPU ({@link BenchThreadCpus}).
 */
final class RingDisk implements AutoCloseable {
    private static final long MiB = 1 << 20;
    private final Machine machine;
    private final VirtioMmioDevice disk;
    private final RingBlkDriver driver;

    RingDisk(Path image, int depth, int maxIoSize, int ioThreads) throws DeviceConfigException, VmStateChangeException {
        long ram = RingBlkDriver.areaBytes(depth, maxIoSize) + 4 * MiB & -MiB;
        machine = new Machine("bench-disk", GuestMemory.ofSize(ram), new BenchThreadCpus(), RunState.PRELAUNCH);
        try {
            SoftInterruptController irqchip = new SoftInterruptController();
            machine.attachInterruptController(irqchip);
            DevicePlacement placement = new DevicePlacement(machine, false, (dev, state, event, data) -> {
                throw new IllegalStateException(dev + " asked to stop the VM (" + event + " " + data + ")");
            });
            Map<String, Object> opts = new LinkedHashMap<>();
            opts.put("image", image.toString());
            opts.put("queue-size", 256);
            opts.put("depth", 32);
            opts.put("io-threads", ioThreads);
            disk = (VirtioMmioDevice) new VirtioBlkKind().create(placement.contextFor("disk0"),
                    new DeviceOptions("bench.disk0", opts));
            machine.addDevice(disk);
            machine.vmStart();
            driver = new RingBlkDriver(machine.deviceMemory(), machine.mmio(), disk.transport().base(), irqchip,
                    disk.transport().irq().gsi(), 0, depth, maxIoSize);
            driver.fillBuffers(0xB1C);
            driver.boot();
        } catch (DeviceConfigException | VmStateChangeException | RuntimeException e) {
            machine.close();
            throw e;
        }
    }

    RingBlkDriver driver() {
        return driver;
    }

    /** The device's {@code virtio-blk} counters (requests, bytes, by type, ...). */
    @SuppressWarnings("unchecked")
    Map<String, Object> counters() {
        Map<String, Object> d = new LinkedHashMap<>();
        disk.describe(d);
        return (Map<String, Object>) d.get("virtio-blk");
    }

    /** Guest RAM, for checking what the driver's buffers hold. */
    GuestMemory memory() {
        return machine.memory();
    }

    @Override
    public void close() {
        machine.close();
    }
}
