package dev.ferry.virtio.queue;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.memory.DirtyBitmap;
import dev.ferry.core.memory.DirtyPages;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;

import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * One queue in real guest memory with both sides on it: a {@link DriverQueue} (the guest) and a
 * {@link SplitVirtqueue} (the device), plus raw access for tests that play a hostile driver.
 *
 * <pre>
 *   0x001000  rings (contiguous: desc, avail, used)   up to 0xd1000 for N = 32768
 *   0x100000  indirect pool, INDIRECT_ENTRIES per head
 *   0x400000  data buffers, to the end of RAM (16 MiB)
 * </pre>
 */
final class RingFixture implements AutoCloseable {
    static final long RAM = 16L << 20;
    static final long RING = 0x1000;
    static final long POOL = 0x100000;
    static final int INDIRECT_ENTRIES = 64;
    static final long DATA = 0x400000;

    final GuestMemory guest;
    final DeviceMemory memory;
    final QueueConfig config;
    final DriverQueue driver;
    final SplitVirtqueue device;
    private int rawAvailIdx;

    RingFixture(int size, boolean eventIdx, boolean indirect, int initialIndex) {
        this(size, QueueConfig.features(eventIdx, indirect), initialIndex, RAM);
    }

    RingFixture(int size, long features, int initialIndex, long ramSize) {
        guest = GuestMemory.builder().region("pc.ram", 0, ramSize).build();
        try {
            memory = new DeviceMemory(guest);
            config = QueueConfig.contiguous(size, RING, features);
            DriverQueue.Builder b = DriverQueue.builder(memory, config).initialIndex(initialIndex);
            if (config.indirectDesc() && (long) size * INDIRECT_ENTRIES * 16 <= DATA - POOL) {
                b.indirectPool(POOL, INDIRECT_ENTRIES);
            }
            driver = b.build();
            device = SplitVirtqueue.enable(memory, "test-vq0", 0, config);
            device.restore(initialIndex, initialIndex); // as after migrating a guest that ran this long
            rawAvailIdx = initialIndex;
        } catch (RuntimeException e) {
            guest.close();
            throw e;
        }
    }

    static RingFixture plain(int size) {
        return new RingFixture(size, false, false, 0);
    }

    /** A data buffer address: slot {@code k} of 4 KiB from {@link #DATA}. */
    static long data(int k) {
        return DATA + 4096L * k;
    }

    static DriverQueue.Buffer buf(long gpa, long len) {
        return new DriverQueue.Buffer(gpa, len);
    }

    // ---- the hostile driver: raw ring writes ----

    void rawDesc(long table, int i, long addr, long len, int flags, int next) {
        memory.writeU64(SplitRing.descAddr(table, i), addr);
        memory.writeU32(SplitRing.descLen(table, i), (int) len);
        memory.writeU16(SplitRing.descFlags(table, i), flags);
        memory.writeU16(SplitRing.descNext(table, i), next);
    }

    void rawDesc(int i, long addr, long len, int flags, int next) {
        rawDesc(config.descGpa(), i, addr, len, flags, next);
    }

    /** Puts {@code head} in the next avail slot and publishes avail.idx, bypassing the driver's bookkeeping. */
    void rawOffer(int head) {
        memory.writeU16(SplitRing.availRing(config.availGpa(), config.size(), rawAvailIdx), head);
        rawAvailIdx = (rawAvailIdx + 1) & 0xffff;
        memory.storeU16Release(SplitRing.availIdx(config.availGpa()), rawAvailIdx);
    }

    void rawAvailIdx(int idx) {
        rawAvailIdx = idx;
        memory.writeU16(SplitRing.availIdx(config.availGpa()), idx);
    }

    int availIdxInRam() {
        return memory.readU16(SplitRing.availIdx(config.availGpa()));
    }

    int usedIdxInRam() {
        return memory.readU16(SplitRing.usedIdx(config.usedGpa()));
    }

    // ---- observing memory ----

    long digest() {
        return guest.digest();
    }

    /** Starts the VMM write log (forgetting what came before). */
    void startWriteLog() {
        guest.writeLog().start();
    }

    /** The guest-physical addresses of the pages written since the last call, as migration would see them. */
    Set<Long> dirtyPages() {
        GuestRegion ram = guest.regions().get(0);
        Set<Long> pages = new TreeSet<>();
        try (DirtyBitmap log = new DirtyBitmap(ram.pages())) {
            guest.writeLog().sync(new DirtyPages() {
                @Override
                public DirtyBitmap bitmap(GuestRegion region) {
                    return log;
                }

                @Override
                public void mark(Gpa gpa, long length) {
                    log.markBytes(gpa.raw(), length);
                }
            });
            for (long p = 0; p < log.pages(); p++) {
                if (log.get(p)) {
                    pages.add(p << DirtyBitmap.PAGE_SHIFT);
                }
            }
        }
        return pages;
    }

    /** Pages holding the used ring (the device area). */
    Set<Long> usedRingPages() {
        Set<Long> pages = new TreeSet<>();
        long start = config.usedGpa();
        long end = start + SplitRing.usedBytes(config.size());
        for (long p = start & ~0xfffL; p < end; p += 4096) {
            pages.add(p);
        }
        return pages;
    }

    static List<DriverQueue.Buffer> none() {
        return List.of();
    }

    @Override
    public void close() {
        guest.writeLog().stop();
        guest.close();
    }
}
