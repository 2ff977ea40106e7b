package dev.ferry.virtio.balloon;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.queue.ChainReader;
import dev.ferry.virtio.queue.DescriptorChain;
import dev.ferry.virtio.queue.SplitVirtqueue;

import java.io.IOException;
import java.util.Arrays;

/**
 * The inflate and deflate queues of a {@link VirtioBalloon} and the inflated set they make: PFNs
 * (le32, 4 KiB units) are gathered into runs of consecutive pages inside one region, an inflated
 * run is {@link GuestMemory#discard}ed (and logged, so a running migration sends it again as a
 * zero page, unread), a deflated run {@link GuestMemory#reclaim}ed. PFNs outside RAM are skipped
 * and counted, never punched. The inflated set also travels in the device state as runs of
 * guest-physical pages, read back here with every run checked against RAM.
 *
 * <h2>Threads</h2>
 * The queues on the device's event loop; {@link #inflatedRuns} and {@link #readRuns} on the
 * migration thread with the VM stopped, {@link #discardRuns} when a load commits.
 */
final class BalloonPages {
    private final String id;
    private final GuestMemory memory;
    private final BalloonCounters counters;
    private final long ramPages;

    BalloonPages(String id, GuestMemory memory, BalloonCounters counters, long ramPages) {
        this.id = id;
        this.memory = memory;
        this.counters = counters;
        this.ramPages = ramPages;
    }

    /** Serves every available chain of the inflate ({@code inflate}) or deflate queue. Loop thread. */
    void serve(VirtioContext c, SplitVirtqueue vq, boolean inflate) {
        DeviceMemory dm = c.memory();
        boolean any = false;
        DescriptorChain chain;
        while ((chain = vq.pop()) != null) {
            long n = chain.readableBytes() / 4;
            ChainReader r = chain.reader();
            long runStart = -1;
            long runPages = 0;
            for (long i = 0; i < n; i++) {
                long gpa = Integer.toUnsignedLong(r.readU32()) << BalloonConfig.PFN_SHIFT;
                if (!dm.isRam(gpa, BalloonConfig.PAGE)) {
                    counters.refusedPfns.incrementAndGet();
                    continue;
                }
                if (runPages > 0 && gpa == runStart + (runPages << BalloonConfig.PFN_SHIFT)
                        && dm.isRam(runStart, (runPages + 1) << BalloonConfig.PFN_SHIFT)) {
                    runPages++;
                    continue;
                }
                flush(runStart, runPages, inflate);
                runStart = gpa;
                runPages = 1;
            }
            flush(runStart, runPages, inflate);
            vq.push(chain, 0);
            any = true;
        }
        if (any) {
            vq.publish();
            c.notifyQueue(vq.index());
        }
    }

    /** One run of consecutive pages inside one region: punched (and logged) or reclaimed. */
    private void flush(long gpa, long pages, boolean inflate) {
        if (pages <= 0) {
            return;
        }
        long len = pages << BalloonConfig.PFN_SHIFT;
        if (inflate) {
            counters.inflatedPages.addAndGet(memory.discard(new Gpa(gpa), len));
            // The page's content changed (to zero): a running migration sends it again — as a
            // zero page, unread, since it is discarded.
            memory.markWritten(new Gpa(gpa), len);
        } else {
            counters.deflatedPages.addAndGet(memory.reclaim(new Gpa(gpa), len));
        }
    }

    /** The inflated set as (first page, pages) pairs over guest-physical page numbers. */
    long[] inflatedRuns() {
        long[] buf = new long[16];
        int n = 0;
        for (GuestRegion r : memory.regions()) {
            long base = r.gpaBase() >>> BalloonConfig.PFN_SHIFT;
            long pages = r.pages();
            for (long start = r.nextPage(0, true); start < pages; ) {
                long end = r.nextPage(start, false);
                if (n + 2 > buf.length) {
                    buf = Arrays.copyOf(buf, buf.length * 2);
                }
                buf[n++] = base + start;
                buf[n++] = end - start;
                start = r.nextPage(end, true);
            }
        }
        return Arrays.copyOf(buf, n);
    }

    /**
     * Reads {@code nruns} runs of the stream's inflated set as (first page, pages) pairs, each
     * non-empty, ascending, disjoint and inside one region of RAM; the count is checked first.
     */
    long[] readRuns(LoadStream in, int nruns) throws IOException, MigrationException {
        if (nruns < 0 || nruns > VirtioBalloon.MAX_RUNS || nruns > ramPages) {
            throw new MigrationException(id + ": " + Integer.toUnsignedLong(nruns) + " runs of inflated pages; at most "
                    + Math.min(VirtioBalloon.MAX_RUNS, ramPages));
        }
        long[] runs = new long[nruns * 2];
        long prevEnd = 0;
        for (int i = 0; i < nruns; i++) {
            long first = in.getBe64();
            long pages = in.getBe64();
            if (pages <= 0 || first < prevEnd || first > Long.MAX_VALUE >>> BalloonConfig.PFN_SHIFT
                    || pages > ramPages) {
                throw new MigrationException(id + ": inflated run " + i + " (page " + first + ", " + pages
                        + " pages) is empty, overlaps or is out of order");
            }
            long gpa = first << BalloonConfig.PFN_SHIFT;
            long len = pages << BalloonConfig.PFN_SHIFT;
            if (!inOneRegion(gpa, len)) {
                throw new MigrationException(id + ": inflated run " + i + " [0x" + Long.toHexString(gpa) + ", +0x"
                        + Long.toHexString(len) + ") is not inside guest RAM");
            }
            prevEnd = first + pages;
            runs[2 * i] = first;
            runs[2 * i + 1] = pages;
        }
        return runs;
    }

    private boolean inOneRegion(long gpa, long len) {
        for (GuestRegion r : memory.regions()) {
            if (r.contains(gpa)) {
                return len <= r.size() - (gpa - r.gpaBase());
            }
        }
        return false;
    }

    /** Punches checked runs out of this machine's RAM: a loaded inflated set takes effect. */
    void discardRuns(long[] runs) {
        for (int i = 0; i < runs.length; i += 2) {
            memory.discard(new Gpa(runs[i] << BalloonConfig.PFN_SHIFT), runs[i + 1] << BalloonConfig.PFN_SHIFT);
        }
    }
}
