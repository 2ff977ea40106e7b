package dev.ferry.migration.transport;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.util.ReferenceCountUtil;

import java.io.IOException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The destination side of {@code file:PATH}: a read-only stream from an existing file, with no
 * return path. Each {@link #read} fills one pooled direct buffer of up to {@link #CHUNK_BYTES}
 * straight from the file ({@link FileChannel#read} into the buffer's memory, no heap copy) and
 * returns null at end of file.
 *
 * <p>Threads: one consumer thread reads; {@link #close} may come from any thread and makes a read
 * in progress fail with an {@link IOException} ({@link FileChannel} is interruptible, so
 * interrupting the consumer also closes the file).
 */
final class FileReadConnection implements MigrationConnection {
    /** Bytes per chunk returned by {@link #read}. */
    static final int CHUNK_BYTES = 256 * 1024;

    private final FileChannel file;
    private final String description;
    private final ByteBufAllocator alloc;
    private final AtomicBoolean closed = new AtomicBoolean();
    private boolean endOfFile; // consumer thread only

    FileReadConnection(FileChannel file, String description, ByteBufAllocator alloc) {
        this.file = file;
        this.description = description;
        this.alloc = alloc;
    }

    @Override
    public ByteBufAllocator alloc() {
        return alloc;
    }

    /** Always throws (and releases {@code buf}): this side of a file stream only reads. */
    @Override
    public void write(ByteBuf buf) throws IOException {
        ReferenceCountUtil.safeRelease(buf);
        throw readOnly();
    }

    @Override
    public void flush() throws IOException {
        throw readOnly();
    }

    @Override
    public void drain() throws IOException {
        throw readOnly();
    }

    /** Consumer thread: the next chunk of the file, or null at end of file. */
    @Override
    public ByteBuf read() throws IOException {
        if (closed.get()) {
            throw new IOException(description + ": connection closed");
        }
        if (endOfFile) {
            return null;
        }
        ByteBuf chunk = alloc.directBuffer(CHUNK_BYTES, CHUNK_BYTES);
        boolean handedOut = false;
        try {
            int n = chunk.writeBytes(file, CHUNK_BYTES);
            if (n < 0) {
                endOfFile = true;
                return null;
            }
            handedOut = true;
            return chunk;
        } catch (ClosedChannelException e) {
            throw new IOException(description + ": connection closed", e);
        } catch (IOException e) {
            throw new IOException(description + ": read failed: " + e.getMessage(), e);
        } finally {
            if (!handedOut) {
                chunk.release();
            }
        }
    }

    @Override
    public boolean peerGone() {
        return false; // a file has no peer
    }

    @Override
    public boolean hasReturnPath() {
        return false;
    }

    @Override
    public String description() {
        return description;
    }

    /** Any thread; idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            FileMigrationListener.closeQuietly(file, description);
        }
    }

    private IOException readOnly() {
        return new IOException(description + ": a file migration stream is read-only on the destination");
    }

    @Override
    public String toString() {
        return "FileReadConnection[" + description + "]";
    }
}
