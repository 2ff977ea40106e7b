package dev.ferry.core.migration;

/**
 * The RAM migration's pending set as a device may shrink it: guest pages the guest said are free
 * need not be sent (QEMU's {@code qemu_guest_free_page_hint}). Clearing only takes pages out of
 * what the migration still has to send; a guest write to such a page after the hint is in the
 * dirty log and is sent after the next sync. Installed by RAM migration for the time it runs
 * ({@link MigrationRegistry#guestFreePageHint}); called from a device's event loop.
 */
@FunctionalInterface
public interface FreePageHints {
    /**
     * Drops the whole pages of {@code [gpa, gpa + length)} from the pending set; partial pages at
     * either end are kept. Returns the number of pages that were pending and are no more.
     *
     * @throws IllegalArgumentException when the range is not inside guest RAM
     */
    long clearPending(long gpa, long length);
}
