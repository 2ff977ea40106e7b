package dev.ferry.core.migration;

/** What migration notifiers hear (QEMU's MIG_EVENT_PRECOPY_*). */
public enum MigrationEvent {
    /** The migration entered setup on the source. */
    SETUP,
    /** The destination confirmed it runs; the source VM stays stopped. */
    COMPLETED,
    /** The migration failed; the source VM runs again. */
    FAILED,
    /** The user cancelled; the source VM runs again. */
    CANCELLED
}
