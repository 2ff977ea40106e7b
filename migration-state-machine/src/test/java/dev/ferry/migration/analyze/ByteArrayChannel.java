package dev.ferry.migration.analyze;

import java.nio.ByteBuffer;
import java.nio.channels.NonWritableChannelException;
import java.nio.channels.SeekableByteChannel;

/**
 * A read-only {@link SeekableByteChannel} over the first {@code length} bytes of an array, so a
 * test can analyze every prefix of a stream without writing thousands of files.
 */
public final class ByteArrayChannel implements SeekableByteChannel {
    private final byte[] data;
    private final int length;
    private long position;
    private boolean open = true;

    ByteArrayChannel(byte[] data, int length) {
        this.data = data;
        this.length = length;
    }

    public ByteArrayChannel(byte[] data) {
        this(data, data.length);
    }

    @Override
    public int read(ByteBuffer dst) {
        if (position >= length) {
            return -1;
        }
        int n = (int) Math.min(dst.remaining(), length - position);
        dst.put(data, (int) position, n);
        position += n;
        return n;
    }

    @Override
    public int write(ByteBuffer src) {
        throw new NonWritableChannelException();
    }

    @Override
    public long position() {
        return position;
    }

    @Override
    public SeekableByteChannel position(long newPosition) {
        position = newPosition;
        return this;
    }

    @Override
    public long size() {
        return length;
    }

    @Override
    public SeekableByteChannel truncate(long size) {
        throw new NonWritableChannelException();
    }

    @Override
    public boolean isOpen() {
        return open;
    }

    @Override
    public void close() {
        open = false;
    }
}
