package dev.ferry.core.memory;

import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Which pages of a region may hold data, asked of the kernel without touching them: a page of a
 * memfd that was never written is a hole — it reads as zero, and reading it would make the
 * kernel allocate it. Migration uses this to send and receive such pages without touching them.
 *
 * <p>{@code mincore} answers for a window of {@value #WINDOW_PAGES} pages in one call (never one
 * call per page), or of {@value #SMALL_WINDOW_PAGES} pages after a window that answered fewer
 * than {@value #DENSE_LOOKUPS} questions (a sparse caller). It reports a page as not resident
 * both when it is a hole and when it was swapped out, so on a host with swap every run of
 * not-resident pages is confirmed with one {@code lseek(SEEK_DATA)} on the memfd, which counts
 * swapped pages as data. Without swap
 * (checked once, from {@code /proc/swaps}) {@code mincore} alone is exact.
 *
 * <p>The answer is a snapshot: a page written after its window was read shows as a hole until
 * {@link #invalidate()}. Callers only rely on it where a later write is caught some other way
 * (the dirty log on the source; their own record of what they wrote on the destination).
 * One thread; owns a small native buffer.
 */
public final class PageResidency implements AutoCloseable {
    public static final int WINDOW_PAGES = 32768;
    /**
     * The window after one that answered fewer than {@link #DENSE_LOOKUPS} questions: a sparse
     * caller (a late pass sending a few dirty pages spread over the guest) asks a few pages per
     * 128 MiB, and there a full window's {@code mincore} cost ~120 µs on this project's hosts,
     * against ~3 µs for one of these.
     */
    static final int SMALL_WINDOW_PAGES = 512;
    static final int DENSE_LOOKUPS = 64;
    private final long vec = NativeMemory.allocate(WINDOW_PAGES);
    private final boolean swap;
    private GuestRegion region;
    private long windowStart;
    private long windowPages;
    /** Questions the current window answered, and whether the next one is a full window. */
    private int lookups;
    private boolean dense = true;
    /** With swap: pages [holeFrom, holeTo) of {@link #region} are known holes. */
    private long holeFrom = -1;
    private long holeTo = -1;
    private boolean closed;

    /** True when page {@code page} of {@code r} may hold data; false when it is surely a hole. */
    public boolean mayHoldData(GuestRegion r, long page) {
        if (r != region || page < windowStart || page >= windowStart + windowPages) {
            load(r, page);
        }
        lookups++;
        if ((NativeMemory.getByte(vec + (page - windowStart)) & 1) != 0) {
            return true;
        }
        if (!swap) {
            return false;
        }
        if (page >= holeFrom && page < holeTo) {
            return false;
        }
        long data = Sys.seekData(r.memfd(), page << DirtyBitmap.PAGE_SHIFT);
        long dataPage = data < 0 ? r.pages() : data >>> DirtyBitmap.PAGE_SHIFT;
        if (dataPage <= page) {
            return true; // swapped out, or data since the window was read
        }
        holeFrom = page;
        holeTo = dataPage;
        return false;
    }

    private void load(GuestRegion r, long page) {
        if (closed) {
            throw new IllegalStateException("page residency closed");
        }
        if (region != null) {
            dense = lookups >= DENSE_LOOKUPS;
        }
        long window = dense ? WINDOW_PAGES : SMALL_WINDOW_PAGES;
        long start = page - page % window;
        long n = Math.min(window, r.pages() - start);
        lookups = 0;
        Sys.mincore(r.hostAddress(start << DirtyBitmap.PAGE_SHIFT), n << DirtyBitmap.PAGE_SHIFT, vec);
        region = r;
        windowStart = start;
        windowPages = n;
        holeFrom = holeTo = -1;
    }

    /** Pages the current window covers; for tests. */
    long windowPages() {
        return region == null ? 0 : windowPages;
    }

    /** Forgets what it read; the next question reads the kernel's current answer. */
    public void invalidate() {
        if (region != null) {
            dense = lookups >= DENSE_LOOKUPS;
        }
        region = null;
        holeFrom = holeTo = -1;
    }

    /** True when any swap area is active: then mincore alone cannot tell a hole from a swapped page. */
    static boolean hostSwaps() {
        try {
            List<String> lines = Files.readAllLines(Path.of("/proc/swaps"));
            return lines.size() > 1;
        } catch (IOException | RuntimeException e) {
            return true; // cannot tell: assume the worst
        }
    }

    /** Answers as on a host with swap (every not-resident run confirmed by lseek); for tests. */
    public static PageResidency assumingSwap() {
        return new PageResidency(true);
    }

    public PageResidency() {
        this(hostSwaps());
    }

    private PageResidency(boolean swap) {
        this.swap = swap;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            NativeMemory.free(vec);
        }
    }
}
