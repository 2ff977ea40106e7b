package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.core.cpu.soft.ContinuationCheck;
import dev.ferry.core.cpu.soft.SoftCpuEngine;
import dev.ferry.core.cpu.soft.SoftVcpuState;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.cpu.soft.WorkingSetCheck;
import dev.ferry.core.device.Device;
import dev.ferry.core.device.SoftInterruptController;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.blk.VirtioBlk;
import dev.ferry.virtio.balloon.VirtioBalloon;
import dev.ferry.virtio.guest.BalloonDriverArea;
import dev.ferry.virtio.guest.BlkDriverArea;
import dev.ferry.virtio.guest.DiskVerifier;
import dev.ferry.virtio.guest.NetDriverArea;
import dev.ferry.virtio.guest.SoftBalloonDriver;
import dev.ferry.virtio.guest.SoftBlkDriver;
import dev.ferry.virtio.guest.SoftNetDriver;
import dev.ferry.virtio.net.VirtioNet;
import dev.ferry.vmm.config.VmConfig;

import java.util.ArrayList;
import java.util.List;

/**
 * The soft engine's workload as a VM's guest, with the soft interrupt controller for its devices
 * and Ferry's guest drivers running beside the vCPUs: per virtio disk a {@link SoftBlkDriver}, per
 * virtio NIC a {@link SoftNetDriver}, for a virtio-balloon a {@link SoftBalloonDriver}. Each driver
 * keeps its rings, buffers and record in an area at the top of RAM, below the previous device's in
 * config order (the first device highest). With a balloon, a region lies below the areas
 * ({@link #balloonRegionBytes}) that the guest wrote at boot and then freed: it hints it to the
 * host during migrations and gives pages of it to the balloon, as a guest inflates with free
 * memory. The working set is kept below all of it.
 */
final class SoftGuest implements VmGuest {
    /** Requests each guest disk driver keeps in flight. */
    static final int DISK_DEPTH = 32;
    /** Data frames each guest NIC driver keeps unanswered, and their length (a full Ethernet frame). */
    static final int NIC_WINDOW = 32;
    static final int NIC_FRAME = 1514;

    private final VmConfig config;
    private final SoftWorkload workload;
    private final SoftCpuEngine cpus;
    private final Machine machine;
    private final SoftInterruptController irqchip = new SoftInterruptController();
    private final List<Disk> disks = new ArrayList<>();
    private final List<Nic> nics = new ArrayList<>();
    /** The lowest driver area so far: the next one ends here. */
    private long areaTop;
    private volatile List<SoftVcpuState> loadedStates;

    /** One disk and its guest driver; {@code loaded} is the driver's progress as a migration left it. */
    private static final class Disk {
        final String id;
        /** The image the disk's writes land on (a vhost-user back-end's: from the config's "image"); may be null. */
        final java.nio.file.Path image;
        final SoftBlkDriver driver;
        volatile BlkDriverArea.Progress loaded;

        Disk(String id, java.nio.file.Path image, SoftBlkDriver driver) {
            this.id = id;
            this.image = image;
            this.driver = driver;
        }
    }

    /** One NIC and its guest driver; {@code loaded} is the driver's progress as a migration left it. */
    private static final class Nic {
        final String id;
        final SoftNetDriver driver;
        volatile NetDriverArea.Progress loaded;

        Nic(String id, SoftNetDriver driver) {
            this.id = id;
            this.driver = driver;
        }
    }

    /** RAM the guest drivers of the config's devices take at the top of RAM. */
    static long driverBytes(VmConfig config) {
        long n = 0;
        for (VmConfig.DeviceConfig d : config.devices()) {
            n += switch (d.kind()) {
                case "virtio-blk", "vhost-user-blk" -> BlkDriverArea.SIZE;
                case "virtio-net", "vhost-user-net" -> NetDriverArea.SIZE;
                case "virtio-balloon" -> BalloonDriverArea.SIZE;
                default -> 0;
            };
        }
        return n;
    }

    /** Linux's free page hint block, the unit of the free region. */
    static final long HINT_BLOCK = 4L << 20;

    /**
     * The size of the balloon's region (freed memory, hinted and inflated with): a quarter of RAM
     * up to 256 MiB, in whole hint blocks; 0 without a balloon.
     */
    static long balloonRegionBytes(VmConfig config) {
        if (config.devices().stream().noneMatch(d -> d.kind().equals("virtio-balloon"))) {
            return 0;
        }
        return Math.min(config.memoryBytes() / 4, 256L << 20) / HINT_BLOCK * HINT_BLOCK;
    }

    /** One balloon and its guest driver; {@code loaded} is the driver's given pages as a migration left them. */
    private static final class Balloon {
        final String id;
        final VirtioBalloon model;
        final SoftBalloonDriver driver;
        volatile long loadedGiven = -1;
        volatile long loadedActualBytes = -1;

        Balloon(String id, VirtioBalloon model, SoftBalloonDriver driver) {
            this.id = id;
            this.model = model;
            this.driver = driver;
        }
    }

    private Balloon balloon;

    SoftGuest(VmConfig config) {
        this.config = config;
        this.areaTop = config.memoryBytes();
        long reserved = driverBytes(config) + balloonRegionBytes(config);
        long ws = Math.min(config.workload().workingSetBytes(), config.memoryBytes() - reserved);
        this.workload = new SoftWorkload(config.vcpus(), config.workload().dirtyRateBytesPerSec(), ws, 0,
                config.workload().seed());
        GuestMemory memory = VmVfs.withDmaRegion(config, GuestMemory.builder().region("pc.ram", 0, config.memoryBytes()))
                .prealloc(config.prealloc()).hugetlb(config.hugetlb()).build();
        if (config.preallocBackground()) {
            memory.populateInBackground();
        }
        this.cpus = new SoftCpuEngine(memory, workload);
        this.machine = new Machine(config.name(), memory, cpus, RunState.PRELAUNCH);
        cpus.registerMigration(machine.migration());
        machine.attachInterruptController(irqchip);
        machine.migration().registerVmState(SoftInterruptController.IDSTR, 0, SoftInterruptController.VMSTATE, irqchip,
                MigrationPriority.DEVICE);
    }

    @Override
    public Machine machine() {
        return machine;
    }

    @Override
    public String engineName() {
        return cpus.name();
    }

    @Override
    public void attachDrivers(VmDevices devices) {
        for (Device d : devices.all()) {
            if (d instanceof VirtioMmioDevice v && v.transport().model().deviceId() == dev.ferry.virtio.Virtio.ID_BLOCK) {
                // virtio-blk, or vhost-user-blk: the guest sees the same device; its capacity is in the config space.
                long area = areaTop -= BlkDriverArea.SIZE;
                long capacity = java.nio.ByteBuffer.wrap(v.transport().model().config())
                        .order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong(0) * 512;
                long blocks = Math.min(BlkDriverArea.MAX_BLOCKS, capacity / 4096);
                SoftBlkDriver driver = new SoftBlkDriver(machine.deviceMemory(), area, machine.mmio(), v.transport().base(),
                        irqchip, v.transport().irq().gsi(), config.workload().seed() ^ disks.size(), DISK_DEPTH, blocks);
                cpus.addProgram(d.id(), driver);
                java.nio.file.Path image = v.transport().model() instanceof VirtioBlk blk ? blk.imagePath()
                        : imageOption(d.id());
                disks.add(new Disk(d.id(), image, driver));
            } else if (d instanceof VirtioMmioDevice v && v.transport().model() instanceof VirtioBalloon b) {
                if (balloon != null) {
                    throw new IllegalStateException("the soft guest drives one balloon; " + d.id() + " is a second");
                }
                long area = areaTop -= BalloonDriverArea.SIZE;
                long region = balloonRegionBytes(config);
                long freeBase = config.memoryBytes() - driverBytes(config) - region;
                SoftBalloonDriver driver = new SoftBalloonDriver(machine.deviceMemory(), area, machine.mmio(),
                        v.transport().base(), irqchip, v.transport().irq().gsi(), freeBase, region / 4096,
                        freeBase, region, HINT_BLOCK, false);
                cpus.addProgram(d.id(), driver);
                balloon = new Balloon(d.id(), b, driver);
            } else if (d instanceof VirtioMmioDevice v && v.transport().model().deviceId() == dev.ferry.virtio.Virtio.ID_NET) {
                long area = areaTop -= NetDriverArea.SIZE;
                SoftNetDriver driver = new SoftNetDriver(machine.deviceMemory(), area, machine.mmio(), v.transport().base(),
                        irqchip, v.transport().irq().gsi(), NIC_WINDOW, NIC_FRAME);
                cpus.addProgram(d.id(), driver);
                nics.add(new Nic(d.id(), driver));
            } else {
                throw new IllegalStateException("the soft guest has no driver for " + d.id() + " (" + d.kind() + ")");
            }
        }
    }

    /** The {@code "image"} option of a vhost-user-blk config entry: what its back-end serves. */
    private java.nio.file.Path imageOption(String id) {
        for (VmConfig.DeviceConfig c : config.devices()) {
            if (c.id().equals(id) && c.options() != null && c.options().hasNonNull("image")) {
                return java.nio.file.Path.of(c.options().get("image").asText());
            }
        }
        return null;
    }

    @Override
    public void boot() {
        if (config.workload().populate() > 0) {
            cpus.populate(config.workload().populate());
        }
    }

    @Override
    public void loaded() {
        loadedStates = cpus.snapshot();
        for (Disk d : disks) {
            d.loaded = d.driver.area().progress();
        }
        for (Nic n : nics) {
            n.loaded = n.driver.area().progress();
        }
        if (balloon != null) {
            balloon.loadedGiven = balloon.driver.area().get(BalloonDriverArea.R_GIVEN);
            balloon.loadedActualBytes = balloon.model.actualBytes();
        }
    }

    private void balloon(ObjectNode o) {
        Balloon b = balloon;
        BalloonDriverArea a = b.driver.area();
        o.put("id", b.id).put("actual", b.model.actualBytes()).put("target-pages", b.model.numPages())
                .put("given-pages", a.get(BalloonDriverArea.R_GIVEN))
                .put("discarded-pages", machine.memory().discardedPages())
                .put("host-allocated-bytes", machine.memory().allocatedBytes())
                .put("hint-rounds", a.get(BalloonDriverArea.R_HINT_ROUNDS))
                .put("hint-blocks", a.get(BalloonDriverArea.R_HINT_BLOCKS))
                .put("hinted-pages", b.model.counters().hintedPages())
                .put("hint-bytes-saved", b.model.counters().hintBytesSaved())
                .put("stats-sent", a.get(BalloonDriverArea.R_STATS_SENT)).put("errors", a.get(BalloonDriverArea.R_ERRORS))
                .put("free-region-written", a.get(BalloonDriverArea.R_FREE_READY) != 0);
    }

    /**
     * The balloon's verdict: its driver saw no error, the pages it gave are holes in this VM's RAM
     * (the host got them back), and after a migration it holds what it held at load.
     */
    private void verifyBalloon(ObjectNode o) {
        ObjectNode bn = o.putObject("balloon");
        balloon(bn);
        ArrayNode problems = bn.putArray("problems");
        long given = balloon.driver.area().get(BalloonDriverArea.R_GIVEN);
        if (balloon.driver.area().get(BalloonDriverArea.R_ERRORS) != 0) {
            problems.add("the guest balloon driver stopped on error " + balloon.driver.area().get(BalloonDriverArea.R_ERRORS));
        }
        long holes = 0;
        for (long i = 0; i < given; i++) {
            holes += machine.memory().isDiscarded(new dev.ferry.core.memory.Gpa(balloon.driver.balloonPage(i))) ? 1 : 0;
        }
        bn.put("given-pages-discarded", holes);
        if (holes != given) {
            problems.add((given - holes) + " of the " + given + " pages in the balloon are backed by host memory");
        }
        if (balloon.loadedGiven >= 0) {
            bn.put("given-pages-at-load", balloon.loadedGiven).put("actual-at-load", balloon.loadedActualBytes);
        }
        bn.put("ok", problems.isEmpty());
    }

    @Override
    public void describe(ObjectNode o) {
        o.put("pages-written", cpus.pagesWritten());
        o.put("bytes-dirtied", cpus.bytesDirtied());
        if (!disks.isEmpty()) {
            ArrayNode a = o.putArray("disks");
            for (Disk d : disks) {
                progress(a.addObject().put("id", d.id), d.driver.area().progress());
            }
        }
        if (!nics.isEmpty()) {
            ArrayNode a = o.putArray("nics");
            for (Nic n : nics) {
                progress(a.addObject().put("id", n.id), n.driver.area().progress());
            }
        }
        if (balloon != null) {
            balloon(o.putObject("balloon"));
        }
    }

    private static void progress(ObjectNode o, NetDriverArea.Progress p) {
        o.put("started", p.started()).put("last-sent-seq", p.lastSentSeq()).put("tx-sent", p.txSent())
                .put("tx-completed", p.txCompleted()).put("rx-frames", p.rxFrames()).put("peer-frames", p.peerFrames())
                .put("last-peer-seq", p.lastPeerSeq()).put("peer-lost", p.peerLost()).put("peer-gaps", p.peerGaps())
                .put("peer-dups", p.peerDups()).put("announces-seen", p.announcesSeen())
                .put("announce-acks", p.announceAcks()).put("garps-sent", p.garpsSent()).put("ctrl-errors", p.ctrlErrors())
                .put("errors", p.errors()).put("echo-bad", p.echoBad()).put("interrupts", p.interrupts());
        ArrayNode gaps = o.putArray("peer-gaps-seq");
        for (NetDriverArea.Gap g : p.gaps()) {
            gaps.addObject().put("expected", g.expected()).put("got", g.got());
        }
    }

    private static void progress(ObjectNode o, BlkDriverArea.Progress p) {
        o.put("started", p.started()).put("submitted", p.submitted()).put("completed", p.completed())
                .put("writes-acked", p.writesAcked()).put("reads-verified", p.readsVerified())
                .put("read-mismatches", p.readMismatches()).put("io-errors", p.ioErrors()).put("errors", p.errors())
                .put("interrupts", p.interrupts()).put("in-flight", p.inFlight()).put("resets", p.resets())
                .put("resubmitted", p.resubmitted()).put("reset-failures", p.resetFailures())
                .put("reset-pending", p.resetPending());
    }

    @Override
    public void verify(ObjectNode o) {
        WorkingSetCheck ws = SoftCpuEngine.verifyWorkingSet(machine.memory(), workload);
        ObjectNode w = o.putObject("working-set");
        w.put("intact", ws.intact()).put("pages", ws.pages()).put("written", ws.written()).put("corrupt", ws.corrupt());
        if (ws.firstCorrupt() != null) {
            w.put("first-corrupt", ws.firstCorrupt().toString());
        }
        List<SoftVcpuState> loaded = loadedStates;
        if (loaded != null) {
            ContinuationCheck c = SoftCpuEngine.verifyContinuation(machine.memory(), workload, loaded, cpus.snapshot());
            ObjectNode cn = o.putObject("continuation");
            cn.put("ok", c.ok()).put("steps-replayed", c.stepsReplayed());
            ArrayNode problems = cn.putArray("problems");
            c.problems().forEach(problems::add);
        }
        if (!nics.isEmpty()) {
            verifyNics(o);
        }
        if (balloon != null) {
            verifyBalloon(o);
        }
        if (!disks.isEmpty()) {
            ArrayNode a = o.putArray("disks");
            for (Disk d : disks) {
                ObjectNode dn = a.addObject().put("id", d.id).put("image", String.valueOf(d.image));
                BlkDriverArea.Progress now = d.driver.area().progress();
                progress(dn, now);
                ArrayNode problems = dn.putArray("problems");
                boolean ok;
                boolean reset = false;
                try {
                    if (d.image == null) {
                        throw new java.io.IOException("no image to check: give the vhost-user-blk device the \"image\""
                                + " its back-end serves");
                    }
                    // A vhost-user disk whose back-end was lost with requests out and no in-flight
                    // region asks for a reset by policy (docs/vhost-user.md): the driver resets it and
                    // submits again what had no completion, and is verified as any other. Only a
                    // driver that stopped at its reset limit (the device kept needing resets) is
                    // judged by its image alone.
                    reset = now.deviceNeedsReset();
                    DiskVerifier.Verdict v = DiskVerifier.verifyImage(d.driver.area(), d.image, false, reset);
                    dn.put("blocks-checked", v.blocksChecked()).put("blocks-written", v.blocksWritten());
                    dn.put("needs-reset", reset);
                    v.problems().forEach(problems::add);
                    ok = v.ok();
                } catch (java.io.IOException e) {
                    problems.add("reading the image failed: " + e.getMessage());
                    ok = false;
                }
                if (d.loaded != null && !reset) { // a driver that gave up on its device carries no I/O on
                    ObjectNode cn = dn.putObject("continuation");
                    List<String> cont = DiskVerifier.verifyContinuation(d.loaded, now, 1);
                    cn.put("ok", cont.isEmpty()).put("completed-at-load", d.loaded.completed())
                            .put("in-flight-at-load", d.loaded.inFlight());
                    cont.forEach(problems::add);
                    ok &= cont.isEmpty();
                }
                dn.put("ok", ok);
            }
        }
    }

    /**
     * Per NIC: the guest driver saw no protocol error, no corrupt echo and no duplicated or
     * reordered peer frame, and (after a migration) its sequence went on from where it was loaded.
     * Frames lost while the guest was down are counted, not failed: the demo's peer reports them.
     */
    private void verifyNics(ObjectNode o) {
        ArrayNode a = o.putArray("nics");
        for (Nic n : nics) {
            NetDriverArea.Progress now = n.driver.area().progress();
            ObjectNode nn = a.addObject().put("id", n.id);
            progress(nn, now);
            ArrayNode problems = nn.putArray("problems");
            if (now.errors() != 0) {
                problems.add("the guest NIC driver stopped on error " + now.firstError());
            }
            if (now.echoBad() != 0) {
                problems.add(now.echoBad() + " echoed frames came back corrupt");
            }
            if (now.peerDups() != 0) {
                problems.add(now.peerDups() + " peer frames came twice or out of order");
            }
            if (n.loaded != null) {
                if (now.lastSentSeq() <= n.loaded.lastSentSeq()) {
                    problems.add("the guest sent nothing after the migration (last seq " + now.lastSentSeq() + ")");
                }
                nn.putObject("continuation").put("last-sent-seq-at-load", n.loaded.lastSentSeq())
                        .put("peer-frames-at-load", n.loaded.peerFrames());
            }
            nn.put("ok", problems.isEmpty());
        }
    }

    /** The balloon's region is memory the guest freed and hinted: its contents need not migrate. */
    @Override
    public long memoryDigest() {
        long region = balloonRegionBytes(config);
        if (balloon == null || region == 0) {
            return machine.memory().digest();
        }
        long freeBase = config.memoryBytes() - driverBytes(config) - region;
        return machine.memory().digestExcept(new long[][] {{freeBase, region}});
    }

    @Override
    public void close() {
        machine.close();
    }
}
