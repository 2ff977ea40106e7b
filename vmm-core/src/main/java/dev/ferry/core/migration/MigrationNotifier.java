package dev.ferry.core.migration;

/**
 * Hears the source migration's lifecycle; the rollback hook for devices that changed state for
 * migration (VFIO moves a device still in PRE_COPY back to RUNNING on FAILED/CANCELLED). Runs on
 * the migration thread; must not throw for FAILED or CANCELLED (exceptions are logged and the
 * remaining notifiers still run).
 */
@FunctionalInterface
public interface MigrationNotifier {
    void onMigrationEvent(MigrationEvent event) throws MigrationException;
}
