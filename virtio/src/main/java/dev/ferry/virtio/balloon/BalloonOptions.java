package dev.ferry.virtio.balloon;

/**
 * A balloon's config options.
 *
 * @param freePageHint         offer FREE_PAGE_HINT (and its queue); hints follow RAM migration's syncs
 * @param stats                offer STATS_VQ (and its queue)
 * @param statsPollingSeconds  how often the device asks for fresh stats (QEMU's
 *                             {@code guest-stats-polling-interval}); 0: only the driver's first report
 * @param deflateOnOom         offer DEFLATE_ON_OOM: the guest may deflate on its own when short of memory
 * @param queueSize            every queue's maximum size, a power of two
 */
public record BalloonOptions(boolean freePageHint, boolean stats, int statsPollingSeconds, boolean deflateOnOom,
                             int queueSize) {
    public static final BalloonOptions DEFAULTS = new BalloonOptions(true, true, 0, false, 128);

    public BalloonOptions {
        if (statsPollingSeconds < 0) {
            throw new IllegalArgumentException("stats-polling-interval " + statsPollingSeconds + " is negative");
        }
        if (queueSize < 2 || queueSize > 1024 || Integer.bitCount(queueSize) != 1) {
            throw new IllegalArgumentException("queue-size must be a power of two from 2 to 1024, got " + queueSize);
        }
    }
}
