package dev.ferry.core.testing;

import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.sys.NativeMemory;

import java.io.EOFException;
import java.util.Arrays;

/**
 * A {@link LoadStream} over a byte array, for tests of load handlers and
 * {@code VmStateDescription}s. Follows the engine's stream rules: big-endian, unsigned
 * {@link #getU8()}/{@link #getBe16()}, and reading (or peeking, or skipping) past the end is an
 * {@link EOFException} that consumes nothing and says where the stream ended.
 * Not thread-safe (a load stream belongs to the incoming thread).
 */
public final class ByteArrayLoadStream implements LoadStream {
    private final byte[] data;
    private int pos;

    public ByteArrayLoadStream(byte[] data) {
        this.data = data.clone();
    }

    private int need(long n) throws EOFException {
        if (n < 0) {
            throw new IllegalArgumentException("negative length " + n);
        }
        if (n > data.length - pos) {
            throw new EOFException("stream ended: need " + n + " bytes at offset " + pos + ", " + (data.length - pos)
                    + " left of " + data.length);
        }
        int at = pos;
        pos += (int) n;
        return at;
    }

    @Override
    public int getU8() throws EOFException {
        return data[need(1)] & 0xff;
    }

    @Override
    public int peekU8() throws EOFException {
        if (pos >= data.length) {
            throw new EOFException("stream ended: peek at offset " + pos + " of " + data.length);
        }
        return data[pos] & 0xff;
    }

    @Override
    public int getBe16() throws EOFException {
        int at = need(2);
        return (data[at] & 0xff) << 8 | (data[at + 1] & 0xff);
    }

    @Override
    public int getBe32() throws EOFException {
        int at = need(4);
        return (data[at] & 0xff) << 24 | (data[at + 1] & 0xff) << 16 | (data[at + 2] & 0xff) << 8
                | (data[at + 3] & 0xff);
    }

    @Override
    public long getBe64() throws EOFException {
        need(8);
        pos -= 8;
        return (long) getBe32() << 32 | (getBe32() & 0xffffffffL);
    }

    @Override
    public void getBytes(byte[] dst, int offset, int length) throws EOFException {
        java.util.Objects.checkFromIndexSize(offset, length, dst.length);
        System.arraycopy(data, need(length), dst, offset, length);
    }

    @Override
    public void getNative(long address, long length) throws EOFException {
        int at = need(length);
        NativeMemory.copyFromArray(data, at, address, (int) length);
    }

    @Override
    public void skip(long length) throws EOFException {
        need(length);
    }

    @Override
    public long bytesRead() {
        return pos;
    }

    /** Bytes not read yet. */
    public int remaining() {
        return data.length - pos;
    }

    /** The unread rest, without consuming it. */
    public byte[] rest() {
        return Arrays.copyOfRange(data, pos, data.length);
    }
}
