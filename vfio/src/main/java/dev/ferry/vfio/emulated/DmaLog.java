package dev.ferry.vfio.emulated;

import dev.ferry.core.memory.DirtyBitmap;
import dev.ferry.core.sys.NativeMemory;
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
