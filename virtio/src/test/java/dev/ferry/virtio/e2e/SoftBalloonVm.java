package dev.ferry.virtio.e2e;

import dev.ferry.core.cpu.soft.SoftCpuEngine;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.device.DeviceOptions;
import dev.ferry.core.device.DevicePlacement;
import dev.ferry.core.device.SoftInterruptController;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.memory.PageResidency;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.balloon.VirtioBalloon;
import dev.ferry.virtio.balloon.VirtioBalloonKind;
import dev.ferry.virtio.guest.BalloonDriverArea;
import dev.ferry.virtio.guest.SoftBalloonDriver;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;

/**
 * A soft-engine VM with a virtio-balloon and Ferry's guest balloon driver beside a page-dirtying
 * vCPU. Layout ({@code ram} ≥ 64 MiB):
 * <pre>
 *   [0, 16 MiB)             the vCPU's working set
 *   40 MiB                  the driver's area
 *   [44, 52 MiB)            balloon pages the driver may give (2048)
 *   [ram − free, ram)       the region the guest wrote, freed and hints (at least 52 MiB up)
 * </pre>
 * Built the same way on a source and a destination.
 */
final class SoftBalloonVm implements AutoCloseable {
    static final long MiB = 1L << 20;
    static final long AREA = 40 * MiB;
    static final long BALLOON = 44 * MiB;
    static final long BALLOON_PAGES = 2048;
    static final long SEED = 7;

    final Machine machine;
    final SoftCpuEngine cpus;
    final SoftInterruptController irqchip = new SoftInterruptController();
    final VirtioMmioDevice device;
    final SoftBalloonDriver driver;
    final long ram;
    final long freeBase;
    final long freeBytes;

    SoftBalloonVm(String name, boolean incoming) throws Exception {
        this(name, incoming, 64 * MiB, 8 * MiB, Map.of(), false, 20 * MiB);
    }

    SoftBalloonVm(String name, boolean incoming, long ram, long freeBytes, Map<String, Object> options, boolean reuse,
                  long dirtyRate) throws Exception {
        if (ram - freeBytes < BALLOON + BALLOON_PAGES * 4096) {
            throw new IllegalArgumentException("the free region overlaps the balloon pages");
        }
        this.ram = ram;
        this.freeBytes = freeBytes;
        this.freeBase = ram - freeBytes;
        GuestMemory memory = GuestMemory.ofSize(ram);
        cpus = new SoftCpuEngine(memory, SoftWorkload.of(1, dirtyRate, 16 * MiB, SEED));
        machine = new Machine(name, memory, cpus, incoming ? RunState.INMIGRATE : RunState.PRELAUNCH);
        try {
            cpus.registerMigration(machine.migration());
            machine.attachInterruptController(irqchip);
            machine.migration().registerVmState(SoftInterruptController.IDSTR, 0, SoftInterruptController.VMSTATE,
                    irqchip, MigrationPriority.DEVICE);
            DevicePlacement placement = new DevicePlacement(machine, incoming, (dev, state, event, data) -> {
            });
            device = (VirtioMmioDevice) new VirtioBalloonKind().create(placement.contextFor("balloon0"),
                    new DeviceOptions("devices[0]", options));
            machine.addDevice(device);
        } catch (Exception | Error e) {
            machine.close();
            throw e;
        }
        driver = new SoftBalloonDriver(machine.deviceMemory(), AREA, machine.mmio(), device.transport().base(), irqchip,
                device.transport().irq().gsi(), BALLOON, BALLOON_PAGES, freeBase, freeBytes, Math.min(4 * MiB, freeBytes), reuse);
        cpus.addProgram("balloon0", driver);
    }

    VirtioBalloon balloon() {
        return (VirtioBalloon) device.transport().model();
    }

    long reg(int r) {
        return driver.area().get(r);
    }

    /** Waits (bounded, 20 s) for {@code what}; the failure names it and the device's state. */
    void await(String what, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                Map<String, Object> m = new java.util.LinkedHashMap<>();
                device.describe(m);
                throw new AssertionError(machine.name() + ": " + what + " did not happen; device " + m
                        + "; driver errors " + reg(BalloonDriverArea.R_ERRORS));
            }
            Thread.sleep(2);
        }
    }

    /** Asks for {@code pages} in the balloon and waits until the driver reports them. */
    void balloonTo(long pages) throws InterruptedException {
        balloon().setTarget(ram - pages * 4096);
        await("actual = " + pages, () -> balloon().actualPages() == pages && reg(BalloonDriverArea.R_PFN_OP) == 0);
    }

    /** The inflated pages (the first R_GIVEN of the balloon region) that the host still backs; 0 when all are holes. */
    long inflatedPagesBacked() {
        return balloonPagesBacked(reg(BalloonDriverArea.R_GIVEN));
    }

    /** How many of the first {@code given} balloon pages the host backs (mincore, without touching them). */
    long balloonPagesBacked(long given) {
        GuestRegion r = machine.memory().regions().get(0);
        long backed = 0;
        try (PageResidency res = new PageResidency()) {
            for (long i = 0; i < given; i++) {
                if (res.mayHoldData(r, (BALLOON >>> 12) + i)) {
                    backed++;
                }
            }
        }
        return backed;
    }

    /**
     * Compares this (stopped) source's RAM with a destination's, page by page: inflated pages are
     * discarded on both sides (and not read); free-region pages are either sent or hinted away
     * (the source's bytes or zero), except pages the guest reused after hinting, which must match;
     * every other page must match. Returns the problems found.
     */
    List<String> compareRam(SoftBalloonVm dst) {
        List<String> problems = new ArrayList<>();
        GuestMemory a = machine.memory();
        GuestMemory b = dst.machine.memory();
        byte[] pa = new byte[4096];
        byte[] pb = new byte[4096];
        byte[] zero = new byte[4096];
        long reusedEnd = freeBase + (reg(BalloonDriverArea.R_REUSE_WRITES) << 12);
        for (long gpa = 0; gpa < ram && problems.size() < 10; gpa += 4096) {
            dev.ferry.core.memory.Gpa g = new dev.ferry.core.memory.Gpa(gpa);
            boolean da = a.isDiscarded(g);
            if (da != b.isDiscarded(g)) {
                problems.add(String.format("page 0x%x discarded %s on the source, %s on the destination", gpa, da, !da));
                continue;
            }
            if (da) {
                continue;
            }
            a.read(g, pa, 0, 4096);
            b.read(g, pb, 0, 4096);
            boolean free = gpa >= reusedEnd && gpa < freeBase + freeBytes;
            if (!Arrays.equals(pa, pb) && !(free && Arrays.equals(pb, zero))) {
                problems.add(String.format("page 0x%x differs", gpa));
            }
        }
        return problems;
    }

    @Override
    public void close() {
        machine.close();
    }
}
