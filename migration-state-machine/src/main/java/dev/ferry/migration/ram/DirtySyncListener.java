package dev.ferry.migration.ram;

/**
 * Told after every dirty-bitmap sync of RAM migration (the engine emits MIGRATION_PASS and runs
 * auto-converge from here). Migration thread.
 */
@FunctionalInterface
public interface DirtySyncListener {
    /**
     * @param syncCount  dirty-sync-count after this sync
     * @param newlyDirty pages this sync found dirty that were not already pending
     */
    void afterSync(long syncCount, long newlyDirty);
}
