package dev.ferry.core.migration;

import java.io.IOException;

/**
 * What a save handler writes its section data into (QEMU's QEMUFile, output side). All integers
 * are big-endian. Implemented by the engine over a transport; buffers internally, so small puts
 * are cheap. Used on the migration thread only.
 */
public interface SaveStream {
    void putU8(int v) throws IOException;

    void putBe16(int v) throws IOException;

    void putBe32(int v) throws IOException;

    void putBe64(long v) throws IOException;

    void putBytes(byte[] src, int offset, int length) throws IOException;

    default void putBytes(byte[] src) throws IOException {
        putBytes(src, 0, src.length);
    }

    /** Writes {@code length} bytes of native memory (guest pages) without copying them onto the heap. */
    void putNative(long address, long length) throws IOException;

    /** Bytes written so far on this stream. */
    long bytesWritten();

    /**
     * True when the bandwidth budget of the current interval is spent: an iterate step stops
     * sending and returns (QEMU's {@code qemu_file_rate_limit}).
     */
    boolean rateLimitReached();

    /**
     * True when this migration uses switchover-ack (QEMU's {@code migrate_switchover_ack()}): the
     * source waits for the destination's approval before it stops the VM, so a handler that
     * {@linkplain LiveSaveHandler#switchoverAckNeeded() needs it} tells its peer when its
     * precopy-initial data is out (VFIO's INIT_DATA_SENT). False for streams outside a migration.
     */
    default boolean switchoverAck() {
        return false;
    }
}
