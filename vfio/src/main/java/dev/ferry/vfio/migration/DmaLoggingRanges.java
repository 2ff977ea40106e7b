package dev.ferry.vfio.migration;

import dev.ferry.vfio.device.IovaRange;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * The ranges DMA_LOGGING_START is asked to track: what the device can reach (guest RAM at
 * IOVA = GPA), page-aligned, sorted, non-overlapping, and at most as many as the kernel takes
 * (256). Over the limit, the two neighbours with the smallest gap between them become one range
 * until it fits — tracking a gap costs bitmap bits, never correctness (QEMU goes further and asks
 * for one range below 4 GiB and one above).
 */
final class DmaLoggingRanges {
    private DmaLoggingRanges() {
    }

    static List<IovaRange> of(List<IovaRange> reachable, long pageSize, int maxRanges) {
        if (maxRanges < 1) {
            throw new IllegalArgumentException("maxRanges " + maxRanges);
        }
        List<IovaRange> sorted = new ArrayList<>();
        for (IovaRange r : reachable) {
            long start = r.iova() & -pageSize;
            long end = (r.end() + pageSize - 1) & -pageSize;
            sorted.add(new IovaRange(start, end - start));
        }
        sorted.sort(Comparator.comparingLong(IovaRange::iova));
        List<IovaRange> merged = new ArrayList<>();
        for (IovaRange r : sorted) {
            IovaRange last = merged.isEmpty() ? null : merged.get(merged.size() - 1);
            if (last != null && r.iova() <= last.end()) {
                merged.set(merged.size() - 1, new IovaRange(last.iova(), Math.max(last.end(), r.end()) - last.iova()));
            } else {
                merged.add(r);
            }
        }
        while (merged.size() > maxRanges) {
            int best = 0;
            long bestGap = Long.MAX_VALUE;
            for (int i = 0; i + 1 < merged.size(); i++) {
                long gap = merged.get(i + 1).iova() - merged.get(i).end();
                if (gap < bestGap) {
                    bestGap = gap;
                    best = i;
                }
            }
            IovaRange a = merged.get(best);
            IovaRange b = merged.remove(best + 1);
            merged.set(best, new IovaRange(a.iova(), b.end() - a.iova()));
        }
        return List.copyOf(merged);
    }
}
