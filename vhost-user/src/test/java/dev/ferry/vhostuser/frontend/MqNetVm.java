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
import dev.ferry.virtio.guest.SoftMqNetDriver;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Predicate;

/** A soft VM with a multiqueue vhost-user-net NIC ({@code queues} pairs) and Ferry's multiqueue guest driver. */
final class MqNetVm implements AutoCloseable {
    final Machine machine;
    final SoftInterruptController irqchip = new SoftInterruptController();
    final VirtioMmioDevice nic;
    final SoftMqNetDriver driver;

    MqNetVm(String name, Path socket, int queues, boolean incoming) throws Exception {
        this(name, socket, queues, incoming, true);
    }

    /** {@code withDriver} false: no guest program; a test drives the NIC itself. */
    MqNetVm(String name, Path socket, int queues, boolean incoming, boolean withDriver) throws Exception {
        GuestMemory memory = GuestMemory.ofSize(64L << 20);
        SoftCpuEngine cpus = new SoftCpuEngine(memory, SoftWorkload.of(1, 1L << 20, 8L << 20, 7));
        machine = new Machine(name, memory, cpus, incoming ? RunState.INMIGRATE : RunState.PRELAUNCH);
        try {
            cpus.registerMigration(machine.migration());
            machine.attachInterruptController(irqchip);
            machine.migration().registerVmState(SoftInterruptController.IDSTR, 0, SoftInterruptController.VMSTATE,
                    irqchip, dev.ferry.core.migration.MigrationPriority.DEVICE);
            DevicePlacement placement = new DevicePlacement(machine, incoming, (dev, state, event, data) -> { });
            Map<String, Object> opts = new LinkedHashMap<>();
            opts.put("socket", socket.toString());
            opts.put("queues", queues);
            nic = (VirtioMmioDevice) new VhostUserNetKind().create(placement.contextFor("nic0"),
                    new DeviceOptions("devices[0]", opts));
            machine.addDevice(nic);
            driver = withDriver ? new SoftMqNetDriver(machine.deviceMemory(), 40L << 20, machine.mmio(),
                    nic.transport().base(), irqchip, nic.transport().irq().gsi(), queues, 16, 128) : null;
            if (driver != null) {
                cpus.addProgram("nic0", driver);
            }
        } catch (Exception | Error e) {
            machine.close();
            throw e;
        }
    }

    VhostUserNet model() {
        return (VhostUserNet) nic.transport().model();
    }

    @SuppressWarnings("unchecked")
    Map<String, Object> vun() {
        Map<String, Object> d = new LinkedHashMap<>();
        nic.describe(d);
        return (Map<String, Object>) d.get(VhostUserNet.NAME);
    }

    /** Waits up to 20 s for {@code done}; returns the last progress seen. */
    SoftMqNetDriver.Progress await(Predicate<SoftMqNetDriver.Progress> done) throws InterruptedException {
        long deadline = System.nanoTime() + 20_000_000_000L;
        SoftMqNetDriver.Progress p = driver.progress();
        while (!done.test(p) && p.errors() == 0 && System.nanoTime() < deadline) {
            Thread.sleep(10);
            p = driver.progress();
        }
        return p;
    }

    @Override
    public void close() {
        machine.close();
    }
}
