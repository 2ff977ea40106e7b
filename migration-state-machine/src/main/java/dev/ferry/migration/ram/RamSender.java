package dev.ferry.migration.ram;

import dev.ferry.core.memory.ClearableDirtyLog;
import dev.ferry.core.memory.DirtyBitmap;
import dev.ferry.core.memory.DirtyLogSource;
import dev.ferry.core.memory.DirtyPages;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.memory.PageResidency;
import dev.ferry.core.migration.FreePageHints;
import dev.ferry.core.migration.PrecopyNotifier;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.core.sys.NativeMemory;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * The source half of RAM migration. Keeps one migration bitmap per region (off-heap), fed by
 * every {@link DirtyLogSource} at each sync; walks it a 64-page word at a time and sends each
 * dirty page as a ZERO record (all-zero page) or a PAGE record copied native-to-native into the
 * stream. No allocation or syscall per page. Migration thread only.
 */
final class RamSender implements DirtyPages, FreePageHints {
    static final long MAX_STEP_NANOS = 50_000_000L;
    private final GuestMemory memory;
    private final Supplier<List<DirtyLogSource>> sources;
    private final RamCounters counters;
    private final DirtySyncListener syncListener;
    private final PrecopyNotifier precopy;
    /** Pending pages free page hints cleared since the sender last counted (any thread adds). */
    private final java.util.concurrent.atomic.AtomicLong hintCleared = new java.util.concurrent.atomic.AtomicLong();
    /** Orders a hint's clearing against {@link #cleanup} unmapping the bitmaps. */
    private final Object hintLock = new Object();
    private final List<GuestRegion> regions;
    private final byte[][] idstrs;
    private volatile DirtyBitmap[] bitmaps;
    private List<DirtyLogSource> started = List.of();
    /** Sources that report without re-arming; each chunk is cleared in them just before it is sent. */
    private List<ClearableDirtyLog> clearable = List.of();
    /** Per region, per chunk of {@link #CLEAR_CHUNK_PAGES}: to clear in {@link #clearable} before sending from it. */
    private boolean[][] clearPending;
    /** QEMU's default clear-bitmap granularity: 1 GiB of 4 KiB pages. */
    static final long CLEAR_CHUNK_PAGES = 1L << 18;
    private int cursorRegion;
    private long cursorWord;
    private GuestRegion lastSent;
    private long remainingPages;
    private final PageResidency residency = new PageResidency();
    /** The multifd channels when the capability is on: pages go there, the main stream keeps the rest. */
    private MultifdSend multifd;

    RamSender(GuestMemory memory, Supplier<List<DirtyLogSource>> sources, RamCounters counters,
              DirtySyncListener syncListener) {
        this(memory, sources, counters, syncListener, (step, stopped) -> { });
    }

    /** {@code precopy} hears each dirty sync before and after it (free page hinting follows it). */
    RamSender(GuestMemory memory, Supplier<List<DirtyLogSource>> sources, RamCounters counters,
              DirtySyncListener syncListener, PrecopyNotifier precopy) {
        this.precopy = precopy;
        this.memory = memory;
        this.sources = sources;
        this.counters = counters;
        this.syncListener = syncListener;
        this.regions = memory.regions();
        this.idstrs = new byte[regions.size()][];
        for (int i = 0; i < regions.size(); i++) {
            idstrs[i] = regions.get(i).name().getBytes(StandardCharsets.UTF_8);
            if (idstrs[i].length == 0 || idstrs[i].length > 127) {
                throw new IllegalArgumentException("RAM block name must be 1..127 bytes: '" + regions.get(i).name() + "'");
            }
        }
    }

    /** Sends pages over {@code channels} from now on (before {@link #setup}). */
    void useMultifd(MultifdSend channels) {
        this.multifd = channels;
    }

    /**
     * Marks all RAM dirty, starts every dirty-log source, writes MEM_SIZE and EOS (with multifd, a
     * first synchronisation in between: a destination without multifd refuses the stream there).
     */
    void setup(SaveStream out) throws IOException {
        bitmaps = new DirtyBitmap[regions.size()];
        for (int i = 0; i < bitmaps.length; i++) {
            bitmaps[i] = new DirtyBitmap(regions.get(i).pages());
            bitmaps[i].setAll();
        }
        List<DirtyLogSource> all = new ArrayList<>();
        all.add(memory.writeLog());
        all.addAll(sources.get());
        List<DirtyLogSource> ok = new ArrayList<>();
        try {
            for (DirtyLogSource s : all) {
                try {
                    s.start();
                } catch (RuntimeException e) {
                    throw new DirtyLogFailure(s.name(), e);
                }
                ok.add(s);
            }
        } finally {
            started = ok;
        }
        clearable = ok.stream().filter(s -> s instanceof ClearableDirtyLog).map(s -> (ClearableDirtyLog) s).toList();
        clearPending = new boolean[regions.size()][];
        for (int i = 0; i < regions.size(); i++) {
            clearPending[i] = new boolean[(int) ((regions.get(i).pages() + CLEAR_CHUNK_PAGES - 1) / CLEAR_CHUNK_PAGES)];
        }
        markAllChunksPending();
        remainingPages = memory.totalSize() / RamFlags.PAGE_SIZE;
        counters.total = memory.totalSize();
        counters.remainingPages = remainingPages;
        out.putBe64(memory.totalSize() | RamFlags.MEM_SIZE);
        for (int i = 0; i < regions.size(); i++) {
            out.putU8(idstrs[i].length);
            out.putBytes(idstrs[i]);
            out.putBe64(regions.get(i).size());
        }
        if (multifd != null) {
            multifdFlush(out);
        }
        out.putBe64(RamFlags.EOS);
        // QEMU's first bitmap sync (ram_init_bitmaps): hinting starts here, so the first pass can
        // already skip pages the guest reports free.
        precopy.onPrecopy(PrecopyNotifier.Step.BEFORE_BITMAP_SYNC, false);
        precopy.onPrecopy(PrecopyNotifier.Step.AFTER_BITMAP_SYNC, false);
    }

    /** Collects every source's log into the migration bitmaps. */
    void sync() {
        sync(false);
    }

    /**
     * Collects every source's log into the migration bitmaps, telling the precopy notifiers
     * before and after; {@code vmStopped} for the sync in downtime.
     */
    void sync(boolean vmStopped) {
        precopy.onPrecopy(PrecopyNotifier.Step.BEFORE_BITMAP_SYNC, vmStopped);
        long before = remainingPages;
        for (DirtyLogSource s : started) {
            try {
                s.sync(this);
            } catch (DirtyLogFailure e) {
                throw e;
            } catch (RuntimeException e) {
                throw new DirtyLogFailure(s.name(), e);
            }
        }
        markAllChunksPending();
        hintCleared.set(0); // the recount below sees every clear made so far
        long now = 0;
        for (DirtyBitmap b : bitmaps) {
            now += b.count();
        }
        remainingPages = now;
        counters.remainingPages = now;
        counters.dirtySyncCount++;
        if (multifd != null) {
            multifd.newEpoch();
        }
        syncListener.afterSync(counters.dirtySyncCount, Math.max(0, now - before));
        precopy.onPrecopy(PrecopyNotifier.Step.AFTER_BITMAP_SYNC, vmStopped);
    }

    /**
     * A free page hint: clears the whole pages of {@code [gpa, gpa + length)} from the migration
     * bitmap only — never from a dirty log, so a guest write after the hint is found by the next
     * sync and sent. Any thread (a device's event loop); atomic per bitmap word against the
     * sender's harvest.
     */
    @Override
    public long clearPending(long gpa, long length) {
        long first = (gpa + RamFlags.PAGE_SIZE - 1) & -RamFlags.PAGE_SIZE;
        long end = (gpa + length) & -RamFlags.PAGE_SIZE;
        if (length <= 0 || end <= first) {
            return 0;
        }
        GuestRegion r;
        try {
            r = memory.regionFor(first, end - first);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("free page hint 0x" + Long.toHexString(gpa) + "+" + length
                    + " is not inside one RAM region");
        }
        synchronized (hintLock) { // cleanup unmaps the bitmaps under the same lock
            DirtyBitmap[] bms = bitmaps;
            if (bms == null) {
                return 0;
            }
            long n = bms[r.index()].clearRange((first - r.gpaBase()) >>> DirtyBitmap.PAGE_SHIFT,
                    (end - first) >>> DirtyBitmap.PAGE_SHIFT);
            hintCleared.addAndGet(n);
            return n;
        }
    }

    long remainingBytes() {
        return remainingPages * RamFlags.PAGE_SIZE;
    }

    /**
     * Sends dirty pages until none are left, or — unless {@code ignoreLimit} — the rate limit is
     * reached or {@value #MAX_STEP_NANOS} ns passed (QEMU's MAX_WAIT, so cancel and bandwidth
     * accounting stay responsive). Ends the section with EOS. Returns true when no dirty page is
     * left.
     */
    boolean send(SaveStream out, boolean ignoreLimit) throws IOException {
        long deadline = System.nanoTime() + MAX_STEP_NANOS;
        remainingPages -= hintCleared.getAndSet(0);
        residency.invalidate();
        if (!sendDirty(out, ignoreLimit, deadline)) {
            return endSection(out);
        }
        if (ignoreLimit) {
            // In downtime every dirty page goes, whatever the count says: a hint racing a count
            // may have made it an under-estimate.
            long left = 0;
            for (DirtyBitmap b : bitmaps) {
                left += b.count();
            }
            if (left > 0) {
                remainingPages = left;
                sendDirty(out, true, deadline);
            }
        }
        return endSection(out);
    }

    /** Sends until the count reaches zero (true) or a limit stops it (false). */
    private boolean sendDirty(SaveStream out, boolean ignoreLimit, long deadline) throws IOException {
        int emptyRegions = 0;
        while (remainingPages > 0) {
            DirtyBitmap bm = bitmaps[cursorRegion];
            GuestRegion region = regions.get(cursorRegion);
            long words = bm.words();
            boolean found = false;
            while (cursorWord < words) {
                if (bm.getWord(cursorWord) == 0) {
                    cursorWord++;
                    continue;
                }
                found = true;
                clearChunkBeforeSending(region, cursorWord << 6);
                long bits = bm.getAndClearWord(cursorWord);
                long base = cursorWord << 6;
                while (bits != 0) {
                    int bit = Long.numberOfTrailingZeros(bits);
                    bits &= bits - 1;
                    sendPage(out, region, base + bit);
                    remainingPages--;
                    if (!ignoreLimit && bits != 0 && out.rateLimitReached()) {
                        bm.orWord(cursorWord, bits);
                        return false;
                    }
                }
                cursorWord++;
                if (!ignoreLimit && (out.rateLimitReached() || System.nanoTime() - deadline > 0)) {
                    return false;
                }
            }
            cursorWord = 0;
            cursorRegion = (cursorRegion + 1) % bitmaps.length;
            emptyRegions = found ? 0 : emptyRegions + 1;
            if (emptyRegions > bitmaps.length) {
                remainingPages = 0; // a full lap found nothing: the count was an over-estimate
            }
        }
        return true;
    }

    private boolean endSection(SaveStream out) throws IOException {
        if (multifd != null && multifd.dirty()) {
            multifdFlush(out);
        }
        remainingPages -= hintCleared.getAndSet(0);
        counters.remainingPages = Math.max(0, remainingPages);
        out.putBe64(RamFlags.EOS);
        return remainingPages <= 0;
    }

    /**
     * Waits until the channels wrote every page queued so far and a SYNC packet each, then writes
     * MULTIFD_FLUSH and pushes the main stream out at once: the destination's channels wait at
     * their SYNC until it reads the flush, and this thread may next wait for room in them.
     */
    private void multifdFlush(SaveStream out) throws IOException {
        multifd.sync();
        counters.normalPages = multifd.normalPages();
        counters.zeroPages = multifd.zeroPages();
        out.putBe64(RamFlags.MULTIFD_FLUSH);
        if (out instanceof java.io.Flushable f) {
            f.flush();
        }
    }

    private void markAllChunksPending() {
        if (!clearable.isEmpty()) {
            for (boolean[] chunks : clearPending) {
                java.util.Arrays.fill(chunks, true);
            }
        }
    }

    /**
     * Re-arms the clearable logs for the chunk holding {@code page}, once per sync, before any of
     * the chunk's pages is read for sending: a write after this is caught for the next pass.
     */
    private void clearChunkBeforeSending(GuestRegion region, long page) {
        if (clearable.isEmpty()) {
            return;
        }
        int chunk = (int) (page / CLEAR_CHUNK_PAGES);
        boolean[] pending = clearPending[region.index()];
        if (pending[chunk]) {
            pending[chunk] = false;
            long first = chunk * CLEAR_CHUNK_PAGES;
            long n = Math.min(CLEAR_CHUNK_PAGES, region.pages() - first);
            for (ClearableDirtyLog log : clearable) {
                log.clear(region, first, n);
            }
        }
    }

    private void sendPage(SaveStream out, GuestRegion region, long page) throws IOException {
        if (multifd != null) {
            multifd.queue(region, idstrs[region.index()], page); // a channel thread scans it for zeros
            return;
        }
        long offset = page << DirtyBitmap.PAGE_SHIFT;
        long host = region.hostAddress(offset);
        boolean cont = region == lastSent;
        // A page the memfd never backed, or one given back to the host (a balloon's), is zero;
        // reading it would make the kernel allocate it. If the guest writes it after the residency
        // window was read, the dirty log has it.
        if (region.isDiscarded(page) || !residency.mayHoldData(region, page) || NativeMemory.isZero(host, RamFlags.PAGE_SIZE)) {
            header(out, region, offset | RamFlags.ZERO, cont);
            out.putU8(0);
            counters.zeroPages++;
        } else {
            header(out, region, offset | RamFlags.PAGE, cont);
            out.putNative(host, RamFlags.PAGE_SIZE);
            counters.normalPages++;
        }
    }

    private void header(SaveStream out, GuestRegion region, long record, boolean cont) throws IOException {
        if (cont) {
            out.putBe64(record | RamFlags.CONTINUE);
        } else {
            out.putBe64(record);
            byte[] id = idstrs[region.index()];
            out.putU8(id.length);
            out.putBytes(id);
            lastSent = region;
        }
    }

    /** Stops every started source and frees the bitmaps. Idempotent. */
    void cleanup() {
        for (DirtyLogSource s : started) {
            try {
                s.stop();
            } catch (RuntimeException e) {
                org.slf4j.LoggerFactory.getLogger(RamSender.class).warn("stopping dirty log {} failed: {}", s.name(), e.toString());
            }
        }
        started = List.of();
        residency.close();
        synchronized (hintLock) {
            if (bitmaps != null) {
                for (DirtyBitmap b : bitmaps) {
                    b.close();
                }
                bitmaps = null;
            }
        }
    }

    @Override
    public DirtyBitmap bitmap(GuestRegion region) {
        return bitmaps[region.index()];
    }

    @Override
    public void mark(Gpa gpa, long length) {
        GuestRegion r = memory.regionFor(gpa.raw(), length);
        bitmaps[r.index()].markBytes(gpa.raw() - r.gpaBase(), length);
    }
}
