package dev.ferry.core.memory;

/**
 * Sees every write made through {@link GuestMemory} (and so through {@link DeviceMemory}) while it
 * is installed ({@link GuestMemory#observeWrites}): a vhost-user back-end sets the bits of the
 * front-end's shared dirty log from here. Called on the writing thread (a device's event loop or
 * one of its I/O threads) right after the bytes are stored, so a write is observed before the
 * used index that publishes it; must not allocate, block, or write guest memory itself.
 */
@FunctionalInterface
public interface WriteObserver {
    /** {@code [gpa, gpa + length)} was written; the range lies inside one region. */
    void written(long gpa, long length);
}
