package dev.ferry.migration.transport;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sockets;
import dev.ferry.core.sys.Sys;
import io.netty.buffer.ByteBuf;

import java.io.EOFException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.ArrayDeque;
import java.util.List;

/**
 * A stream socket taken out of its transport ({@link MigrationConnection#detach}) so that one
 * thread moves bytes between it and native memory directly: a gathered sendmsg(2) straight from
 * guest pages, a scattered recvmsg(2) straight into them — no copy through transport buffers and
 * one system call per {@link IoVector}, not per page. Bytes the transport had already received
 * come first, copied from its buffers.
 *
 * <p>The descriptor is a close-on-exec duplicate this object owns; the transport's own descriptor
 * is closed at detach. The socket stays non-blocking: a call that would block polls for up to
 * {@value #POLL_MS} ms at a time and re-checks {@link #shutdown}.
 *
 * <p>Threads: {@link #write} and {@link #read} on the one owning I/O thread; {@link #shutdown} on
 * any thread (it wakes the I/O thread, which then fails with "connection closed"); {@link #close}
 * once the I/O thread is done with it.
 */
public final class DetachedSocket implements AutoCloseable {
    static final int POLL_MS = 100;
    private final Fd fd;
    private final String description;
    private final ArrayDeque<ByteBuf> leftover;
    /** Null when the peer had ended the stream (cleanly) before the detach. */
    private final Throwable failedBefore;
    private final long pollfd;
    private volatile boolean shut;
    private boolean closed;
    private long bytesRead;
    private long bytesWritten;

    /**
     * @param fd          the owned socket, or null when the transport had already seen the
     *                    stream end: then the stream is {@code leftover} and nothing more
     * @param failedBefore the transport's failure, reported after the leftover bytes (fd null)
     */
    DetachedSocket(Fd fd, String description, List<ByteBuf> leftover, Throwable failedBefore) {
        this.fd = fd;
        this.description = description;
        this.leftover = new ArrayDeque<>(leftover);
        this.failedBefore = failedBefore;
        this.pollfd = NativeMemory.allocate(8);
    }

    /** Puts bytes read before the transport's queue (a reader's current buffer) in front; takes ownership. */
    public void prepend(ByteBuf buf) {
        if (buf.isReadable()) {
            leftover.addFirst(buf);
        } else {
            buf.release();
        }
    }

    public String description() {
        return description;
    }

    public long bytesRead() {
        return bytesRead;
    }

    public long bytesWritten() {
        return bytesWritten;
    }

    /** I/O thread: sends every byte {@code v} holds, waiting while the socket buffer is full. */
    public void write(IoVector v) throws IOException {
        if (fd == null) {
            throw new IOException(description + ": connection closed by peer");
        }
        while (v.remaining() > 0) {
            ensureNotShut();
            long n;
            try {
                n = Sockets.sendmsgNonBlocking(fd, v.msghdr());
            } catch (NativeCallException | IllegalStateException e) {
                throw failure(e);
            }
            if (n > 0) {
                v.advance(n);
                bytesWritten += n;
            } else {
                await(Linux.POLLOUT);
            }
        }
    }

    /**
     * I/O thread: fills every range of {@code v}. Returns false when the stream ended cleanly
     * before its first byte; an end after some bytes is an {@link EOFException}.
     */
    public boolean read(IoVector v) throws IOException {
        long wanted = v.remaining();
        while (v.remaining() > 0 && !leftover.isEmpty()) {
            ByteBuf b = leftover.peekFirst();
            if (!b.hasMemoryAddress()) {
                throw new IllegalStateException("transport delivered a buffer without a memory address");
            }
            int n = (int) Math.min(b.readableBytes(), v.remaining());
            v.fillFrom(b.memoryAddress() + b.readerIndex(), n);
            b.skipBytes(n);
            bytesRead += n;
            if (!b.isReadable()) {
                leftover.pollFirst().release();
            }
        }
        while (v.remaining() > 0) {
            ensureNotShut();
            if (fd == null) {
                if (failedBefore != null) {
                    throw new IOException(description + ": connection failed: "
                            + NettyMigrationConnection.describe(failedBefore), failedBefore);
                }
                return ended(v, wanted);
            }
            long n;
            try {
                n = Sockets.recvmsgNonBlocking(fd, v.msghdr());
            } catch (NativeCallException | IllegalStateException e) {
                throw failure(e);
            }
            if (n > 0) {
                v.advance(n);
                bytesRead += n;
            } else if (n == 0) {
                return ended(v, wanted);
            } else {
                await(Linux.POLLIN);
            }
        }
        return true;
    }

    private boolean ended(IoVector v, long wanted) throws EOFException {
        if (v.remaining() == wanted) {
            return false;
        }
        throw new EOFException(description + ": the stream ended after " + bytesRead + " bytes, "
                + v.remaining() + " bytes short of a " + wanted + "-byte read");
    }

    private void await(short events) throws IOException {
        if (Thread.interrupted()) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException(description + ": interrupted");
        }
        NativeMemory.putInt(pollfd, fd.get());
        NativeMemory.putShort(pollfd + 4, events);
        NativeMemory.putShort(pollfd + 6, (short) 0);
        try {
            Sys.poll(pollfd, 1, POLL_MS);
        } catch (NativeCallException e) {
            throw failure(e);
        }
    }

    private void ensureNotShut() throws IOException {
        if (shut) {
            throw new IOException(description + ": connection closed");
        }
    }

    private IOException failure(RuntimeException e) throws IOException {
        ensureNotShut(); // a failure caused by our own shutdown reads as what it is
        String why = e.getMessage();
        int colon = why == null ? -1 : why.lastIndexOf("): ");
        return new IOException(description + ": connection failed: " + (colon < 0 ? why : why.substring(colon + 3)), e);
    }

    /**
     * Any thread: ends the connection in both directions (the peer sees its end, the I/O thread
     * wakes within {@value #POLL_MS} ms and fails). Idempotent; safe against {@link #close}.
     */
    public void shutdown() {
        shut = true;
        synchronized (this) {
            if (!closed && fd != null) {
                Sockets.shutdown(fd);
            }
        }
    }

    /** Once the I/O thread is done: closes the descriptor and releases leftover buffers. Idempotent. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            shut = true;
            if (fd != null) {
                fd.close();
            }
        }
        NativeMemory.free(pollfd);
        ByteBuf b;
        while ((b = leftover.pollFirst()) != null) {
            b.release();
        }
    }

    @Override
    public String toString() {
        return "DetachedSocket[" + description + "]";
    }
}
