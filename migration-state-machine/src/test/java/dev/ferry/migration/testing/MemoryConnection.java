package dev.ferry.migration.testing;

import dev.ferry.migration.transport.MigrationConnection;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.UnpooledByteBufAllocator;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;

/**
 * A {@link MigrationConnection} in memory, with a file's rules: what the engine writes is
 * collected ({@link #writtenBytes()}), and reads serve a fixed byte array and then report the end
 * of the stream ({@code null}).
 *
 * <p>The read side hands out chunks of {@code chunkSize} bytes (the last one shorter) as direct,
 * unpooled Netty buffers that have a memory address, as a socket transport does, so values and
 * pages straddle chunk borders whenever the size is not a multiple of their width (1 and 7 are
 * the interesting sizes). To prove the reader honours {@code readerIndex}, chunk {@code k} carries
 * {@code k % 3} junk bytes (0xee) before its reader index. Every served chunk is remembered, so a
 * test can check the reader released each one ({@link #unreleasedChunks()}).
 *
 * <p>It also measures the heap the reading thread allocates between its first {@link #read()} and
 * {@link #close()} (the destination closes its connection on the incoming thread when it
 * finishes), so a hostile-stream test can prove that no length read from the stream sized an
 * allocation.
 *
 * <p>Threads: like a real connection, one writer thread, one reader thread, {@link #close()} from
 * any thread. Nothing here blocks.
 */
public final class MemoryConnection implements MigrationConnection {
    private static final ByteBufAllocator READ_ALLOC = new UnpooledByteBufAllocator(true, true);
    private static final byte JUNK = (byte) 0xee;

    private final String description;
    private final byte[] incoming;
    private final int chunkSize;
    private final boolean returnPath;
    private final ByteArrayOutputStream written = new ByteArrayOutputStream();
    private final List<ByteBuf> served = new ArrayList<>();
    private int readPos;
    private volatile boolean closed;
    private int writes;
    private int flushes;
    private int drains;
    private Thread reader;
    private long readerAllocatedAtFirstRead = -1;
    private long readerAllocatedAtClose = -1;

    /**
     * @param incoming   what {@link #read()} serves (empty for a connection only written to)
     * @param chunkSize  bytes per served chunk, at least 1
     * @param returnPath what {@link #hasReturnPath()} answers: false for a file, true for a socket
     */
    public MemoryConnection(String description, byte[] incoming, int chunkSize, boolean returnPath) {
        if (chunkSize < 1) {
            throw new IllegalArgumentException("chunk size must be at least 1, got " + chunkSize);
        }
        this.description = description;
        this.incoming = incoming.clone();
        this.chunkSize = chunkSize;
        this.returnPath = returnPath;
    }

    @Override
    public ByteBufAllocator alloc() {
        return PooledByteBufAllocator.DEFAULT;
    }

    @Override
    public synchronized void write(ByteBuf buf) throws IOException {
        try {
            if (closed) {
                throw new IOException(description + ": write on a closed connection");
            }
            buf.getBytes(buf.readerIndex(), written, buf.readableBytes());
            writes++;
        } finally {
            buf.release();
        }
    }

    @Override
    public synchronized void flush() throws IOException {
        if (closed) {
            throw new IOException(description + ": flush on a closed connection");
        }
        flushes++;
    }

    @Override
    public synchronized void drain() throws IOException {
        if (closed) {
            throw new IOException(description + ": drain on a closed connection");
        }
        drains++;
    }

    @Override
    public synchronized ByteBuf read() throws IOException {
        if (closed) {
            throw new IOException(description + ": read on a closed connection");
        }
        if (reader == null) {
            reader = Thread.currentThread();
            readerAllocatedAtFirstRead = currentThreadAllocatedBytes();
        }
        if (readPos >= incoming.length) {
            return null;
        }
        int n = Math.min(chunkSize, incoming.length - readPos);
        int junk = served.size() % 3;
        ByteBuf b = READ_ALLOC.directBuffer(junk + n, junk + n);
        if (!b.hasMemoryAddress()) {
            b.release();
            throw new IllegalStateException("Netty gives direct buffers without a memory address here (no Unsafe?); "
                    + "the engine's reader needs one");
        }
        for (int i = 0; i < junk; i++) {
            b.writeByte(JUNK);
        }
        b.writeBytes(incoming, readPos, n);
        b.readerIndex(junk);
        readPos += n;
        served.add(b);
        return b;
    }

    @Override
    public boolean peerGone() {
        return false; // an in-memory stream has no peer that could leave
    }

    @Override
    public boolean hasReturnPath() {
        return returnPath;
    }

    @Override
    public String description() {
        return description;
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (Thread.currentThread() == reader) {
            readerAllocatedAtClose = currentThreadAllocatedBytes();
        }
    }

    public boolean isClosed() {
        return closed;
    }

    /** Everything written so far, in order. */
    public synchronized byte[] writtenBytes() {
        return written.toByteArray();
    }

    /** Bytes served to the reader so far. */
    public synchronized int bytesServed() {
        return readPos;
    }

    public synchronized int chunksServed() {
        return served.size();
    }

    /** Served chunks the reader has not released (a leak once the reader is done). */
    public synchronized int unreleasedChunks() {
        int n = 0;
        for (ByteBuf b : served) {
            if (b.refCnt() > 0) {
                n++;
            }
        }
        return n;
    }

    public synchronized int writes() {
        return writes;
    }

    public synchronized int flushes() {
        return flushes;
    }

    public synchronized int drains() {
        return drains;
    }

    /**
     * Heap bytes the reading thread allocated from its first read until it closed this
     * connection, or -1 when that is unknown (the JVM cannot measure it, or the connection was
     * closed by another thread).
     */
    public synchronized long readerAllocatedBytes() {
        if (readerAllocatedAtFirstRead < 0 || readerAllocatedAtClose < 0) {
            return -1;
        }
        return readerAllocatedAtClose - readerAllocatedAtFirstRead;
    }

    private static long currentThreadAllocatedBytes() {
        if (ManagementFactory.getThreadMXBean() instanceof com.sun.management.ThreadMXBean t
                && t.isThreadAllocatedMemorySupported() && t.isThreadAllocatedMemoryEnabled()) {
            return t.getCurrentThreadAllocatedBytes();
        }
        return -1;
    }

    @Override
    public String toString() {
        return description;
    }
}
