package dev.ferry.virtio.balloon;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/** What a balloon reports in {@code x-ferry-devices} and the demo. Written on the loop, read anywhere. */
public final class BalloonCounters {
    final AtomicLong inflatedPages = new AtomicLong();
    final AtomicLong deflatedPages = new AtomicLong();
    final AtomicLong refusedPfns = new AtomicLong();
    final AtomicLong hintBuffers = new AtomicLong();
    final AtomicLong hintedPagesCleared = new AtomicLong();
    final AtomicLong staleHints = new AtomicLong();
    final AtomicLong refusedHints = new AtomicLong();
    final AtomicLong hintRounds = new AtomicLong();
    final AtomicLong statsUpdates = new AtomicLong();

    /** Pages the driver inflated (each inflate of a page not already in the balloon). */
    public long inflatedPages() {
        return inflatedPages.get();
    }

    public long deflatedPages() {
        return deflatedPages.get();
    }

    /** PFNs outside guest RAM the driver put in an inflate or deflate buffer: skipped. */
    public long refusedPfns() {
        return refusedPfns.get();
    }

    /** Hint buffers taken while a round was started. */
    public long hintBuffers() {
        return hintBuffers.get();
    }

    /** Pages hints took out of a migration's pending set — not sent. */
    public long hintedPages() {
        return hintedPagesCleared.get();
    }

    public long hintBytesSaved() {
        return hintedPagesCleared.get() * BalloonConfig.PAGE;
    }

    /** Hint buffers and ids that came for no started round (stale or unknown ids): ignored. */
    public long staleHints() {
        return staleHints.get();
    }

    /** Hint buffers outside guest RAM (or across regions): refused. */
    public long refusedHints() {
        return refusedHints.get();
    }

    /** Rounds the driver started (its id matched the requested one). */
    public long hintRounds() {
        return hintRounds.get();
    }

    public long statsUpdates() {
        return statsUpdates.get();
    }

    Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("inflated-pages", inflatedPages());
        m.put("deflated-pages", deflatedPages());
        m.put("refused-pfns", refusedPfns());
        m.put("hint-rounds", hintRounds());
        m.put("hint-buffers", hintBuffers());
        m.put("hinted-pages", hintedPages());
        m.put("hint-bytes-saved", hintBytesSaved());
        m.put("stale-hints", staleHints());
        m.put("refused-hints", refusedHints());
        m.put("stats-updates", statsUpdates());
        return m;
    }
}
