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
}
