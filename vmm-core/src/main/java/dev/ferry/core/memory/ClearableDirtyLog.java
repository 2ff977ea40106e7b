package dev.ferry.core.memory;

/**
 * A {@link DirtyLogSource} whose {@code sync} only reports: pages stay unprotected (their writes
 * unseen) until the migration clears them, chunk by chunk, just before it sends the chunk's
 * pages — KVM's manual dirty-log protection, as QEMU drives it. This keeps the window between
 * "the log says dirty" and "the page is sent" short and spreads write-protection over the pass.
 *
 * <p>{@link #clear} must re-arm tracking for exactly the pages the last {@code sync} reported in
 * the range — never for pages dirtied since, which must stay reported. Migration thread only.
 */
public interface ClearableDirtyLog extends DirtyLogSource {
    /** Re-arms tracking for {@code [firstPage, firstPage + pages)} of {@code region}; {@code firstPage} is a multiple of 64. */
    void clear(GuestRegion region, long firstPage, long pages);
}
