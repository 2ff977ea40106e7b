package dev.ferry.migration.transport;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.util.ReferenceCountUtil;

import java.io.IOException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The source side of {@code file:PATH}: a write-only stream into a new or truncated file, with no
 * return path. Writes go straight to the kernel ({@link FileChannel} gathering writes from the
 * buffer's memory, no heap copy for direct buffers), so {@link #flush} and {@link #drain} have
 * nothing left to do. The data is not fsync'd; a snapshot is durable once the OS writes it back.
 *
 * <p>A new file is created with mode 0600: it holds guest memory. An existing file is truncated
 * and keeps its mode.
 *
 * <p>Threads: one producer thread writes; {@link #close} may come from any thread and makes a
 * write in progress fail with an {@link IOException} ({@link FileChannel} is interruptible, so
 * interrupting the producer also closes the file).
 */
final class FileWriteConnection implements MigrationConnection {
    private final FileChannel file;
    private final String description;
    private final ByteBufAllocator alloc;
    private final AtomicBoolean closed = new AtomicBoolean();

    private FileWriteConnection(FileChannel file, String description, ByteBufAllocator alloc) {
        this.file = file;
        this.description = description;
        this.alloc = alloc;
    }

    /** Caller thread: creates or truncates the file named by {@code target}. */
    static FileWriteConnection create(TransportUri target, ByteBufAllocator alloc) throws IOException {
        FileChannel file;
        try {
            file = FileChannel.open(target.path(), Set.of(StandardOpenOption.WRITE, StandardOpenOption.CREATE_NEW),
                    PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        } catch (FileAlreadyExistsException e) {
            file = openExisting(target);
        } catch (IOException e) {
            throw new IOException("cannot create " + target.text() + ": " + FileMigrationListener.reason(e), e);
        }
        return new FileWriteConnection(file, target.text(), alloc);
    }

    private static FileChannel openExisting(TransportUri target) throws IOException {
        try {
            return FileChannel.open(target.path(), StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
        } catch (IOException e) {
            throw new IOException("cannot open " + target.text() + " for writing: " + FileMigrationListener.reason(e), e);
        }
    }

    @Override
    public ByteBufAllocator alloc() {
        return alloc;
    }

    /** Producer thread: writes the whole buffer, then releases it (also on failure). */
    @Override
    public void write(ByteBuf buf) throws IOException {
        Objects.requireNonNull(buf, "buf");
        try {
            ensureOpen();
            while (buf.isReadable()) {
                buf.readBytes(file, buf.readableBytes());
            }
        } catch (ClosedChannelException e) {
            throw new IOException(description + ": connection closed", e);
        } catch (IOException e) {
            throw new IOException(description + ": write failed: " + e.getMessage(), e);
        } finally {
            ReferenceCountUtil.safeRelease(buf);
        }
    }

    @Override
    public void flush() throws IOException {
        ensureOpen();
    }

    @Override
    public void drain() throws IOException {
        ensureOpen();
    }

    /** Always throws: a file has no return path. */
    @Override
    public ByteBuf read() throws IOException {
        throw new IOException(description + ": a file migration stream is write-only; it has no return path");
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

    private void ensureOpen() throws IOException {
        if (closed.get()) {
            throw new IOException(description + ": connection closed");
        }
    }

    @Override
    public String toString() {
        return "FileWriteConnection[" + description + "]";
    }
}
