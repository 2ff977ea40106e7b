package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.vfio.device.GuestDmaSpace;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.emulated.EmulatedNicVf;
import dev.ferry.vfio.emulated.EmulatedSriovPf;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.emulated.NicDriver;
import dev.ferry.vfio.emulated.NicRegisters;
import dev.ferry.vfio.emulated.NicVerifier;
import dev.ferry.vfio.kernel.KernelVfioDeviceFactory;
import dev.ferry.vfio.migration.VfioDeviceConfig;
import dev.ferry.vfio.migration.VfioMigration;
import dev.ferry.vfio.migration.VfioMigrationStats;
import dev.ferry.vfio.uapi.VfioDeviceState;
import dev.ferry.vmm.config.VmConfig;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The VM's VFIO devices: emulated SR-IOV NIC VFs (config kind {@code vf}) on one emulated PF, and
 * kernel VFIO devices (kind {@code vfio}). Each is attached to the machine's migration through
 * {@link VfioMigration} (QEMU's handler sequence).
 *
 * <h2>Where the VFs live</h2>
 * Guest-physical layout, the same on source and destination (so the config section can check it):
 * <pre>
 *   0xFE00_0000 + i * 4 KiB   BAR0 of VF i on the MMIO bus
 *   4 GiB + i * 4 MiB         the memory VF i's driver owns: RX/TX rings, mailbox, buffers
 *                             (the "vf-dma" RAM region, migrated with the rest of guest RAM)
 * </pre>
 * The guest's own workload never touches the vf-dma region, so the guest's verification and the
 * VFs' verification judge disjoint memory. On a fresh boot the VMM brings each VF up through
 * {@link NicDriver} — MMIO accesses and guest memory only, as a guest's VF driver would — in
 * auto-recycle RX mode, so the VF keeps receiving from its wire and DMAing for as long as it
 * runs. An incoming VM does nothing: the VF's state and its driver's memory arrive by migration.
 */
final class VmVfs implements AutoCloseable {
    static final long BAR_BASE = 0xFE00_0000L;
    static final long DMA_BASE = 1L << 32;
    static final long DMA_PER_VF = 4L << 20;

    /** One VFIO device of the VM. */
    private record Vf(String id, VfioDevice device, EmulatedNicVf nic, long bar, NicDriver.Layout layout,
                      VfioMigration migration, java.util.concurrent.atomic.AtomicLong ringStart) {
    }

    private final Machine machine;
    private final EmulatedSriovPf pf;
    private final List<Vf> vfs = new ArrayList<>();
    private final List<NicDriver> drivers = new ArrayList<>();
    private final Map<String, Integer> resetsSeen = new java.util.concurrent.ConcurrentHashMap<>();
    private final java.util.concurrent.atomic.AtomicInteger driverRestarts = new java.util.concurrent.atomic.AtomicInteger();

    private VmVfs(Machine machine, EmulatedSriovPf pf) {
        this.machine = machine;
        this.pf = pf;
    }

    static long emulatedCount(VmConfig config) {
        return config.devices().stream().filter(d -> d.kind().equals("vf")).count();
    }

    /** Adds the vf-dma region to a VM with emulated VFs. */
    static GuestMemory.Builder withDmaRegion(VmConfig config, GuestMemory.Builder b) {
        long n = emulatedCount(config);
        return n == 0 ? b : b.region("vf-dma", DMA_BASE, n * DMA_PER_VF);
    }

    /**
     * Creates and attaches every VFIO device of {@code config}. {@code digestAtLoad} makes each
     * emulated VF take its state digest when a migrated state is applied (verification runs).
     */
    static VmVfs attach(VmConfig config, Machine machine, boolean digestAtLoad) throws VmmException {
        long n = emulatedCount(config);
        EmulatedSriovPf pf = n == 0 ? null : new EmulatedSriovPf("pf0", (int) Math.max(8, n));
        VmVfs vfs = new VmVfs(machine, pf);
        machine.addDevice(vfs); // closed after the migrations attached below (reverse order)
        machine.migration().addNotifier(ev -> {
            if (ev == dev.ferry.core.migration.MigrationEvent.FAILED
                    || ev == dev.ferry.core.migration.MigrationEvent.CANCELLED) {
                vfs.restartDriversOfResetVfs();
            }
        });
        GuestDmaSpace dma = new GuestDmaSpace(machine.memory());
        int index = 0;
        for (VmConfig.DeviceConfig d : config.devices()) {
            switch (d.kind()) {
                case "vf" -> {
                    EmulatedVfSpec spec = EmulatedVfSpec.parse(d.options().path("flags").asText(""));
                    EmulatedNicVf nic = pf.createVf(index, d.id(), spec, dma);
                    nic.digestAtLoad(digestAtLoad);
                    long bar = BAR_BASE + (long) index * NicRegisters.BAR0_SIZE;
                    machine.mmio().register(d.id(), bar, NicRegisters.BAR0_SIZE, nic.bar0());
                    NicDriver.Layout layout = NicDriver.Layout.standard(DMA_BASE + index * DMA_PER_VF);
                    java.util.concurrent.atomic.AtomicLong ringStart = new java.util.concurrent.atomic.AtomicLong();
                    VfioMigration m = VfioMigration.attach(machine, nic, VfioMigration.Options.defaults()
                            .withConfig(new BarConfig(d.id(), bar, layout.base(), ringStart)));
                    vfs.vfs.add(new Vf(d.id(), nic, nic, bar, layout, m, ringStart));
                    index++;
                }
                case "vfio" -> {
                    VfioDevice dev;
                    try {
                        dev = KernelVfioDeviceFactory.host().open(d.id(), d.options().path("host").asText(), dma);
                    } catch (VfioException e) {
                        throw VmmException.generic("device " + d.id() + ": " + e.getMessage());
                    }
                    machine.addDevice(dev);
                    VfioMigration m = VfioMigration.attach(machine, dev);
                    vfs.vfs.add(new Vf(d.id(), dev, null, 0, null, m, null));
                }
                default -> { }
            }
        }
        return vfs;
    }

    /** Fresh boot: every emulated VF's driver brings it up (rings, MAC, filters, RX). */
    void bringUp() {
        for (Vf vf : vfs) {
            if (vf.nic() != null) {
                NicDriver driver = new NicDriver(vf.id(), machine.mmio(), vf.bar(), machine.memory(), vf.layout());
                vf.ringStart().set(vf.nic().wirePosition());
                driver.bringUp();
                drivers.add(driver);
            }
        }
    }

    /**
     * What the guest's VF driver does when its function was reset under it (QEMU's recovery
     * resets a device whose state change failed; the reset is guest-visible): it brings the VF up
     * again. Runs when a migration failed or was cancelled, after the VM runs again.
     */
    void restartDriversOfResetVfs() {
        for (Vf vf : vfs) {
            if (vf.nic() == null) {
                continue;
            }
            int resets = vf.nic().resets();
            Integer seen = resetsSeen.put(vf.id(), resets);
            if (resets > (seen == null ? 0 : seen) && vf.device().deviceStateOrError() == VfioDeviceState.RUNNING) {
                // fresh rings, as a driver allocating them anew (the reset stopped RX: nothing DMAs)
                machine.memory().fill(dev.ferry.core.memory.Gpa.of(vf.layout().base()), DMA_PER_VF, (byte) 0);
                vf.ringStart().set(vf.nic().wirePosition());
                new NicDriver(vf.id(), machine.mmio(), vf.bar(), machine.memory(), vf.layout()).bringUp();
                driverRestarts.incrementAndGet();
            }
        }
    }

    boolean isEmpty() {
        return vfs.isEmpty();
    }

    /**
     * Each VF now: device state, migration statistics, and (emulated VFs) its wire and counters.
     * With {@code verify} — the VM must be stopped, so that no VF DMAs — also the state digest
     * and the check of the RX ring its DMA wrote into guest memory.
     */
    ArrayNode describe(boolean verify) {
        ArrayNode out = QapiJson.JSON.createArrayNode();
        for (Vf vf : vfs) {
            ObjectNode o = out.addObject();
            o.put("id", vf.id());
            o.put("kind", vf.nic() != null ? "vf" : "vfio");
            o.put("device-state", vf.device().deviceStateOrError().name());
            vf.migration().capabilities().ifPresent(c -> o.put("migration", c.toString()));
            vf.migration().blocker().ifPresent(b -> o.put("blocker", b.reason()));
            stats(o.putObject("stats"), vf.migration().stats());
            EmulatedNicVf nic = vf.nic();
            if (nic == null) {
                continue;
            }
            o.put("flags", nic.spec().toFlags());
            o.put("state-bytes", nic.spec().stateBytes());
            o.put("wire-position", nic.wirePosition());
            o.put("rx-packets", nic.counter(NicRegisters.RX_PACKETS));
            o.put("dma-bytes", nic.dmaBytes());
            o.put("resets", nic.resets());
            o.put("driver-restarts", driverRestarts.get());
            nic.loadDigest().ifPresent(h -> o.put("digest-at-load", Vmm.hex(h)));
            if (verify) {
                o.put("state-digest", Vmm.hex(nic.stateDigest()));
                ObjectNode ring = o.putObject("ring");
                try {
                    NicVerifier v = new NicVerifier(machine.memory(), vf.layout(), nic.filter(), false, nic.wireSeed(),
                            vf.ringStart().get(), nic::wirePosition);
                    NicVerifier.Report r = v.verify();
                    v.verifyCounters(r, nic.counter(NicRegisters.RX_PACKETS), nic.counter(NicRegisters.RX_BYTES),
                            nic.counter(NicRegisters.RX_DROPS));
                    ring.put("ok", true).put("deliveries", r.deliveries()).put("last-sequence", r.lastSequence())
                            .put("bytes", r.bytes());
                } catch (RuntimeException e) { // NicVerifier.Failure, or a ring pointing outside guest RAM
                    ring.put("ok", false).put("error", e.getMessage());
                }
            }
        }
        return out;
    }

    private static void stats(ObjectNode o, VfioMigrationStats.Snapshot s) {
        o.put("precopy-bytes", s.precopyBytes());
        o.put("stop-copy-bytes", s.stopCopyBytes());
        o.put("loaded-bytes", s.loadedBytes());
        o.put("iterate-reads", s.iterateReads());
        o.put("resets", s.resets());
        o.put("lost", s.lost());
        o.put("dma-syncs", s.dmaSyncs());
        o.put("dma-dirty-pages", s.dmaDirtyPages());
        ObjectNode in = o.putObject("ms-in-state");
        for (Map.Entry<VfioDeviceState, Long> e : s.nanosInState().entrySet()) {
            in.put(e.getKey().name(), e.getValue() / 1e6);
        }
        ObjectNode set = o.putObject("set-ms");
        for (Map.Entry<String, Long> e : s.setNanos().entrySet()) {
            set.put(e.getKey(), e.getValue() / 1e6);
        }
        ArrayNode errors = o.putArray("errors");
        s.errors().forEach(errors::add);
        ArrayNode warnings = o.putArray("warnings");
        s.warnings().forEach(warnings::add);
    }

    @Override
    public void close() {
        if (pf != null) {
            pf.close();
        }
    }

    /**
     * What QEMU's vfio-pci keeps outside the device and sends in the config section: here the
     * BAR0 address and the driver area, which must match on the destination (a different layout
     * would leave the migrated driver programming dangling), and the wire position at which the
     * guest's driver last set the rings up (what the ring verification numbers deliveries from).
     */
    private record BarConfig(String id, long bar, long driverArea, java.util.concurrent.atomic.AtomicLong ringStart)
            implements VfioDeviceConfig {
        @Override
        public byte[] save() {
            return ByteBuffer.allocate(24).putLong(bar).putLong(driverArea).putLong(ringStart.get()).array();
        }

        @Override
        public void load(byte[] state) {
            if (state.length != 24) {
                throw new IllegalArgumentException(id + ": config state of " + state.length + " bytes, expected 24");
            }
            ByteBuffer b = ByteBuffer.wrap(state);
            long srcBar = b.getLong();
            long srcArea = b.getLong();
            long start = b.getLong();
            if (srcBar != bar || srcArea != driverArea) {
                throw new IllegalArgumentException(String.format("%s: the source put BAR0 at 0x%x and the driver"
                        + " area at 0x%x; this VM has them at 0x%x and 0x%x", id, srcBar, srcArea, bar, driverArea));
            }
            if (start < 0) {
                throw new IllegalArgumentException(id + ": ring start " + start + " is negative");
            }
            ringStart.set(start);
        }
    }
}
