package dev.ferry.core.memory;

import dev.ferry.core.sys.NativeMemory;

import java.util.ArrayList;
import java.util.List;

/**
 * The guest's RAM: memfd-backed regions by guest-physical address. Every access is checked: an
 * address outside every region, or a range that crosses a region's end, is a
 * {@link GuestMemoryException}. Writes made through this API are the VMM's own writes (device
 * models, the soft engine); while {@link #writeLog()} is started they are recorded in a bitmap so
 * that migration sees them — KVM's log never does.
 *
 * <p>Thread-safe for concurrent access to distinct bytes, like real RAM. Owns its regions.
 */
public final class GuestMemory implements AutoCloseable {
    private final List<GuestRegion> regions;
    private final GuestRegion[] byIndex;
    private final VmmWriteLog writeLog = new VmmWriteLog();
    private volatile boolean logging;
    private volatile WriteObserver observer;
    /** False for a {@link #view}: the regions belong to someone else and {@link #close} leaves them. */
    private final boolean ownsRegions;

    private GuestMemory(List<GuestRegion> regions, boolean ownsRegions) {
        this.regions = List.copyOf(regions);
        this.byIndex = regions.toArray(new GuestRegion[0]);
        this.ownsRegions = ownsRegions;
    }

    /**
     * Guest memory over regions its caller keeps owning (a vhost-user back-end's memory table,
     * rebuilt whenever the front-end changes it): {@link #close} stops nothing and unmaps nothing.
     *
     * @throws IllegalArgumentException when two regions overlap in guest-physical space
     */
    public static GuestMemory view(List<GuestRegion> regions) {
        for (int i = 0; i < regions.size(); i++) {
            for (int j = 0; j < i; j++) {
                GuestRegion a = regions.get(i);
                GuestRegion b = regions.get(j);
                if (a.gpaBase() < b.gpaBase() + b.size() && b.gpaBase() < a.gpaBase() + a.size()) {
                    throw new IllegalArgumentException("region " + a + " overlaps " + b);
                }
            }
        }
        return new GuestMemory(regions, false);
    }

    /**
     * Installs {@code o} to see every later write made through this memory (null removes it). The
     * VMM's own write log ({@link #writeLog()}) is independent of it.
     */
    public void observeWrites(WriteObserver o) {
        this.observer = o;
    }

    /** One region {@code "pc.ram"} of {@code size} bytes at guest-physical 0. */
    public static GuestMemory ofSize(long size) {
        return builder().region("pc.ram", 0, size).build();
    }

    public static Builder builder() {
        return new Builder();
    }

    public List<GuestRegion> regions() {
        return regions;
    }

    /**
     * The guest's RAM as QEMU's {@code ram_size} counts it: the main region ({@code pc.ram}), not
     * regions only devices use (an emulated VF's DMA window); all memory without such a region.
     */
    public long ramBytes() {
        for (GuestRegion r : byIndex) {
            if (r.name().equals("pc.ram")) {
                return r.size();
            }
        }
        return totalSize();
    }

    public long totalSize() {
        long t = 0;
        for (GuestRegion r : byIndex) {
            t += r.size();
        }
        return t;
    }

    public GuestRegion region(String name) {
        for (GuestRegion r : byIndex) {
            if (r.name().equals(name)) {
                return r;
            }
        }
        return null;
    }

    /** The region holding {@code [gpa, gpa + length)}; throws if no single region does. */
    public GuestRegion regionFor(long gpa, long length) {
        if (length < 0) {
            throw new GuestMemoryException("negative length " + length + " at gpa 0x" + Long.toHexString(gpa));
        }
        for (GuestRegion r : byIndex) {
            if (r.contains(gpa)) {
                if (length > r.size() - (gpa - r.gpaBase())) {
                    throw new GuestMemoryException("guest access [0x" + Long.toHexString(gpa) + ", +" + length
                            + ") crosses the end of " + r);
                }
                return r;
            }
        }
        throw new GuestMemoryException("guest-physical address 0x" + Long.toHexString(gpa) + " is not RAM (regions: "
                + regions + ")");
    }

    /** Host address for {@code [gpa, gpa + length)}, checked. */
    public long hostAddress(Gpa gpa, long length) {
        GuestRegion r = regionFor(gpa.raw(), length);
        return r.hostAddress(gpa.raw() - r.gpaBase());
    }

    public byte readByte(Gpa gpa) {
        return NativeMemory.getByte(hostAddress(gpa, 1));
    }

    public int readInt(Gpa gpa) {
        return NativeMemory.getInt(hostAddress(gpa, 4));
    }

    public long readLong(Gpa gpa) {
        return NativeMemory.getLong(hostAddress(gpa, 8));
    }

    public void read(Gpa gpa, byte[] dst, int offset, int length) {
        NativeMemory.copyToArray(hostAddress(gpa, length), dst, offset, length);
    }

    public void writeByte(Gpa gpa, byte v) {
        long a = hostAddress(gpa, 1);
        NativeMemory.putByte(a, v);
        logged(gpa.raw(), 1);
    }

    public void writeInt(Gpa gpa, int v) {
        long a = hostAddress(gpa, 4);
        NativeMemory.putInt(a, v);
        logged(gpa.raw(), 4);
    }

    public void writeLong(Gpa gpa, long v) {
        long a = hostAddress(gpa, 8);
        NativeMemory.putLong(a, v);
        logged(gpa.raw(), 8);
    }

    public void write(Gpa gpa, byte[] src, int offset, int length) {
        long a = hostAddress(gpa, length);
        NativeMemory.copyFromArray(src, offset, a, length);
        logged(gpa.raw(), length);
    }

    public void fill(Gpa gpa, long length, byte value) {
        long a = hostAddress(gpa, length);
        NativeMemory.fill(a, length, value);
        logged(gpa.raw(), length);
    }

    /**
     * Records a write the caller made directly at a host address inside the guest (a device model
     * writing a page it obtained with {@link #hostAddress}). The soft engine and DMA models call this.
     */
    public void markWritten(Gpa gpa, long length) {
        logged(gpa.raw(), length);
    }

    private void logged(long gpa, long length) {
        WriteObserver o = observer;
        if (o != null) {
            o.written(gpa, length);
        }
        if (logging) {
            GuestRegion r = regionFor(gpa, length);
            r.vmmWrites().markBytes(gpa - r.gpaBase(), length);
        }
    }

    /**
     * Gives the whole pages {@code [gpa, gpa + length)} back to the host: marks them discarded,
     * then punches them out of the memfd ({@code MADV_REMOVE} on the shared mapping), so the host's
     * memory use drops and the pages read as zero. The mark comes first, so that migration, which
     * skips discarded pages, does not read (and so re-allocate) a page being punched. Returns the
     * number of pages that were not discarded before. On a {@link GuestRegion#hugetlb()} region
     * the kernel zeroes a punched 4 KiB page but frees memory only for whole 2 MiB pages.
     *
     * @throws GuestMemoryException when the range is not page-aligned or not inside one region
     */
    public long discard(Gpa gpa, long length) {
        stopPopulating(); // a populate after the punch would allocate the page again
        GuestRegion r = pageRange(gpa, length);
        long first = (gpa.raw() - r.gpaBase()) >>> DirtyBitmap.PAGE_SHIFT;
        long n = length >>> DirtyBitmap.PAGE_SHIFT;
        long fresh = 0;
        DirtyBitmap d = r.discardedPages();
        for (long p = first; p < first + n; p++) {
            if (!d.get(p)) {
                d.set(p);
                fresh++;
            }
        }
        dev.ferry.core.sys.Sys.madvise(r.hostAddress(first << DirtyBitmap.PAGE_SHIFT), length,
                dev.ferry.core.sys.Linux.MADV_REMOVE);
        return fresh;
    }

    /**
     * Takes discarded pages {@code [gpa, gpa + length)} back for the guest (a balloon deflate):
     * they read as zero until written, and the host allocates them on first touch. Returns how
     * many of them were discarded.
     */
    public long reclaim(Gpa gpa, long length) {
        GuestRegion r = pageRange(gpa, length);
        long first = (gpa.raw() - r.gpaBase()) >>> DirtyBitmap.PAGE_SHIFT;
        return r.discardedPages().clearRange(first, length >>> DirtyBitmap.PAGE_SHIFT);
    }

    /** True when the page holding {@code gpa} was given back to the host and not reclaimed. */
    public boolean isDiscarded(Gpa gpa) {
        GuestRegion r = regionFor(gpa.raw(), 1);
        return r.isDiscarded((gpa.raw() - r.gpaBase()) >>> DirtyBitmap.PAGE_SHIFT);
    }

    /** Pages discarded in all regions now. */
    public long discardedPages() {
        long n = 0;
        for (GuestRegion r : byIndex) {
            n += r.discardedPages().count();
        }
        return n;
    }

    /** Bytes of guest RAM the host has allocated now, over all regions. */
    public long allocatedBytes() {
        long n = 0;
        for (GuestRegion r : byIndex) {
            n += r.allocatedBytes();
        }
        return n;
    }

    private GuestRegion pageRange(Gpa gpa, long length) {
        if (length <= 0 || ((gpa.raw() | length) & (DirtyBitmap.PAGE_SIZE_MASK)) != 0) {
            throw new GuestMemoryException("0x" + Long.toHexString(gpa.raw()) + "+" + length
                    + ": not whole 4 KiB pages");
        }
        return regionFor(gpa.raw(), length);
    }

    /** The log of writes made through this API. */
    public DirtyLogSource writeLog() {
        return writeLog;
    }

    /**
     * A 64-bit digest of all regions' contents, page by page (see {@link MemoryDigest}). Pages the
     * memfd never backed count as zero pages without being read, so the digest neither allocates
     * them nor costs time for them: equal contents give equal digests whatever is resident.
     */
    public long digest() {
        return digestExcept(new long[0][]);
    }

    /**
     * {@link #digest()} with the pages of {@code ranges} ({@code {gpa, length}}, 4 KiB aligned)
     * counted as zero pages: for memory the guest declared free, whose contents a migration with
     * free page hints does not carry.
     */
    public long digestExcept(long[][] ranges) {
        long h = 0;
        try (PageResidency residency = new PageResidency()) {
            for (GuestRegion r : byIndex) {
                long base = r.hostAddress(0);
                for (long p = 0, n = r.pages(); p < n; p++) {
                    long gpa = r.gpaBase() + (p << DirtyBitmap.PAGE_SHIFT);
                    boolean skipped = false;
                    for (long[] x : ranges) {
                        skipped |= gpa >= x[0] && gpa - x[0] < x[1];
                    }
                    long ph = !skipped && residency.mayHoldData(r, p)
                            ? MemoryDigest.of(base + (p << DirtyBitmap.PAGE_SHIFT), 4096) : MemoryDigest.ZERO_PAGE;
                    h = MemoryDigest.combine(h, ph);
                }
            }
        }
        return h;
    }

    // ---- populating ahead of use ----

    /** Bytes per MADV_POPULATE_WRITE of the background populator: small enough to stop promptly. */
    static final long POPULATE_CHUNK = 32L << 20;
    private final Object populateLock = new Object();
    private Thread populator;
    private volatile boolean stopPopulating;
    private final java.util.concurrent.atomic.AtomicLong populatedBytes = new java.util.concurrent.atomic.AtomicLong();

    /**
     * Allocates guest RAM on a background thread, {@value #POPULATE_CHUNK} bytes per
     * {@code MADV_POPULATE_WRITE} followed by a no-op atomic write to each page, so that an
     * incoming migration's first write to a page costs no fault: on these nested-virtualization
     * hosts the first touch of fresh memory costs ~2.8 s per GiB, of which MADV_POPULATE_WRITE alone
     * removes about half. Contents never change (the touch is a locked add of 0), so it may race
     * the receiver freely; {@link #discard} and {@link #close} stop it first. Idempotent.
     */
    public void populateInBackground() {
        synchronized (populateLock) {
            if (populator != null || stopPopulating) {
                return;
            }
            Thread t = new Thread(this::populateAll, "ferry-populate");
            t.setDaemon(true);
            populator = t;
            t.start();
        }
    }

    private void populateAll() {
        for (GuestRegion r : byIndex) {
            for (long off = 0; off < r.size(); off += POPULATE_CHUNK) {
                if (stopPopulating) {
                    return;
                }
                long len = Math.min(POPULATE_CHUNK, r.size() - off);
                long host = r.hostAddress(off);
                try {
                    dev.ferry.core.sys.Sys.madvise(host, len, dev.ferry.core.sys.Linux.MADV_POPULATE_WRITE);
                } catch (RuntimeException e) {
                    // no MADV_POPULATE_WRITE (before Linux 5.14): the touches below fault the pages in
                }
                // Under a nested hypervisor the populated pages still cost a first access each (the
                // outer host backs them then): touch every page now, with a write that changes
                // nothing and cannot lose a concurrent store. On bare metal this costs ~1 ms per GiB.
                for (long p = 0; p < len; p += 1L << DirtyBitmap.PAGE_SHIFT) {
                    if ((p & ((1 << 20) - 1)) == 0 && stopPopulating) {
                        return;
                    }
                    dev.ferry.core.sys.NativeMemory.touchForWrite(host + p);
                }
                populatedBytes.addAndGet(len);
            }
        }
    }

    /** Bytes the background populator has allocated so far. */
    public long populatedBytes() {
        return populatedBytes.get();
    }

    /** Stops the background populator and waits for its current chunk; no-op when none runs. */
    public void stopPopulating() {
        Thread t;
        synchronized (populateLock) {
            stopPopulating = true;
            t = populator;
        }
        if (t != null && t != Thread.currentThread()) {
            boolean interrupted = false;
            while (t.isAlive()) {
                try {
                    t.join();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    @Override
    public void close() {
        stopPopulating();
        if (!ownsRegions) {
            return;
        }
        for (GuestRegion r : byIndex) {
            r.close();
        }
    }

    private final class VmmWriteLog implements DirtyLogSource {
        @Override
        public String name() {
            return "vmm-writes";
        }

        @Override
        public void start() {
            for (GuestRegion r : byIndex) {
                r.vmmWrites().clearAll();
            }
            logging = true;
        }

        @Override
        public void sync(DirtyPages target) {
            for (GuestRegion r : byIndex) {
                target.bitmap(r).drainFrom(r.vmmWrites());
            }
        }

        @Override
        public void stop() {
            logging = false;
        }
    }

    public static final class Builder {
        private final List<long[]> specs = new ArrayList<>();
        private final List<String> names = new ArrayList<>();
        private boolean prealloc;
        private boolean hugetlb;

        /** Allocate all guest RAM up front (QEMU's {@code prealloc=on}); default off (sparse). */
        public Builder prealloc(boolean v) {
            this.prealloc = v;
            return this;
        }

        /**
         * Back every region with 2 MiB pages from the host's huge page pool (QEMU's
         * {@code memory-backend-memfd,hugetlb=on}); default off. {@link #build} then fails with the
         * pool's numbers when the pool is short, and with the offending region when one is not
         * 2 MiB-aligned.
         */
        public Builder hugetlb(boolean v) {
            this.hugetlb = v;
            return this;
        }

        public Builder region(String name, long gpaBase, long size) {
            names.add(name);
            specs.add(new long[] {gpaBase, size});
            return this;
        }

        public GuestMemory build() {
            if (hugetlb) { // every region's alignment before the pool is asked for any page
                for (int i = 0; i < specs.size(); i++) {
                    HugePages.checkGeometry(names.get(i), specs.get(i)[0], specs.get(i)[1]);
                }
            }
            List<GuestRegion> built = new ArrayList<>();
            try {
                for (int i = 0; i < specs.size(); i++) {
                    long base = specs.get(i)[0];
                    long size = specs.get(i)[1];
                    for (GuestRegion r : built) {
                        if (base < r.gpaBase() + r.size() && r.gpaBase() < base + size) {
                            throw new IllegalArgumentException("region " + names.get(i) + " overlaps " + r);
                        }
                        if (r.name().equals(names.get(i))) {
                            throw new IllegalArgumentException("duplicate region name " + names.get(i));
                        }
                    }
                    GuestRegion r = new GuestRegion(names.get(i), i, base, size, hugetlb);
                    built.add(r);
                    if (prealloc) {
                        r.preallocate();
                    }
                }
            } catch (RuntimeException e) {
                built.forEach(GuestRegion::close);
                throw e;
            }
            return new GuestMemory(built, true);
        }
    }
}
