package dev.ferry.core.migration;

/**
 * Hears the source migration's lifecycle; the rollback hook for devices that changed state for
 * migration (VFIO moves a device still in PRE_COPY back to RUNNING on FAILED/CANCELLED). Runs on
 * the migration thread. For FAILED or CANCELLED a notifier that could not roll its device back
 * throws: the message is logged and appended to the migration's {@code error-desc}, and the
 * remaining notifiers still run. For SETUP an exception vetoes the migration.
 */
@FunctionalInterface
public interface MigrationNotifier {
    void onMigrationEvent(MigrationEvent event) throws MigrationException;
}
