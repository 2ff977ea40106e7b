package dev.ferry.virtio.queue;

import dev.ferry.core.memory.DeviceMemory;

import java.util.Objects;

/**
 * Writes a chain's device-writable bytes in order, across descriptor boundaries, through
 * {@link DeviceMemory} so every byte lands in the dirty log. {@link #written()} is the length to
 * report when pushing the chain.
 *
 * <p>Not thread-safe: created and used by the thread that completes the request.
 */
public final class ChainWriter {
    private final DescriptorChain chain;
    private final DeviceMemory memory;
    private final SegmentCursor cursor;

    ChainWriter(DescriptorChain chain, DeviceMemory memory) {
        this.chain = chain;
        this.memory = memory;
        this.cursor = new SegmentCursor(chain.writable(), chain.writableBytes());
    }

    /** All device-writable bytes of the chain. */
    public long capacity() {
        return cursor.total();
    }

    public long remaining() {
        return cursor.remaining();
    }

    /** Bytes written so far: the used element's {@code len}. */
    public long written() {
        return cursor.position();
    }

    /** Copies up to {@code length} bytes from {@code src}; returns how many fitted. */
    public int write(byte[] src, int offset, int length) {
        Objects.checkFromIndexSize(offset, length, src.length);
        return (int) cursor.advance(length, (gpa, len, done) -> {
            memory.write(gpa, src, offset + (int) done, len);
            return len;
        });
    }

    /** Copies exactly {@code length} bytes, or throws (writing nothing) if the room is smaller. */
    public void writeFully(byte[] src, int offset, int length) {
        need(length);
        write(src, offset, length);
    }

    public void writeFully(byte[] src) {
        writeFully(src, 0, src.length);
    }

    public void writeU8(int v) {
        need(1);
        cursor.advance(1, (gpa, len, done) -> {
            memory.writeU8(gpa, v);
            return 1;
        });
    }

    /**
     * Hands the next {@code n} writable bytes (fewer at the end of the chain) to {@code op} piece
     * by piece, e.g. to {@code pread} a disk image straight into guest RAM; {@code op} must write
     * through {@link DeviceMemory}. Returns bytes moved.
     */
    public long transferFrom(long n, SegmentTransfer op) {
        return cursor.advance(n, op);
    }

    private void need(long n) {
        if (n < 0) {
            throw new IllegalArgumentException("negative length " + n);
        }
        if (n > cursor.remaining()) {
            throw new VirtqueueError(chain.queueName(), "chain head " + chain.head() + " has " + cursor.remaining()
                    + " device-writable bytes left at offset " + cursor.position() + ", " + n + " needed");
        }
    }
}
