package dev.ferry.core.migration;

/**
 * Hears RAM migration's precopy steps around each dirty-bitmap sync — QEMU's precopy notifier,
 * which virtio-balloon's free page hinting follows: stop taking hints before the sync (a hint
 * from before it could clear a page the sync just found written), ask for fresh hints after it,
 * end hinting at cleanup. Runs on the migration thread; a notifier must not block on the guest.
 */
@FunctionalInterface
public interface PrecopyNotifier {
    /** The steps, in QEMU's names. */
    enum Step {
        /** A dirty-bitmap sync is about to collect the logs. */
        BEFORE_BITMAP_SYNC,
        /** The sync finished; {@code vmStopped} tells whether it was the one in downtime. */
        AFTER_BITMAP_SYNC,
        /** RAM migration ended: completed, cancelled or failed. */
        CLEANUP
    }

    /**
     * @param vmStopped true when the guest no longer runs (the final sync in downtime, or cleanup
     *                  after completion): no further hints can help
     */
    void onPrecopy(Step step, boolean vmStopped);
}
