package dev.ferry.migration.stream;

import dev.ferry.core.migration.SaveStream;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.migration.transport.MigrationConnection;
import io.netty.buffer.ByteBuf;

import java.io.IOException;

/**
 * The source's output stream: fills off-heap chunks from the connection's allocator and hands
 * each full chunk to the transport. Guest pages are copied native-to-native into the chunk
 * ({@link #putNative}); nothing touches the Java heap per page and nothing is allocated per page
 * (one pooled chunk per {@value #CHUNK_SIZE} bytes). Migration thread only.
 */
public final class ChannelSaveStream implements SaveStream, AutoCloseable, java.io.Flushable {
    public static final int CHUNK_SIZE = 256 * 1024;
    /** Flushes up to this size are copied out of the chunk, which stays for reuse. */
    static final int SMALL_FLUSH = 8 * 1024;
    private final MigrationConnection connection;
    private final BandwidthLimiter limiter;
    private ByteBuf chunk;
    private long written;
    private volatile boolean switchoverAck;

    public ChannelSaveStream(MigrationConnection connection, BandwidthLimiter limiter) {
        this.connection = connection;
        this.limiter = limiter;
    }

    private ByteBuf room(int n) throws IOException {
        if (chunk != null && chunk.writableBytes() >= n) {
            return chunk;
        }
        sendChunk();
        if (chunk != null && chunk.writableBytes() >= n) {
            return chunk;
        }
        chunk = connection.alloc().directBuffer(CHUNK_SIZE, CHUNK_SIZE);
        if (!chunk.hasMemoryAddress()) {
            chunk.release();
            chunk = null;
            throw new IllegalStateException("transport allocator gives buffers without a memory address");
        }
        return chunk;
    }

    /**
     * Hands the chunk's bytes to the transport. A chunk flushed with little in it (an iteration
     * that had almost nothing to send) is copied into a buffer of its size and kept for reuse:
     * the transport's backpressure counts the bytes queued, not the buffers' capacity, so
     * handing over a 256 KiB chunk per tiny flush could queue gigabytes of mostly empty buffers
     * while the migration thread spins waiting for switchover.
     */
    private void sendChunk() throws IOException {
        ByteBuf c = chunk;
        if (c == null || !c.isReadable()) {
            return;
        }
        int n = c.readableBytes();
        if (n <= SMALL_FLUSH) {
            ByteBuf small = connection.alloc().directBuffer(n, n);
            small.writeBytes(c);
            c.clear();
            connection.write(small);
            return;
        }
        chunk = null;
        connection.write(c);
    }

    private void count(long n) {
        written += n;
        limiter.account(n);
    }

    @Override
    public void putU8(int v) throws IOException {
        room(1).writeByte(v);
        count(1);
    }

    @Override
    public void putBe16(int v) throws IOException {
        room(2).writeShort(v);
        count(2);
    }

    @Override
    public void putBe32(int v) throws IOException {
        room(4).writeInt(v);
        count(4);
    }

    @Override
    public void putBe64(long v) throws IOException {
        room(8).writeLong(v);
        count(8);
    }

    @Override
    public void putBytes(byte[] src, int offset, int length) throws IOException {
        while (length > 0) {
            ByteBuf c = room(1);
            int n = Math.min(length, c.writableBytes());
            c.writeBytes(src, offset, n);
            offset += n;
            length -= n;
            count(n);
        }
    }

    @Override
    public void putNative(long address, long length) throws IOException {
        while (length > 0) {
            ByteBuf c = room(1);
            int n = (int) Math.min(length, c.writableBytes());
            NativeMemory.copy(address, c.memoryAddress() + c.writerIndex(), n);
            c.writerIndex(c.writerIndex() + n);
            address += n;
            length -= n;
            count(n);
        }
    }

    @Override
    public long bytesWritten() {
        return written;
    }

    @Override
    public boolean rateLimitReached() {
        return limiter.limitReached();
    }

    @Override
    public boolean switchoverAck() {
        return switchoverAck;
    }

    /** Whether the migration writing this stream waits for the destination's switchover-ack. */
    public void switchoverAck(boolean v) {
        this.switchoverAck = v;
    }

    public BandwidthLimiter limiter() {
        return limiter;
    }

    /** Sends the partly filled chunk and flushes the transport. */
    @Override
    public void flush() throws IOException {
        sendChunk();
        connection.flush();
    }

    /** Flushes and waits until the kernel has everything. */
    public void drain() throws IOException {
        flush();
        connection.drain();
    }

    /** Releases an unsent chunk; does not close the connection. */
    @Override
    public void close() {
        if (chunk != null) {
            chunk.release();
            chunk = null;
        }
    }
}
