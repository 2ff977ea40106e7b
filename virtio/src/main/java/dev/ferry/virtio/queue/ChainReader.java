package dev.ferry.virtio.queue;

import dev.ferry.core.memory.DeviceMemory;

import java.util.Objects;

/**
 * Reads a chain's device-readable bytes in order, across descriptor boundaries: a request
 * header that straddles two buffers reads as one. Little-endian helpers for header fields.
 *
 * <p>Not thread-safe: created and used by the thread that handles the request (the device's
 * event loop, or an I/O worker it hands the request to).
 */
public final class ChainReader {
    private final DescriptorChain chain;
    private final DeviceMemory memory;
    private final SegmentCursor cursor;
    private final byte[] scratch = new byte[8];

    ChainReader(DescriptorChain chain, DeviceMemory memory) {
        this.chain = chain;
        this.memory = memory;
        this.cursor = new SegmentCursor(chain.readable(), chain.readableBytes());
    }

    /** Bytes read or skipped so far. */
    public long position() {
        return cursor.position();
    }

    public long remaining() {
        return cursor.remaining();
    }

    /** Copies up to {@code length} bytes into {@code dst}; returns how many (0 at the end). */
    public int read(byte[] dst, int offset, int length) {
        Objects.checkFromIndexSize(offset, length, dst.length);
        return (int) cursor.advance(length, (gpa, len, done) -> {
            memory.read(gpa, dst, offset + (int) done, len);
            return len;
        });
    }

    /** Copies exactly {@code length} bytes, or throws if the driver's buffers hold fewer. */
    public void readFully(byte[] dst, int offset, int length) {
        need(length);
        read(dst, offset, length);
    }

    public void readFully(byte[] dst) {
        readFully(dst, 0, dst.length);
    }

    public void skip(long n) {
        need(n);
        cursor.advance(n, (gpa, len, done) -> len);
    }

    public int readU8() {
        readFully(scratch, 0, 1);
        return scratch[0] & 0xff;
    }

    public int readU16() {
        readFully(scratch, 0, 2);
        return (scratch[0] & 0xff) | (scratch[1] & 0xff) << 8;
    }

    public int readU32() {
        readFully(scratch, 0, 4);
        return (scratch[0] & 0xff) | (scratch[1] & 0xff) << 8 | (scratch[2] & 0xff) << 16 | (scratch[3] & 0xff) << 24;
    }

    public long readU64() {
        readFully(scratch, 0, 8);
        long v = 0;
        for (int i = 7; i >= 0; i--) {
            v = v << 8 | (scratch[i] & 0xff);
        }
        return v;
    }

    /**
     * Hands the next {@code n} readable bytes (fewer at the end of the chain) to {@code op} piece
     * by piece, e.g. to {@code pwrite} them from guest RAM to a disk image. Returns bytes moved.
     */
    public long transferTo(long n, SegmentTransfer op) {
        return cursor.advance(n, op);
    }

    private void need(long n) {
        if (n < 0) {
            throw new IllegalArgumentException("negative length " + n);
        }
        if (n > cursor.remaining()) {
            throw new VirtqueueError(chain.queueName(), "chain head " + chain.head() + " has " + cursor.remaining()
                    + " device-readable bytes left at offset " + cursor.position() + ", " + n + " needed");
        }
    }
}
