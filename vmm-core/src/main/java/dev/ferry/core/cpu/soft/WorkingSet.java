package dev.ferry.core.cpu.soft;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;

import java.util.ArrayList;
import java.util.List;

/**
 * A workload's working set resolved against one guest's memory: working-set page → host address,
 * with the bounds checked once here so the vCPU hot path does no per-page region lookup and no
 * allocation. The working set may span several regions but must be RAM throughout.
 *
 * <p>Immutable; used by every vCPU thread and by verifiers. Valid while the {@link GuestMemory}
 * it was built from is open.
 */
final class WorkingSet {
    private final SoftWorkload workload;
    /** Segment k covers working-set pages {@code [segmentStart[k], segmentEnd[k])}. */
    private final long[] segmentStart;
    private final long[] segmentEnd;
    /** Host address of page {@code j} in segment k is {@code hostDelta[k] + j * 4096}. */
    private final long[] hostDelta;

    WorkingSet(GuestMemory memory, SoftWorkload workload) {
        this.workload = workload;
        long base = workload.workingSetBase();
        long end = base + workload.workingSetBytes();
        List<long[]> segments = new ArrayList<>();
        for (GuestRegion r : memory.regions()) {
            long from = Math.max(base, r.gpaBase());
            long to = Math.min(end, r.gpaBase() + r.size());
            if (from < to) {
                long firstPage = (from - base) / SoftWorkload.PAGE_SIZE;
                long delta = r.hostAddress(from - r.gpaBase()) - firstPage * SoftWorkload.PAGE_SIZE;
                segments.add(new long[] {firstPage, (to - base) / SoftWorkload.PAGE_SIZE, delta});
            }
        }
        segments.sort((a, b) -> Long.compare(a[0], b[0]));
        long covered = 0;
        for (long[] s : segments) {
            if (s[0] != covered) {
                break;
            }
            covered = s[1];
        }
        if (covered != workload.pages()) {
            throw new IllegalArgumentException("soft workload: working set [0x" + Long.toHexString(base) + ", 0x"
                    + Long.toHexString(end) + ") is not all RAM of this guest: gpa 0x"
                    + Long.toHexString(workload.gpaOf(covered)) + " is outside every region " + memory.regions()
                    + "; shrink the working set or move its base");
        }
        int n = segments.size();
        this.segmentStart = new long[n];
        this.segmentEnd = new long[n];
        this.hostDelta = new long[n];
        for (int k = 0; k < n; k++) {
            segmentStart[k] = segments.get(k)[0];
            segmentEnd[k] = segments.get(k)[1];
            hostDelta[k] = segments.get(k)[2];
        }
    }

    SoftWorkload workload() {
        return workload;
    }

    /** Host address of working-set page {@code page} ({@code 0 <= page < pages}). */
    long host(long page) {
        for (int k = 0; k < segmentEnd.length; k++) {
            if (page < segmentEnd[k] && page >= segmentStart[k]) {
                return hostDelta[k] + page * SoftWorkload.PAGE_SIZE;
            }
        }
        throw new IndexOutOfBoundsException("page " + page + " outside working set of " + workload.pages() + " pages");
    }

    /** Guest frame number of working-set page {@code page}: what its header's magic is XORed with. */
    long gfn(long page) {
        return workload.gpaOf(page) / SoftWorkload.PAGE_SIZE;
    }
}
