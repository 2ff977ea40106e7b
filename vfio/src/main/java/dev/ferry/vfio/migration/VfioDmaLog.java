package dev.ferry.vfio.migration;

import dev.ferry.core.memory.DirtyBitmap;
import dev.ferry.core.memory.DirtyLogSource;
import dev.ferry.core.memory.DirtyPages;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.List;

/**
 * A VFIO device's DMA writes as a {@link DirtyLogSource}, so RAM migration resends the guest
 * pages the device wrote. {@code start} is DMA_LOGGING_START over guest RAM (IOVA = GPA, 4 KiB
 * pages, at most 256 ranges); {@code sync} is one DMA_LOGGING_REPORT per range into an off-heap
 * scratch bitmap (zeroed first: the kernel only sets bits), ORed into the migration's bitmaps a
 * 64-page word at a time; {@code stop} is DMA_LOGGING_STOP.
 *
 * <p>Where the device cannot say what it wrote, every page it can reach must be assumed written:
 * a device without DMA logging, a START that failed, or a REPORT that failed (a report reads and
 * clears, so after a failed one the log has lost pages) — from then on each sync marks all guest
 * RAM dirty, with one warning.
 *
 * <p>Migration thread; device calls under the owning {@link VfioMigration}'s lock.
 */
final class VfioDmaLog implements DirtyLogSource {
    private static final Logger LOG = LoggerFactory.getLogger(VfioDmaLog.class);
    static final long PAGE = 4096;
    static final int MAX_RANGES = 256;

    private final VfioDevice device;
    private final String name;
    private final Object lock;
    private final GuestMemory memory;
    private final VfioMigrationStats stats;
    private final boolean supported;
    private final int maxRanges;
    private List<IovaRange> ranges = List.of();
    private Mapping scratch;
    private boolean logging;
    private boolean allDirty;

    VfioDmaLog(VfioDevice device, Object lock, GuestMemory memory, VfioMigrationStats stats, boolean supported) {
        this(device, lock, memory, stats, supported, MAX_RANGES);
    }

    /** With a lower range limit than the kernel's, so tests can make ranges merge. */
    VfioDmaLog(VfioDevice device, Object lock, GuestMemory memory, VfioMigrationStats stats, boolean supported,
               int maxRanges) {
        this.maxRanges = maxRanges;
        this.device = device;
        this.name = device.name();
        this.lock = lock;
        this.memory = memory;
        this.stats = stats;
        this.supported = supported;
    }

    @Override
    public String name() {
        return name + " dma";
    }

    /** The ranges the device was asked to log (empty while not logging). */
    List<IovaRange> ranges() {
        synchronized (lock) {
            return ranges;
        }
    }

    /** True when every sync reports all guest RAM (no tracking, or tracking broke). */
    boolean allDirty() {
        synchronized (lock) {
            return allDirty;
        }
    }

    @Override
    public void start() {
        synchronized (lock) {
            stopLocked();
            if (!supported) {
                // warned once when the device was attached
                allDirty = true;
                return;
            }
            List<IovaRange> reachable = memory.regions().stream()
                    .map(r -> new IovaRange(r.gpaBase(), r.size())).toList();
            List<IovaRange> want = DmaLoggingRanges.of(reachable, PAGE, maxRanges);
            try {
                device.dmaLoggingStart(PAGE, want);
            } catch (VfioException e) {
                degrade(name + ": " + e.getMessage() + "; all guest RAM counts as dirty on every sync");
                return;
            }
            long bitmapBytes = 8;
            for (IovaRange r : want) {
                bitmapBytes = Math.max(bitmapBytes, words(r.length() / PAGE) * 8);
            }
            scratch = Mapping.anonymous(bitmapBytes);
            ranges = want;
            logging = true;
        }
    }

    @Override
    public void sync(DirtyPages target) {
        synchronized (lock) {
            if (allDirty) {
                markAll(target);
                return;
            }
            if (!logging) {
                return;
            }
            long pages = 0;
            for (IovaRange r : ranges) {
                long words = words(r.length() / PAGE);
                NativeMemory.fill(scratch.address(), words * 8, (byte) 0);
                try {
                    device.dmaLoggingReport(r.iova(), r.length(), PAGE, scratch.address());
                } catch (VfioException e) {
                    degrade(name + ": " + e.getMessage() + " for " + r + "; the log lost what it had, so all guest"
                            + " RAM counts as dirty from now on");
                    markAll(target);
                    return;
                }
                pages += orInto(target, r, words);
            }
            stats.dmaSync(pages);
        }
    }

    @Override
    public void stop() {
        synchronized (lock) {
            stopLocked();
        }
    }

    private void stopLocked() {
        if (logging) {
            try {
                device.dmaLoggingStop();
            } catch (VfioException e) {
                LOG.warn("{}: {}", name, e.getMessage());
                stats.warning(name + ": " + e.getMessage());
            }
        }
        logging = false;
        allDirty = false;
        ranges = List.of();
        if (scratch != null) {
            scratch.close();
            scratch = null;
        }
    }

    private void degrade(String warning) {
        if (!allDirty) {
            LOG.warn(warning);
            stats.warning(warning);
        }
        allDirty = true;
    }

    private void markAll(DirtyPages target) {
        long pages = 0;
        for (GuestRegion r : memory.regions()) {
            target.bitmap(r).setAll();
            pages += r.pages();
        }
        stats.dmaSync(pages);
    }

    /**
     * ORs the scratch bitmap of range {@code r} into the bitmap of each region inside it. A
     * region starts at any page of the range (ranges may have been merged), so its words are
     * cut out of the scratch at a bit offset. Returns the number of set bits.
     */
    private long orInto(DirtyPages target, IovaRange r, long scratchWords) {
        long count = 0;
        long base = scratch.address();
        for (GuestRegion region : memory.regions()) {
            if (region.gpaBase() < r.iova() || region.gpaBase() + region.size() > r.end()) {
                continue;
            }
            DirtyBitmap bm = target.bitmap(region);
            long first = (region.gpaBase() - r.iova()) / PAGE;
            long regionPages = region.pages();
            for (long w = 0; w * 64 < regionPages; w++) {
                long bit = first + w * 64;
                long word = bit >>> 6;
                int shift = (int) (bit & 63);
                long bits = NativeMemory.getLong(base + word * 8) >>> shift;
                if (shift != 0 && word + 1 < scratchWords) {
                    bits |= NativeMemory.getLong(base + (word + 1) * 8) << (64 - shift);
                }
                long left = regionPages - w * 64;
                if (left < 64) {
                    bits &= (1L << left) - 1;
                }
                if (bits != 0) {
                    bm.orWord(w, bits);
                    count += Long.bitCount(bits);
                }
            }
        }
        return count;
    }

    private static long words(long pages) {
        return (pages + 63) >>> 6;
    }
}
