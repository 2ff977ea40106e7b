package dev.ferry.migration.transport;

import io.netty.buffer.ByteBuf;

import java.io.IOException;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * A deterministic byte stream for integrity checks: the byte at offset {@code i} mixes bits from
 * every byte of {@code i + seed}, so a lost, duplicated or reordered chunk shows up at its offset.
 */
final class StreamPattern {
    private final long seed;

    StreamPattern(long seed) {
        this.seed = seed;
    }

    byte at(long offset) {
        long x = offset + seed;
        return (byte) (x ^ (x >>> 8) ^ (x >>> 16) ^ (x >>> 24) ^ (x >>> 32));
    }

    /** Producer: writes {@code total} bytes in {@code chunk}-sized pooled buffers, then drains. */
    void send(MigrationConnection connection, long total, int chunk) throws IOException {
        long offset = 0;
        byte[] scratch = new byte[chunk];
        while (offset < total) {
            int length = (int) Math.min(chunk, total - offset);
            for (int i = 0; i < length; i++) {
                scratch[i] = at(offset + i);
            }
            // One bulk call per buffer: under PARANOID leak detection every buffer access records a stack trace.
            ByteBuf buf = connection.alloc().directBuffer(length, length).writeBytes(scratch, 0, length);
            connection.write(buf);
            offset += length;
        }
        connection.flush();
        connection.drain();
    }

    /** Consumer: reads and checks exactly {@code total} bytes (a chunk may not straddle the end). */
    void receive(MigrationConnection connection, long total) throws IOException {
        long offset = 0;
        byte[] scratch = new byte[256 * 1024];
        while (offset < total) {
            ByteBuf chunk = connection.read();
            assertNotNull(chunk, "end of stream after " + offset + " of " + total + " bytes");
            try {
                offset = check(chunk, offset, scratch);
            } finally {
                chunk.release();
            }
        }
        assertEquals(total, offset, "bytes received");
    }

    /** Consumer: reads and checks everything up to end of stream; returns the byte count. */
    long receiveToEnd(MigrationConnection connection) throws IOException {
        long offset = 0;
        byte[] scratch = new byte[256 * 1024];
        for (ByteBuf chunk; (chunk = connection.read()) != null; ) {
            try {
                offset = check(chunk, offset, scratch);
            } finally {
                chunk.release();
            }
        }
        return offset;
    }

    private long check(ByteBuf chunk, long offset, byte[] scratch) {
        int index = chunk.readerIndex();
        int left = chunk.readableBytes();
        while (left > 0) {
            int n = Math.min(left, scratch.length);
            chunk.getBytes(index, scratch, 0, n);
            for (int i = 0; i < n; i++) {
                if (scratch[i] != at(offset + i)) {
                    fail("stream corrupt at offset " + (offset + i) + ": expected " + at(offset + i) + ", got " + scratch[i]);
                }
            }
            offset += n;
            index += n;
            left -= n;
        }
        return offset;
    }
}
