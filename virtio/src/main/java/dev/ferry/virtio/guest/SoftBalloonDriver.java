package dev.ferry.virtio.guest;

import dev.ferry.core.cpu.soft.SoftGuestProgram;
import dev.ferry.core.device.SoftInterruptController;
import dev.ferry.core.machine.IoBus;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.balloon.BalloonConfig;
import dev.ferry.virtio.balloon.BalloonStats;
import dev.ferry.virtio.balloon.FreePageHinting;
import dev.ferry.virtio.balloon.VirtioBalloon;

import java.util.concurrent.TimeUnit;

/**
 * Ferry's guest virtio-balloon driver for the soft engine, driving the device only through
 * registers, rings in guest RAM and interrupts, with its state in a {@link BalloonDriverArea}.
 *
 * <ul>
 *   <li><b>Balloon</b>: follows {@code num_pages} with pages of a region it owns and never writes
 *   (the first {@code R_GIVEN} pages are in the balloon), up to 256 PFNs per request, and reports
 *   {@code actual} after each completes.</li>
 *   <li><b>Stats</b>: reports at start, and again each time the device returns the buffer.</li>
 *   <li><b>Free page hinting</b>: the guest wrote its "free region" at boot and then freed it;
 *   on each new command id it sends the id, the free region in blocks (in-buffers), then STOP —
 *   ending early when the host publishes another id. In reuse mode it writes a page of the first
 *   block right after that block was hinted (guest memory reused after its hint), recording
 *   where and what, so a verifier can check the migration sent it.</li>
 * </ul>
 * Runs on its own soft vCPU thread; one slice reaps completions, issues the next requests and,
 * with nothing else to do, waits up to 2 ms for the device's interrupt.
 */
public final class SoftBalloonDriver implements SoftGuestProgram {
    private static final long WAIT_NANOS = TimeUnit.MILLISECONDS.toNanos(2);
    public static final long ERR_DEVICE = 1;
    public static final long ERR_BAD_USED = 2;
    private static final int Q_INFLATE = 0;
    private static final int Q_DEFLATE = 1;
    private static final int F_WRITE = 2;

    private final BalloonDriverArea area;
    private final DeviceMemory mem;
    private final IoBus mmio;
    private final long regs;
    /** The handshake and queue setup, written once for every soft driver. */
    private final GuestMmio io;
    private final SoftInterruptController irqchip;
    private final int irqMask;
    private final long balloonBase;
    private final long balloonPages;
    private final long freeBase;
    private final long freeBytes;
    private final long hintBlock;
    private final boolean reuse;
    private final long ramBytes;
    private boolean booted;

    /**
     * @param balloonBase  first page the driver may give to the balloon ({@code balloonPages} of them)
     * @param freeBase     the region the guest writes at boot and then frees and hints, {@code freeBytes} long
     * @param hintBlock    bytes per hint buffer (Linux: 4 MiB); divides {@code freeBytes}
     * @param reuse        write into the first hinted block after hinting it
     */
    public SoftBalloonDriver(DeviceMemory memory, long areaBase, IoBus mmio, long regs, SoftInterruptController irqchip,
                             int gsi, long balloonBase, long balloonPages, long freeBase, long freeBytes, long hintBlock,
                             boolean reuse) {
        if (freeBytes % hintBlock != 0 || (hintBlock & 0xfff) != 0 || (balloonBase & 0xfff) != 0
                || (freeBase & 0xfff) != 0) {
            throw new IllegalArgumentException("balloon driver: regions must be whole pages and the hint block divide the free region");
        }
        this.area = new BalloonDriverArea(memory, areaBase);
        this.mem = memory;
        this.mmio = mmio;
        this.regs = regs;
        this.io = new GuestMmio(memory, mmio, regs);
        this.irqchip = irqchip;
        this.irqMask = 1 << gsi;
        this.balloonBase = balloonBase;
        this.balloonPages = balloonPages;
        this.freeBase = freeBase;
        this.freeBytes = freeBytes;
        this.hintBlock = hintBlock;
        this.reuse = reuse;
        this.ramBytes = memory.ramBytes();
    }

    public BalloonDriverArea area() {
        return area;
    }

    /** The page the balloon's {@code i}-th page is (inflated pages are the first {@code R_GIVEN}). */
    public long balloonPage(long i) {
        return balloonBase + (i << BalloonConfig.PFN_SHIFT);
    }

    @Override
    public void runSlice() throws InterruptedException {
        if (!booted) {
            boot();
            booted = true;
        }
        if (area.get(BalloonDriverArea.R_ERRORS) != 0) {
            Thread.sleep(2); // a broken device or protocol: stop, keep the evidence
            return;
        }
        int progress = reap();
        progress += adjustBalloon();
        progress += hintStep();
        if (progress == 0 && irqchip.await(irqMask, WAIT_NANOS, TimeUnit.NANOSECONDS) != 0) {
            int isr = (int) mmio.read(regs + 0x060, 4);
            mmio.write(regs + 0x064, 4, isr);
            area.add(BalloonDriverArea.R_INTERRUPTS, 1);
            if ((isr & Virtio.ISR_CONFIG) != 0 && (mmio.read(regs + 0x070, 4) & Virtio.STATUS_NEEDS_RESET) != 0) {
                area.set(BalloonDriverArea.R_ERRORS, ERR_DEVICE);
            }
        }
    }

    // ---- boot or resume ----

    private void boot() {
        if (area.get(BalloonDriverArea.R_MAGIC) == BalloonDriverArea.MAGIC) {
            return; // resumed: a migration destination, or the same VM after a pause
        }
        io.expect(Virtio.ID_BALLOON, "balloon");
        long offered = io.reset();
        long accept = offered & (Virtio.bit(Virtio.F_VERSION_1) | Virtio.bit(VirtioBalloon.F_STATS_VQ)
                | Virtio.bit(VirtioBalloon.F_FREE_PAGE_HINT) | Virtio.bit(VirtioBalloon.F_DEFLATE_ON_OOM));
        int st = io.acceptFeatures(accept, "balloon");
        mem.fill(area.base(), BalloonDriverArea.SIZE, (byte) 0);
        boolean stats = Virtio.has(accept, VirtioBalloon.F_STATS_VQ);
        boolean hint = Virtio.has(accept, VirtioBalloon.F_FREE_PAGE_HINT);
        int statsQ = stats ? 2 : -1;
        int hintQ = hint ? (stats ? 3 : 2) : -1;
        int queues = 2 + (stats ? 1 : 0) + (hint ? 1 : 0);
        for (int q = 0; q < queues; q++) {
            if (io.queueMax(q) < BalloonDriverArea.QUEUE_SIZE) {
                throw new IllegalStateException("balloon queue " + q + " is smaller than " + BalloonDriverArea.QUEUE_SIZE);
            }
            io.queueSetup(BalloonDriverArea.QUEUE_SIZE, area.desc(q), area.avail(q), area.used(q));
        }
        area.set(BalloonDriverArea.R_FEATURES, accept);
        area.set(BalloonDriverArea.R_STATS_Q, statsQ);
        area.set(BalloonDriverArea.R_HINT_Q, hintQ);
        // The guest used its balloon pages before (the host backs them) and will not touch them
        // again once they are in the balloon.
        for (long off = 0; off < balloonPages << BalloonConfig.PFN_SHIFT; off += 1 << 20) {
            mem.fill(balloonBase + off, Math.min(1 << 20, (balloonPages << BalloonConfig.PFN_SHIFT) - off), (byte) 0x6b);
        }
        // The guest used its free region, then freed it: the bytes stay, the memory is free.
        for (long off = 0; off < freeBytes; off += 1 << 20) {
            mem.fill(freeBase + off, Math.min(1 << 20, freeBytes - off), (byte) 0x5a);
        }
        area.set(BalloonDriverArea.R_FREE_READY, freeBytes > 0 ? 1 : 0);
        area.set(BalloonDriverArea.R_HINT_ID, FreePageHinting.CMD_ID_DONE);
        area.set(BalloonDriverArea.R_MAGIC, BalloonDriverArea.MAGIC);
        mmio.write(regs + 0x070, 4, st | Virtio.STATUS_DRIVER_OK);
        if (statsQ >= 0) {
            submitStats(statsQ);
        }
    }

    // ---- requests: one per queue, descriptor 0 ----

    private void submit(int q, long gpa, long len, boolean deviceWrites) {
        long d = area.desc(q);
        mem.writeU64(d, gpa);
        mem.writeU32(d + 8, (int) len);
        mem.writeU16(d + 12, deviceWrites ? F_WRITE : 0);
        mem.writeU16(d + 14, 0);
        long avail = area.get(BalloonDriverArea.R_AVAIL + q);
        mem.writeU16(area.avail(q) + 4 + 2L * (avail % BalloonDriverArea.QUEUE_SIZE), 0);
        avail++;
        mem.storeU16Release(area.avail(q) + 2, (int) avail);
        area.set(BalloonDriverArea.R_AVAIL + q, avail);
        area.set(BalloonDriverArea.R_INFLIGHT + q, 1);
        mem.fullFence();
        if ((mem.loadU16Acquire(area.used(q)) & 1) == 0) { // used.flags NO_NOTIFY
            mmio.write(regs + 0x050, 4, q);
        }
    }

    private int reap() {
        int done = 0;
        for (int q = 0; q < BalloonDriverArea.QUEUES; q++) {
            if (area.get(BalloonDriverArea.R_INFLIGHT + q) == 0) {
                continue;
            }
            long last = area.get(BalloonDriverArea.R_USED + q);
            int usedIdx = mem.loadU16Acquire(area.used(q) + 2);
            int pending = (usedIdx - (int) last) & 0xffff;
            if (pending == 0) {
                continue;
            }
            long e = area.used(q) + 4 + 8L * (last % BalloonDriverArea.QUEUE_SIZE);
            if (pending != 1 || mem.readU32(e) != 0) {
                area.set(BalloonDriverArea.R_ERRORS, ERR_BAD_USED);
                return done;
            }
            area.set(BalloonDriverArea.R_USED + q, last + 1);
            area.set(BalloonDriverArea.R_INFLIGHT + q, 0);
            completed(q);
            done++;
        }
        return done;
    }

    private void completed(int q) {
        if (q == Q_INFLATE || q == Q_DEFLATE) {
            long n = area.get(BalloonDriverArea.R_PFN_COUNT);
            area.add(BalloonDriverArea.R_GIVEN, q == Q_INFLATE ? n : -n);
            area.set(BalloonDriverArea.R_PFN_OP, 0);
            mmio.write(regs + 0x100 + BalloonConfig.ACTUAL, 4, area.get(BalloonDriverArea.R_GIVEN));
        } else if (q == area.get(BalloonDriverArea.R_STATS_Q)) {
            submitStats(q); // the device asks for fresh stats by returning the buffer
        } else if (q == area.get(BalloonDriverArea.R_HINT_Q)) {
            hintCompleted();
        }
    }

    // ---- balloon ----

    private int adjustBalloon() {
        if (area.get(BalloonDriverArea.R_PFN_OP) != 0) {
            return 0;
        }
        long target = Math.min(mmio.read(regs + 0x100 + BalloonConfig.NUM_PAGES, 4) & 0xffffffffL, balloonPages);
        long given = area.get(BalloonDriverArea.R_GIVEN);
        if (given == target) {
            return 0;
        }
        boolean inflate = given < target;
        long n = Math.min(BalloonDriverArea.MAX_PFNS, Math.abs(target - given));
        long first = inflate ? given : given - n;
        long buf = area.base() + BalloonDriverArea.PFNS;
        for (long i = 0; i < n; i++) {
            mem.writeU32(buf + 4 * i, (int) (balloonPage(first + i) >>> BalloonConfig.PFN_SHIFT));
        }
        area.set(BalloonDriverArea.R_PFN_OP, inflate ? 1 : 2);
        area.set(BalloonDriverArea.R_PFN_COUNT, n);
        submit(inflate ? Q_INFLATE : Q_DEFLATE, buf, 4 * n, false);
        return 1;
    }

    // ---- stats ----

    private void submitStats(int q) {
        long sent = area.get(BalloonDriverArea.R_STATS_SENT) + 1;
        area.set(BalloonDriverArea.R_STATS_SENT, sent);
        long free = (balloonPages - area.get(BalloonDriverArea.R_GIVEN)) * BalloonConfig.PAGE
                + (area.get(BalloonDriverArea.R_FREE_READY) != 0 ? freeBytes : 0);
        long b = area.base() + BalloonDriverArea.STATS;
        int[] tags = {0, BalloonStats.MEMFREE, BalloonStats.MEMTOT, BalloonStats.AVAIL};
        long[] vals = {sent, free, ramBytes, free};
        for (int i = 0; i < tags.length; i++) {
            mem.writeU16(b + 10L * i, tags[i]);
            mem.writeU64(b + 10L * i + 2, vals[i]);
        }
        submit(q, b, 10L * BalloonDriverArea.STATS_ENTRIES, false);
    }

    // ---- free page hinting ----

    private long publishedCmdId() {
        return mmio.read(regs + 0x100 + BalloonConfig.FREE_PAGE_HINT_CMD_ID, 4) & 0xffffffffL;
    }

    private int hintStep() {
        int q = (int) area.get(BalloonDriverArea.R_HINT_Q);
        if (q < 0 || area.get(BalloonDriverArea.R_INFLIGHT + q) != 0 || area.get(BalloonDriverArea.R_FREE_READY) == 0) {
            return 0;
        }
        long phase = area.get(BalloonDriverArea.R_HINT_PHASE);
        long cmd = publishedCmdId();
        long round = area.get(BalloonDriverArea.R_HINT_ID);
        if (phase == 0) {
            if (cmd >= (FreePageHinting.CMD_ID_MIN & 0xffffffffL) && cmd != round) {
                area.set(BalloonDriverArea.R_HINT_ID, cmd);
                area.set(BalloonDriverArea.R_HINT_NEXT, 0);
                area.set(BalloonDriverArea.R_HINT_PHASE, 1);
                sendCmd(q, (int) cmd);
                return 1;
            }
            return 0;
        }
        if (phase == 2) {
            long next = area.get(BalloonDriverArea.R_HINT_NEXT);
            if (cmd != round || next * hintBlock >= freeBytes) {
                if (cmd != round) {
                    area.add(BalloonDriverArea.R_HINT_ABORTED, 1);
                }
                area.set(BalloonDriverArea.R_HINT_PHASE, 3);
                sendCmd(q, FreePageHinting.CMD_ID_STOP);
                return 1;
            }
            // Pages reused in earlier rounds (the start of block 0) are the guest's again: not free.
            long skip = next == 0 ? area.get(BalloonDriverArea.R_REUSE_WRITES) << BalloonConfig.PFN_SHIFT : 0;
            submit(q, freeBase + next * hintBlock + skip, hintBlock - skip, true);
            return 1;
        }
        return 0;
    }

    private void sendCmd(int q, int id) {
        long b = area.base() + BalloonDriverArea.CMD;
        mem.writeU32(b, id);
        submit(q, b, 4, false);
    }

    private void hintCompleted() {
        long phase = area.get(BalloonDriverArea.R_HINT_PHASE);
        if (phase == 1) {
            area.set(BalloonDriverArea.R_HINT_PHASE, 2);
        } else if (phase == 2) {
            long block = area.get(BalloonDriverArea.R_HINT_NEXT);
            area.set(BalloonDriverArea.R_HINT_NEXT, block + 1);
            area.add(BalloonDriverArea.R_HINT_BLOCKS, 1);
            long n = area.get(BalloonDriverArea.R_REUSE_WRITES) + 1;
            if (reuse && block == 0 && n < hintBlock >>> BalloonConfig.PFN_SHIFT) {
                // Memory reused right after its hint: the migration must still send this page.
                long page = freeBase + ((n - 1) << BalloonConfig.PFN_SHIFT);
                long value = 0x5E05ED0000000000L | n;
                mem.writeU64(page, value);
                area.set(BalloonDriverArea.R_REUSE_PAGE, page);
                area.set(BalloonDriverArea.R_REUSE_VALUE, value);
                area.set(BalloonDriverArea.R_REUSE_WRITES, n);
            }
        } else if (phase == 3) {
            area.set(BalloonDriverArea.R_HINT_PHASE, 0);
            area.add(BalloonDriverArea.R_HINT_ROUNDS, 1);
        }
    }
}
