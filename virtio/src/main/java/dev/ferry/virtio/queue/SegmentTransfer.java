package dev.ferry.virtio.queue;

/**
 * Moves bytes between one piece of a chain's guest buffers and somewhere else (a file, a
 * socket), so payloads go straight to or from guest RAM without an intermediate copy — e.g.
 * {@code (gpa, len, done) -> memory.readFromFile(fd, offset + done, gpa, len)}. A transfer into
 * guest RAM must go through {@link dev.ferry.core.memory.DeviceMemory} so the write is logged.
 */
@FunctionalInterface
public interface SegmentTransfer {
    /**
     * Transfers up to {@code length} bytes at {@code gpa}; {@code done} is how many bytes this
     * transfer has moved before this piece. Returns the bytes moved, 0 to {@code length}; fewer
     * than {@code length} ends the transfer (end of file, short write).
     */
    long transfer(long gpa, int length, long done);
}
