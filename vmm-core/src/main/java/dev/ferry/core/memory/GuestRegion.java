package dev.ferry.core.memory;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.Sys;

/**
 * One contiguous piece of guest RAM: a memfd (shareable with vhost-user back-ends, registrable
 * as a KVM slot) mapped shared into this process — created here, or received from a peer
 * ({@link #mapPeer}: a vhost-user back-end maps its front-end's memory table). Owns the memfd, the mapping and the bitmap of
 * the VMM's own writes; {@link GuestMemory} owns the regions.
 */
public final class GuestRegion implements AutoCloseable {
    private final String name;
    private final int index;
    private final long gpaBase;
    private final long size;
    private final Fd memfd;
    private final Mapping mapping;
    private final long host;
    private final DirtyBitmap vmmWrites;
    /** Pages given back to the host (a balloon's inflated pages): holes in the memfd, never read by migration. */
    private final DirtyBitmap discarded;
    /** Backed by 2 MiB pages from the host's huge page pool ({@link HugePages}). */
    private final boolean hugetlb;

    GuestRegion(String name, int index, long gpaBase, long size) {
        this(name, index, gpaBase, size, false);
    }

    /**
     * A new region; with {@code hugetlb} its memfd takes 2 MiB pages from the host's pool (QEMU's
     * {@code memory-backend-memfd,hugetlb=on}), reserved when it is mapped.
     *
     * @throws IllegalArgumentException when the geometry is not 4 KiB-aligned, or with
     *         {@code hugetlb} not 2 MiB-aligned
     * @throws GuestMemoryException     when the pool cannot hold the region
     */
    GuestRegion(String name, int index, long gpaBase, long size, boolean hugetlb) {
        this(name, index, gpaBase, size, newMemfd(name, gpaBase, size, hugetlb), 0, hugetlb);
    }

    /**
     * A region backed by a descriptor a peer sent (a vhost-user front-end's memory table entry):
     * maps {@code size} bytes of {@code fd} from {@code mmapOffset}, shared. Takes ownership of
     * {@code fd} — also when mapping fails, it is closed then — and unmaps and closes it once, in
     * {@link #close}.
     *
     * @throws IllegalArgumentException when base, size or offset is not a multiple of 4 KiB
     */
    public static GuestRegion mapPeer(String name, int index, long gpaBase, long size, Fd fd, long mmapOffset) {
        if (mmapOffset < 0 || (mmapOffset & (Linux.PAGE_SIZE - 1)) != 0) {
            fd.close();
            throw new IllegalArgumentException(name + ": mmap offset 0x" + Long.toHexString(mmapOffset)
                    + " is not a non-negative multiple of 4 KiB");
        }
        long fileSize;
        try {
            fileSize = Sys.fstatSizeAndAllocated(fd)[0];
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        }
        // A mapping past the end of the file would fault (SIGBUS) on first touch, not fail here.
        if (size <= 0 || mmapOffset > fileSize || size > fileSize - mmapOffset) {
            fd.close();
            throw new IllegalArgumentException(name + ": " + size + " bytes at offset 0x" + Long.toHexString(mmapOffset)
                    + " do not fit the peer's file of " + fileSize + " bytes");
        }
        return new GuestRegion(name, index, gpaBase, size, fd, mmapOffset, false);
    }

    private static Fd newMemfd(String name, long gpaBase, long size, boolean hugetlb) {
        checkGeometry(name, 0, size);
        if (hugetlb) {
            HugePages.checkGeometry(name, gpaBase, size);
        }
        Fd fd = hugetlb ? HugePages.memfd("ferry-" + name) : Sys.memfdCreate("ferry-" + name, Linux.MFD_CLOEXEC);
        try {
            Sys.ftruncate(fd, size);
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        }
        return fd;
    }

    private static void checkGeometry(String name, long gpaBase, long size) {
        if (size <= 0 || (size & (Linux.PAGE_SIZE - 1)) != 0 || (gpaBase & (Linux.PAGE_SIZE - 1)) != 0) {
            throw new IllegalArgumentException(name + ": base and size must be non-zero multiples of 4 KiB (base 0x"
                    + Long.toHexString(gpaBase) + ", size " + size + ")");
        }
    }

    /** Maps {@code fd} (owned from here on, closed on failure) at {@code offset}. */
    private GuestRegion(String name, int index, long gpaBase, long size, Fd fd, long offset, boolean hugetlb) {
        try {
            checkGeometry(name, gpaBase, size);
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        }
        this.name = name;
        this.index = index;
        this.gpaBase = gpaBase;
        this.size = size;
        this.hugetlb = hugetlb;
        Mapping m = null;
        try {
            m = hugetlb ? HugePages.map(name, fd, size) : Mapping.shared(fd, offset, size);
            this.vmmWrites = new DirtyBitmap(size >>> DirtyBitmap.PAGE_SHIFT);
            this.discarded = new DirtyBitmap(size >>> DirtyBitmap.PAGE_SHIFT);
        } catch (RuntimeException e) {
            if (m != null) {
                m.close();
            }
            fd.close();
            throw e;
        }
        this.memfd = fd;
        this.mapping = m;
        this.host = m.address();
    }

    /** The RAM block name, as in the migration stream (e.g. {@code "pc.ram"}). */
    public String name() {
        return name;
    }

    public int index() {
        return index;
    }

    public Gpa base() {
        return new Gpa(gpaBase);
    }

    public long gpaBase() {
        return gpaBase;
    }

    public long size() {
        return size;
    }

    public long pages() {
        return size >>> DirtyBitmap.PAGE_SHIFT;
    }

    public boolean contains(long gpa) {
        return gpa - gpaBase >= 0 && gpa - gpaBase < size;
    }

    /**
     * True when 2 MiB pages from the host's huge page pool back this region: punching a 4 KiB page
     * ({@link GuestMemory#discard}) zeroes it but gives memory back only for whole huge pages.
     */
    public boolean hugetlb() {
        return hugetlb;
    }

    /** The memfd backing this region, for sharing (vhost-user) or slots (KVM). Still owned here. */
    public Fd memfd() {
        return memfd;
    }

    /** The host address of the region's first byte. */
    public HostAddress hostBase() {
        return new HostAddress(host);
    }

    /**
     * Host address of byte {@code offset} of this region, for bulk page access by the migration
     * sender and receiver, which check their offsets against {@link #size()} once per run.
     */
    public long hostAddress(long offset) {
        if (!mapping.isMapped()) {
            throw new GuestMemoryException(name + ": region already unmapped (its machine was closed)");
        }
        if (offset < 0 || offset > size) {
            throw new GuestMemoryException(name + ": offset 0x" + Long.toHexString(offset) + " outside region of "
                    + size + " bytes");
        }
        return host + offset;
    }

    /**
     * Allocates every page of the region now (QEMU's {@code prealloc=on}), so that neither the
     * guest nor an incoming migration pays a page fault per first touch. One
     * {@code MADV_POPULATE_WRITE} per 256 MiB; on kernels without it, one write per page.
     */
    void preallocate() {
        long chunk = 256L << 20;
        for (long off = 0; off < size; off += chunk) {
            long len = Math.min(chunk, size - off);
            try {
                Sys.madvise(host + off, len, Linux.MADV_POPULATE_WRITE);
            } catch (dev.ferry.core.sys.NativeCallException e) {
                if (e.errno() != dev.ferry.core.sys.Errno.EINVAL) {
                    throw e;
                }
                for (long p = off; p < off + len; p += Linux.PAGE_SIZE) {
                    dev.ferry.core.sys.NativeMemory.putByte(host + p, dev.ferry.core.sys.NativeMemory.getByte(host + p));
                }
            }
        }
    }

    DirtyBitmap vmmWrites() {
        return vmmWrites;
    }

    /**
     * The pages of this region given back to the host ({@link GuestMemory#discard}). Migration
     * sends them as zero pages without reading them, since reading a hole of a shared memfd
     * mapping would make the kernel allocate it again.
     */
    public boolean isDiscarded(long page) {
        return discarded.get(page);
    }

    /**
     * The first page at or after {@code from} that is discarded ({@code discarded} true) or kept
     * (false), or {@link #pages()} when there is none: 64 pages per step, so a scan of the whole
     * region (a balloon saving its inflated runs inside the guest's pause) costs a word per 256 kB.
     */
    public long nextPage(long from, boolean discarded) {
        long pages = pages();
        long p = Math.max(0, from);
        while (p < pages) {
            long w = this.discarded.getWord(p >>> 6);
            if (!discarded) {
                w = ~w;
            }
            w &= -1L << (p & 63);
            if (w != 0) {
                return Math.min(pages, (p & ~63L) + Long.numberOfTrailingZeros(w));
            }
            p = (p & ~63L) + 64;
        }
        return pages;
    }

    DirtyBitmap discardedPages() {
        return discarded;
    }

    /** Bytes of this region the host has allocated now ({@code st_blocks} of the memfd). */
    public long allocatedBytes() {
        return Sys.fstatSizeAndAllocated(memfd)[1];
    }

    @Override
    public void close() {
        mapping.close();
        memfd.close();
        vmmWrites.close();
        discarded.close();
    }

    @Override
    public String toString() {
        return name + " [0x" + Long.toHexString(gpaBase) + ", +0x" + Long.toHexString(size) + ")";
    }
}
