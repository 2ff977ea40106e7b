package dev.ferry.virtio.guest;

import dev.ferry.core.cpu.soft.SoftGuestProgram;
import dev.ferry.core.device.SoftInterruptController;
import dev.ferry.core.machine.IoBus;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.blk.VirtioBlk;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * Ferry's guest virtio-blk driver for the soft engine: guest code that drives a virtio-mmio disk
 * only as a guest can — register reads and writes on the MMIO bus, rings and buffers in guest RAM,
 * interrupts from the soft interrupt controller — while the soft vCPUs dirty memory beside it.
 *
 * <p>It keeps {@code depth} requests in flight on one queue: writes of whole 4 KiB blocks in the
 * {@link DiskBlock} format (a fresh generation each), reads that check what they get against the
 * generation it last saw acknowledged, and now and then a flush. It never has two requests on the
 * same block, so the image must hold, for every block, the last acknowledged generation — or the
 * one in flight, or one whose write completed with an error (see {@link BlkDriverArea#IN_DOUBT}).
 * Everything it knows lives in its {@link BlkDriverArea}: acknowledged generations, the requests
 * in flight, counters; so after a migration the same program on the destination continues the
 * same sequence, and a verifier can prove that no acknowledged write was lost, no request was lost
 * or completed twice, and I/O went on.
 *
 * <p>A device that sets NEEDS_RESET is reset and initialised again, and the requests that had no
 * completion go out again unchanged (a write with the same generation), within a
 * {@link ResetLimit}; past it the driver stops (docs/devices.md, "Guest driver recovery", has the
 * state table).
 *
 * <p>Runs on its own soft "vCPU" thread ({@link SoftGuestProgram}); one slice reaps completions,
 * fills free slots and, with nothing else to do, waits up to 2 ms for the device's interrupt.
 */
public final class SoftBlkDriver implements SoftGuestProgram {
    private static final Logger LOG = LoggerFactory.getLogger(SoftBlkDriver.class);
    private static final long WAIT_NANOS = TimeUnit.MILLISECONDS.toNanos(2);
    private static final long MAX_BACKOFF_NANOS = 5_000_000_000L;
    private final BlkDriverArea area;
    private final DeviceMemory mem;
    private final IoBus mmio;
    private final long regs;
    /** The handshake and queue setup, written once for every soft driver. */
    private final GuestMmio io;
    private final SoftInterruptController irqchip;
    private final int irqMask;
    private final long seed;
    private final int depth;
    private final long maxBlocks;
    private final long[] words = new long[DiskBlock.WORDS];
    private final byte[] page = new byte[DiskBlock.SIZE];
    private final ResetLimit limit;
    private final LongSupplier clock;
    /** When the resets in the limit's window happened (Long.MIN_VALUE: none); local, not migrated. */
    private final long[] resetTimes;
    private int resetCursor;
    private long nextResetNanos;
    private int failuresInARow;
    private boolean booted;
    private int queueSize;
    private boolean eventIdx;
    private long negotiated;

    /**
     * How far the driver goes to recover from NEEDS_RESET: at most {@code resets} resets within
     * {@code windowNanos}, then it stops; a re-initialisation the device refuses is tried again
     * after {@code firstBackoffNanos}, doubling up to 5 s.
     * {@code clock} is a nanosecond clock (tests step it).
     */
    public record ResetLimit(int resets, long windowNanos, long firstBackoffNanos, LongSupplier clock) {
        /**
         * Ten resets a minute; a refused re-initialisation is retried after 100 ms, 200 ms, ... 5 s:
         * a back-end away for up to about 20 s is waited for.
         */
        public static final ResetLimit DEFAULT = new ResetLimit(10, TimeUnit.MINUTES.toNanos(1),
                TimeUnit.MILLISECONDS.toNanos(100), System::nanoTime);

        public ResetLimit {
            if (resets < 0 || resets > 1000 || windowNanos <= 0 || firstBackoffNanos < 0) {
                throw new IllegalArgumentException("reset limit: " + resets + " resets in " + windowNanos
                        + " ns, backoff " + firstBackoffNanos + " ns");
            }
        }
    }

    /**
     * @param regs      the device's virtio-mmio register window
     * @param gsi       its interrupt line
     * @param maxBlocks the first {@code maxBlocks} 4 KiB blocks of the disk are used (capped by capacity)
     */
    public SoftBlkDriver(DeviceMemory memory, long areaBase, IoBus mmio, long regs, SoftInterruptController irqchip,
                         int gsi, long seed, int depth, long maxBlocks) {
        this(memory, areaBase, mmio, regs, irqchip, gsi, seed, depth, maxBlocks, ResetLimit.DEFAULT);
    }

    /** As above, with the bound on recovery from NEEDS_RESET. */
    public SoftBlkDriver(DeviceMemory memory, long areaBase, IoBus mmio, long regs, SoftInterruptController irqchip,
                         int gsi, long seed, int depth, long maxBlocks, ResetLimit limit) {
        if (depth < 1 || depth > BlkDriverArea.MAX_DEPTH) {
            throw new IllegalArgumentException("disk driver depth " + depth + " outside 1.." + BlkDriverArea.MAX_DEPTH);
        }
        this.area = new BlkDriverArea(memory, areaBase);
        this.mem = memory;
        this.mmio = mmio;
        this.regs = regs;
        this.io = new GuestMmio(memory, mmio, regs);
        this.irqchip = irqchip;
        this.irqMask = 1 << gsi;
        this.seed = seed;
        this.depth = depth;
        this.maxBlocks = Math.min(maxBlocks, BlkDriverArea.MAX_BLOCKS);
        this.limit = limit;
        this.clock = limit.clock();
        this.resetTimes = new long[Math.max(1, limit.resets())];
        Arrays.fill(resetTimes, Long.MIN_VALUE);
    }

    public BlkDriverArea area() {
        return area;
    }

    @Override
    public void runSlice() throws InterruptedException {
        if (!booted) {
            boot();
            booted = true;
        }
        if (area.get(BlkDriverArea.R_ERRORS) != 0) {
            Thread.sleep(2); // a broken device or protocol: stop issuing, keep the evidence
            return;
        }
        if (area.get(BlkDriverArea.R_RECOVERY) == BlkDriverArea.RESET_PENDING) {
            if (clock.getAsLong() - nextResetNanos < 0) {
                Thread.sleep(1); // backing off after a re-initialisation the device refused
                return;
            }
            recover();
            return;
        }
        int reaped = reap();
        int submitted = submit();
        if (reaped == 0 && submitted == 0) {
            if (area.get(BlkDriverArea.R_IRQ_MASKED) != 0) {
                // interrupts masked: poll the used ring and the status, leave the line pending
                if ((mmio.read(regs + 0x070, 4) & Virtio.STATUS_NEEDS_RESET) != 0) {
                    needsReset();
                } else {
                    Thread.sleep(1);
                }
                return;
            }
            if (irqchip.await(irqMask, WAIT_NANOS, TimeUnit.NANOSECONDS) != 0) {
                int isr = (int) mmio.read(regs + 0x060, 4);
                mmio.write(regs + 0x064, 4, isr);
                area.add(BlkDriverArea.R_INTERRUPTS, 1);
                if ((isr & Virtio.ISR_CONFIG) != 0 && (mmio.read(regs + 0x070, 4) & Virtio.STATUS_NEEDS_RESET) != 0) {
                    needsReset();
                }
            }
        }
    }

    // ---- recovery from NEEDS_RESET ----

    /**
     * The device set NEEDS_RESET: take what it completed before it broke, then reset it (now, on
     * this slice). Requests without a completion stay in their slots and are submitted again.
     */
    private void needsReset() {
        reap();
        if (area.get(BlkDriverArea.R_ERRORS) != 0) {
            return; // the used ring itself was bad: that is the driver's verdict, not a reset
        }
        LOG.info("disk driver at 0x{}: the device needs a reset; {} request(s) without a completion will be"
                + " submitted again", Long.toHexString(regs), area.progress().inFlight());
        area.set(BlkDriverArea.R_RECOVERY, BlkDriverArea.RESET_PENDING);
        nextResetNanos = clock.getAsLong();
        recover();
    }

    /**
     * One reset and re-initialisation within {@link ResetLimit}: on success the requests in flight
     * go out again and the driver runs; a refused re-initialisation is tried again after a backoff
     * that doubles; past the limit the driver stops with {@link BlkDriverArea#ERR_RESET_LIMIT}.
     */
    private void recover() {
        long now = clock.getAsLong();
        int recent = 0;
        for (long t : resetTimes) {
            if (t != Long.MIN_VALUE && now - t < limit.windowNanos()) {
                recent++;
            }
        }
        if (recent >= limit.resets()) {
            LOG.warn("disk driver at 0x{}: the device needs a reset again after {} reset(s) within {} s; the driver"
                    + " stops (no more I/O on this disk)", Long.toHexString(regs), recent,
                    TimeUnit.NANOSECONDS.toSeconds(limit.windowNanos()));
            error(BlkDriverArea.ERR_RESET_LIMIT);
            return;
        }
        resetTimes[resetCursor] = now;
        resetCursor = (resetCursor + 1) % resetTimes.length;
        area.add(BlkDriverArea.R_RESETS, 1);
        long features = area.get(BlkDriverArea.R_FEATURES);
        // A device that cannot start (a vhost-user back-end still gone) answers DRIVER_OK with NEEDS_RESET.
        String refused = bringUp(features, true, this::clearRings);
        if (refused == null && (mmio.read(regs + 0x070, 4) & Virtio.STATUS_NEEDS_RESET) != 0) {
            refused = "it needs a reset again right after DRIVER_OK";
        }
        if (refused != null) {
            area.add(BlkDriverArea.R_RESET_FAILURES, 1);
            long backoff = Math.min(limit.firstBackoffNanos() << Math.min(failuresInARow, 20), MAX_BACKOFF_NANOS);
            failuresInARow++;
            nextResetNanos = now + backoff;
            LOG.info("disk driver at 0x{}: re-initialisation after reset refused ({}); next try in {} ms",
                    Long.toHexString(regs), refused, TimeUnit.NANOSECONDS.toMillis(backoff));
            return;
        }
        failuresInARow = 0;
        area.set(BlkDriverArea.R_RECOVERY, BlkDriverArea.RUNNING);
        resubmit();
    }

    /** After a reset: the rings start empty (indices 0, no event indices), as a driver allocates them. */
    private void clearRings() {
        mem.fill(area.desc(0), BlkDriverArea.HEADERS - BlkDriverArea.DESC, (byte) 0);
        area.set(BlkDriverArea.R_AVAIL, 0);
        area.set(BlkDriverArea.R_LAST_USED, 0);
    }

    /** Every slot with a request in flight goes out again, unchanged (a write carries the same generation). */
    private void resubmit() {
        int n = 0;
        for (int s = 0; s < depth; s++) {
            int type = area.slotType(s);
            if (type == BlkDriverArea.IDLE) {
                continue;
            }
            prepare(s, type, area.slotBlock(s), area.slotSeq(s));
            mem.writeU16(area.avail() + 4 + 2L * (n % queueSize), 3 * s);
            n++;
        }
        mem.storeU16Release(area.avail() + 2, n);
        area.set(BlkDriverArea.R_AVAIL, n);
        area.add(BlkDriverArea.R_RESUBMITTED, n);
        mem.fullFence();
        if (n > 0) {
            mmio.write(regs + 0x050, 4, 0);
            area.add(BlkDriverArea.R_KICKS, 1);
        }
        LOG.info("disk driver at 0x{}: device reset and re-initialised; {} request(s) submitted again",
                Long.toHexString(regs), n);
    }

    // ---- boot or resume ----

    private void boot() {
        queueSize = BlkDriverArea.QUEUE_SIZE;
        nextResetNanos = clock.getAsLong(); // a reset pending in a migrated record is tried at once
        if (area.get(BlkDriverArea.R_MAGIC) == BlkDriverArea.MAGIC) {
            // Resumed (a migration destination, or the same VM after a pause): the device is set up
            // (or, with a reset pending, recovery goes on from here).
            eventIdx = Virtio.has(area.get(BlkDriverArea.R_FEATURES), Virtio.F_EVENT_IDX);
            return;
        }
        if (mmio.read(regs, 4) != 0x74726976L || mmio.read(regs + 4, 4) != 2 || mmio.read(regs + 8, 4) != Virtio.ID_BLOCK) {
            throw new IllegalStateException("no virtio-mmio v2 block device at 0x" + Long.toHexString(regs));
        }
        long want = Virtio.bit(Virtio.F_VERSION_1) | Virtio.bit(Virtio.F_EVENT_IDX) | Virtio.bit(VirtioBlk.F_FLUSH)
                | Virtio.bit(VirtioBlk.F_BLK_SIZE) | Virtio.bit(VirtioBlk.F_SEG_MAX);
        String refused = bringUp(want, false, () -> {
            mem.fill(area.base(), BlkDriverArea.SIZE, (byte) 0);
            long capacityBlocks = (mmio.read(regs + 0x100, 4) | mmio.read(regs + 0x104, 4) << 32) / 8;
            long blocks = Math.min(maxBlocks, capacityBlocks);
            if (blocks < depth) {
                throw new IllegalStateException("the disk has " + capacityBlocks + " blocks; the driver needs at least "
                        + depth);
            }
            area.set(BlkDriverArea.R_VERSION, BlkDriverArea.VERSION);
            area.set(BlkDriverArea.R_SEED, seed);
            area.set(BlkDriverArea.R_FEATURES, negotiated);
            area.set(BlkDriverArea.R_BLOCKS, blocks);
            area.set(BlkDriverArea.R_DEPTH, depth);
            area.set(BlkDriverArea.R_RNG, DiskBlock.mix(seed ^ 0x5EED0000D15CL));
            area.set(BlkDriverArea.R_NEXT_SEQ, 1);
            area.set(BlkDriverArea.R_MAGIC, BlkDriverArea.MAGIC);
        });
        if (refused != null) {
            throw new IllegalStateException(refused);
        }
    }

    /**
     * The initialisation sequence (spec 3.1.1): reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK,
     * queue 0, DRIVER_OK. With {@code exact} every feature in {@code want} must be accepted (a
     * re-initialisation keeps what the driver's state was built on); otherwise those offered are.
     * {@code prepareArea} runs once the queue size is known, before the queue is set up.
     *
     * @return null when the device runs, else why it refused
     */
    private String bringUp(long want, boolean exact, Runnable prepareArea) {
        long offered = io.reset();
        long accept = offered & want;
        if (exact && accept != want) {
            return "the disk no longer offers features 0x" + Long.toHexString(want & ~offered);
        }
        if (!io.offerFeatures(accept)) {
            return "the disk refused features 0x" + Long.toHexString(accept);
        }
        negotiated = accept;
        eventIdx = Virtio.has(accept, Virtio.F_EVENT_IDX);
        long max = io.queueMax(0);
        if (max < queueSize) {
            return "the disk's queue holds " + max + " entries; the driver needs " + queueSize;
        }
        prepareArea.run();
        io.queueSetup(queueSize, area.desc(0), area.avail(), area.used());
        io.driverOk(GuestMmio.FEATURES_OK_STATUS);
        return null;
    }

    // ---- completions ----

    private int reap() {
        long lastUsed = area.get(BlkDriverArea.R_LAST_USED);
        int usedIdx = mem.loadU16Acquire(area.used() + 2);
        int pending = (usedIdx - (int) lastUsed) & 0xffff;
        if (pending > depth) {
            error(BlkDriverArea.ERR_USED_AHEAD);
            return 0;
        }
        for (int k = 0; k < pending; k++) {
            long e = area.used() + 4 + 8L * ((lastUsed + k) % queueSize);
            int id = mem.readU32(e);
            if (id < 0 || id >= 3 * depth || id % 3 != 0) {
                error(BlkDriverArea.ERR_BAD_ID);
                return k;
            }
            complete(id / 3);
        }
        long newLast = lastUsed + pending;
        area.set(BlkDriverArea.R_LAST_USED, newLast);
        if (eventIdx) {
            // used_event: interrupt me when the next element arrives.
            mem.storeU16Release(area.avail() + 4 + 2L * queueSize, (int) newLast);
        }
        return pending;
    }

    private void complete(int s) {
        int type = area.slotType(s);
        if (type == BlkDriverArea.IDLE) {
            error(BlkDriverArea.ERR_IDLE_COMPLETION);
            return;
        }
        long seq = area.slotSeq(s);
        long block = area.slotBlock(s);
        int status = mem.readU8(area.header(s) + 16);
        if (status != 0) {
            area.add(BlkDriverArea.R_IOERRS, 1);
            if (type == BlkDriverArea.WRITE) {
                // Not acknowledged, so the acknowledged generation stays; but the image may hold
                // this write anyway: the block is in doubt until a read or a good write settles it.
                area.setGeneration(block, area.generation(block) | BlkDriverArea.IN_DOUBT);
            }
        } else if (type == BlkDriverArea.WRITE) {
            area.setGeneration(block, seq);
            area.add(BlkDriverArea.R_WRITES_ACKED, 1);
        } else if (type == BlkDriverArea.READ) {
            mem.read(area.buffer(s), page, 0, DiskBlock.SIZE);
            java.nio.ByteBuffer.wrap(page).order(java.nio.ByteOrder.LITTLE_ENDIAN).asLongBuffer().get(words);
            long got = DiskBlock.generationOf(words, block, seed);
            long acked = area.acknowledged(block);
            if (got == acked) {
                area.setGeneration(block, acked); // what the image holds now: no longer in doubt
                area.add(BlkDriverArea.R_READS_VERIFIED, 1);
            } else if (area.inDoubt(block) && got > acked) {
                area.setGeneration(block, got); // a failed write that did reach the image
                area.add(BlkDriverArea.R_READS_VERIFIED, 1);
            } else {
                area.add(BlkDriverArea.R_READ_MISMATCHES, 1);
            }
        } else {
            area.add(BlkDriverArea.R_FLUSHES, 1);
        }
        area.setSlot(s, 0, BlkDriverArea.IDLE, 0);
        area.add(BlkDriverArea.R_COMPLETED, 1);
    }

    // ---- submissions ----

    private int submit() {
        int n = 0;
        long blocks = area.get(BlkDriverArea.R_BLOCKS);
        long oldAvail = area.get(BlkDriverArea.R_AVAIL);
        long avail = oldAvail;
        for (int s = 0; s < depth; s++) {
            if (area.slotType(s) != BlkDriverArea.IDLE) {
                continue;
            }
            long rng = area.get(BlkDriverArea.R_RNG) + 0x9E3779B97F4A7C15L;
            area.set(BlkDriverArea.R_RNG, rng);
            long r = DiskBlock.mix(rng);
            int kind = (int) Long.remainderUnsigned(r, 100);
            int type = kind < 55 ? BlkDriverArea.WRITE : kind < 97 ? BlkDriverArea.READ : BlkDriverArea.FLUSH;
            long block = Long.remainderUnsigned(r >>> 8, blocks);
            if (type != BlkDriverArea.FLUSH && busy(block)) {
                continue; // one request per block at a time
            }
            long seq = area.get(BlkDriverArea.R_NEXT_SEQ);
            area.set(BlkDriverArea.R_NEXT_SEQ, seq + 1);
            prepare(s, type, block, seq);
            area.setSlot(s, seq, type, block);
            mem.writeU16(area.avail() + 4 + 2L * (avail % queueSize), 3 * s);
            avail++;
            n++;
        }
        if (n == 0) {
            return 0;
        }
        mem.storeU16Release(area.avail() + 2, (int) avail);
        area.set(BlkDriverArea.R_AVAIL, avail);
        area.add(BlkDriverArea.R_SUBMITTED, n);
        mem.fullFence();
        if (kickNeeded(oldAvail, avail)) {
            mmio.write(regs + 0x050, 4, 0);
            area.add(BlkDriverArea.R_KICKS, 1);
        }
        return n;
    }

    private boolean busy(long block) {
        for (int s = 0; s < depth; s++) {
            if (area.slotType(s) != BlkDriverArea.IDLE && area.slotType(s) != BlkDriverArea.FLUSH
                    && area.slotBlock(s) == block) {
                return true;
            }
        }
        return false;
    }

    private boolean kickNeeded(long oldAvail, long newAvail) {
        if (!eventIdx) {
            return (mem.readU16(area.used()) & 1) == 0; // VRING_USED_F_NO_NOTIFY
        }
        int event = mem.readU16(area.used() + 4 + 8L * queueSize);
        return ((int) newAvail - event - 1 & 0xffff) < ((int) (newAvail - oldAvail) & 0xffff);
    }

    private void prepare(int s, int type, long block, long seq) {
        long hdr = area.header(s);
        mem.writeU32(hdr, type == BlkDriverArea.WRITE ? 1 : type == BlkDriverArea.READ ? 0 : 4);
        mem.writeU32(hdr + 4, 0);
        mem.writeU64(hdr + 8, type == BlkDriverArea.FLUSH ? 0 : block * 8);
        mem.writeU8(hdr + 16, 0xff);
        if (type == BlkDriverArea.WRITE) {
            DiskBlock.fill(words, block, seq, seed);
            java.nio.ByteBuffer.wrap(page).order(java.nio.ByteOrder.LITTLE_ENDIAN).asLongBuffer().put(words);
            mem.write(area.buffer(s), page, 0, DiskBlock.SIZE);
        }
        int d0 = 3 * s;
        descriptor(d0, hdr, 16, 1, type == BlkDriverArea.FLUSH ? d0 + 2 : d0 + 1);
        if (type != BlkDriverArea.FLUSH) {
            descriptor(d0 + 1, area.buffer(s), DiskBlock.SIZE, 1 | (type == BlkDriverArea.READ ? 2 : 0), d0 + 2);
        }
        descriptor(d0 + 2, hdr + 16, 1, 2, 0);
    }

    private void descriptor(int i, long addr, int len, int flags, int next) {
        long d = area.desc(i);
        mem.writeU64(d, addr);
        mem.writeU32(d + 8, len);
        mem.writeU16(d + 12, flags);
        mem.writeU16(d + 14, next);
    }

    private void error(long code) {
        if (area.get(BlkDriverArea.R_FIRST_ERROR) == 0) {
            area.set(BlkDriverArea.R_FIRST_ERROR, code);
        }
        area.add(BlkDriverArea.R_ERRORS, 1);
    }
}
