package dev.ferry.migration.analyze;

import java.util.ArrayList;
import java.util.List;

/**
 * What the stream sent for one RAM block: ZERO and PAGE records counted as QEMU's
 * {@code query-migrate} counts them ("duplicate" and "normal": a page sent twice counts twice),
 * and — when tracking is on — which pages were sent at all and whether each one's last record
 * was a PAGE. Not thread-safe.
 */
final class RamBlockTally {
    private final String name;
    private final long length;
    private final int pageSize;
    private final PageBitmap sent;
    private final PageBitmap lastNormal;
    private long zeroPages;
    private long normalPages;

    /** @param track whether to keep the per-page bitmaps (distinct pages, page runs) */
    RamBlockTally(String name, long length, int pageSize, boolean track) {
        this.name = name;
        this.length = length;
        this.pageSize = pageSize;
        long pages = (length + pageSize - 1) / pageSize;
        this.sent = track ? new PageBitmap(pages) : null;
        this.lastNormal = track ? new PageBitmap(pages) : null;
    }

    String name() {
        return name;
    }

    long length() {
        return length;
    }

    void zero(long offset) {
        zeroPages++;
        if (sent != null) {
            long p = offset / pageSize;
            sent.set(p);
            lastNormal.clear(p);
        }
    }

    void normal(long offset) {
        normalPages++;
        if (sent != null) {
            long p = offset / pageSize;
            sent.set(p);
            lastNormal.set(p);
        }
    }

    /**
     * The block's summary; with {@code maxRuns} > 0 and tracking on, also its page runs (at most
     * {@code maxRuns}, the rest dropped and flagged).
     */
    RamBlockSummary summary(int maxRuns) {
        List<PageRun> runs = new ArrayList<>();
        boolean cut = false;
        if (maxRuns > 0 && sent != null) {
            long start = 0;
            PageRun.Kind kind = null;
            for (long p = 0; p < sent.pages(); p++) {
                PageRun.Kind k = !sent.get(p) ? PageRun.Kind.NOT_SENT
                        : lastNormal.get(p) ? PageRun.Kind.NORMAL : PageRun.Kind.ZERO;
                if (k != kind) {
                    if (kind != null) {
                        if (runs.size() == maxRuns) {
                            cut = true;
                            break;
                        }
                        runs.add(new PageRun(start, p - start, kind));
                    }
                    kind = k;
                    start = p;
                }
            }
            if (kind != null && !cut) {
                if (runs.size() == maxRuns) {
                    cut = true;
                } else {
                    runs.add(new PageRun(start, sent.pages() - start, kind));
                }
            }
        }
        return new RamBlockSummary(name, length, zeroPages, normalPages, sent == null ? -1 : sent.count(),
                List.copyOf(runs), cut);
    }
}
