package dev.ferry.core.testing;

import dev.ferry.core.migration.SaveStream;
import dev.ferry.core.sys.NativeMemory;

import java.io.ByteArrayOutputStream;

/**
 * A {@link SaveStream} into a growing byte array, for tests of save handlers and
 * {@code VmStateDescription}s. Follows the engine's stream rules: big-endian, and each put keeps
 * only the low bits that fit its width (like Netty's {@code writeByte}/{@code writeShort} and
 * QEMU's {@code qemu_put_byte}).
 *
 * <p>The rate limit is a byte budget: {@link #rateLimitReached()} turns true once
 * {@link #bytesWritten()} reaches it, so iterate steps can be tested without a clock.
 * Not thread-safe (a save stream belongs to the migration thread).
 */
public final class ByteArraySaveStream implements SaveStream {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private long rateLimitBytes = Long.MAX_VALUE;

    /** Makes {@link #rateLimitReached()} true once {@code bytes} in total have been written. */
    public ByteArraySaveStream rateLimit(long bytes) {
        this.rateLimitBytes = bytes;
        return this;
    }

    @Override
    public void putU8(int v) {
        out.write(v);
    }

    @Override
    public void putBe16(int v) {
        out.write(v >>> 8);
        out.write(v);
    }

    @Override
    public void putBe32(int v) {
        putBe16(v >>> 16);
        putBe16(v);
    }

    @Override
    public void putBe64(long v) {
        putBe32((int) (v >>> 32));
        putBe32((int) v);
    }

    @Override
    public void putBytes(byte[] src, int offset, int length) {
        out.write(src, offset, length);
    }

    @Override
    public void putNative(long address, long length) {
        if (length < 0 || length > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("putNative of " + length + " bytes into a byte array");
        }
        byte[] b = new byte[(int) length];
        NativeMemory.copyToArray(address, b, 0, b.length);
        out.write(b, 0, b.length);
    }

    @Override
    public long bytesWritten() {
        return out.size();
    }

    @Override
    public boolean rateLimitReached() {
        return out.size() >= rateLimitBytes;
    }

    /** A copy of everything written so far. */
    public byte[] toByteArray() {
        return out.toByteArray();
    }

    /** A load stream over everything written so far. */
    public ByteArrayLoadStream toLoadStream() {
        return new ByteArrayLoadStream(out.toByteArray());
    }
}
