package dev.ferry.migration.ram;

/**
 * A dirty-log source could not report what it tracked (a vhost-user back-end lost mid-migration,
 * a device's DMA log gone): the migration cannot prove it sent every written page, so it fails
 * with the source's own words, not as an internal error.
 */
public final class DirtyLogFailure extends RuntimeException {
    private static final long serialVersionUID = 1L;

    DirtyLogFailure(String source, RuntimeException cause) {
        super(cause.getMessage() != null ? cause.getMessage() : "dirty log " + source + " failed: " + cause, cause);
    }
}
