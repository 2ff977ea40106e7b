package dev.ferry.core.memory;

/** The sink a {@link DirtyLogSource} reports into: one bitmap per guest memory region. */
public interface DirtyPages {
    /** The bitmap of {@code region}, to OR words into directly. */
    DirtyBitmap bitmap(GuestRegion region);

    /** Marks the pages covering {@code [gpa, gpa + length)}. */
    void mark(Gpa gpa, long length);
}
