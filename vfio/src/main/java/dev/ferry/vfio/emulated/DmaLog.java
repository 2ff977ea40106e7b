package dev.ferry.vfio.emulated;

import dev.ferry.core.memory.DirtyBitmap;
import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.device.IovaRange;

import java.util.ArrayList;
import java.util.List;

/**
 * An emulated device's DMA dirty log: one bitmap of 4 KiB pages per range that
 * DMA_LOGGING_START named. Reports read and clear the pages of the window asked for, leave the
 * rest, and only set bits in the caller's bitmap, as the kernel's drivers do. Guarded by the
 * device lock.
 */
final class DmaLog {
    private static final int PAGE = EmulatedVfioDevice.DMA_PAGE;

    private final List<IovaRange> ranges;
    private final List<DirtyBitmap> bitmaps = new ArrayList<>();

    /** DMA_LOGGING_START's argument rules (vfio_ioctl_device_feature_logging_start). */
    static void checkStart(String op, long pageSize, List<IovaRange> ranges) throws VfioException {
        if (ranges.isEmpty()) {
            throw new VfioException(op, Errno.EINVAL, "num_ranges is 0");
        }
        if (ranges.size() > EmulatedVfioDevice.MAX_RANGES) {
            throw new VfioException(op, Errno.E2BIG, ranges.size() + " ranges, at most " + EmulatedVfioDevice.MAX_RANGES);
        }
        checkPageSize(op, pageSize);
        for (int i = 0; i < ranges.size(); i++) {
            IovaRange r = ranges.get(i);
            if ((r.iova() & (pageSize - 1)) != 0 || (r.length() & (pageSize - 1)) != 0) {
                throw new VfioException(op, Errno.EINVAL, "range " + r + " is not aligned to " + pageSize);
            }
            for (int j = 0; j < i; j++) {
                if (r.overlaps(ranges.get(j))) {
                    throw new VfioException(op, Errno.EINVAL, "ranges " + ranges.get(j) + " and " + r + " overlap");
                }
            }
        }
    }

    /** DMA_LOGGING_REPORT's argument rules. */
    static void checkReport(String op, long iova, long length, long pageSize, long bitmap) throws VfioException {
        checkPageSize(op, pageSize);
        if (length <= 0 || iova + length < iova || bitmap == 0) {
            throw new VfioException(op, Errno.EINVAL, "bad iova/length/bitmap");
        }
    }

    private static void checkPageSize(String op, long pageSize) throws VfioException {
        if (pageSize < PAGE || Long.bitCount(pageSize) != 1) {
            throw new VfioException(op, Errno.EINVAL, "page_size " + pageSize + " is not a power of two >= 4096");
        }
    }

    DmaLog(List<IovaRange> ranges) {
        this.ranges = List.copyOf(ranges);
        for (IovaRange r : ranges) {
            bitmaps.add(new DirtyBitmap((r.length() + PAGE - 1) / PAGE));
        }
    }

    void mark(long iova, long length) {
        for (int i = 0; i < ranges.size(); i++) {
            IovaRange r = ranges.get(i);
            long lo = Math.max(iova, r.iova());
            long hi = Math.min(iova + length, r.end());
            if (lo < hi) {
                bitmaps.get(i).markBytes(lo - r.iova(), hi - lo);
            }
        }
    }

    void report(long iova, long length, long pageSize, long bitmap, boolean clear) {
        long end = iova + length;
        for (int i = 0; i < ranges.size(); i++) {
            IovaRange r = ranges.get(i);
            long lo = Math.max(iova, r.iova());
            long hi = Math.min(end, r.end());
            if (lo >= hi) {
                continue;
            }
            DirtyBitmap bits = bitmaps.get(i);
            long firstPage = (lo - r.iova()) / PAGE;
            long lastPage = (hi - 1 - r.iova()) / PAGE;
            for (long w = firstPage >>> 6; w <= lastPage >>> 6; w++) {
                long mask = -1L;
                if (w == firstPage >>> 6) {
                    mask &= -1L << (firstPage & 63);
                }
                if (w == lastPage >>> 6) {
                    mask &= -1L >>> (63 - (lastPage & 63));
                }
                long word = clear ? bits.getAndClearWord(w) : bits.getWord(w);
                if (clear && (word & ~mask) != 0) {
                    bits.orWord(w, word & ~mask);
                }
                word &= mask;
                while (word != 0) {
                    int b = Long.numberOfTrailingZeros(word);
                    word &= word - 1;
                    // the bits covering this page's part of the window (one, unless the
                    // window starts inside a page and the page straddles two report pages)
                    long pageIova = r.iova() + ((w << 6) + b) * PAGE;
                    long last = (Math.min(end, pageIova + PAGE) - 1 - iova) / pageSize;
                    for (long bit = (Math.max(iova, pageIova) - iova) / pageSize; bit <= last; bit++) {
                        NativeMemory.getAndOrLong(bitmap + (bit >>> 6) * 8, 1L << (bit & 63));
                    }
                }
            }
        }
    }

    void close() {
        bitmaps.forEach(DirtyBitmap::close);
    }
}
