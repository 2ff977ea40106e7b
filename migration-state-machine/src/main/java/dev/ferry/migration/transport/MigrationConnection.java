package dev.ferry.migration.transport;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.io.IOException;

/**
 * One migration channel as the engine sees it: a blocking byte pipe in each direction over a
 * Netty channel (TCP, UNIX) or a file. The forward direction carries the QEVM stream from source
 * to destination; the reverse direction, where the transport has one, is the return path.
 *
 * <p>Threads: {@link #write} and {@link #flush} are called by one producer thread (the source's
 * migration thread, or the destination's return-path writer), {@link #read} by one consumer
 * thread. {@link #close()} may be called from any thread and unblocks both with an
 * {@link IOException}.
 */
public interface MigrationConnection extends AutoCloseable {
    /** A direct (off-heap) allocator for buffers passed to {@link #write}. */
    ByteBufAllocator alloc();

    /**
     * Queues {@code buf} for sending and takes ownership of it (it is released once written or on
     * failure). Blocks while the transport's outbound buffer is above its high-water mark, so a
     * fast producer cannot exhaust memory. Throws if the connection failed or was closed.
     */
    void write(ByteBuf buf) throws IOException;

    /** Pushes queued buffers to the kernel; returns without waiting for them to be sent. */
    void flush() throws IOException;

    /** Waits until everything written so far has been handed to the kernel (or failed). */
    void drain() throws IOException;

    /**
     * Returns the next chunk of incoming bytes (ownership passes to the caller, who releases it),
     * blocking until some arrive; {@code null} at a clean end of stream. Throws if the connection
     * failed or was closed. The transport stops reading from the socket while unconsumed chunks
     * exceed a bound (backpressure), so a fast sender cannot exhaust the receiver's memory.
     */
    ByteBuf read() throws IOException;

    /**
     * True when the peer has hung up or the connection failed (a socket's peer closed it); false
     * while it may still be talking, and always false for files, which have no peer.
     */
    boolean peerGone();

    /** True when the reverse direction exists (sockets); false for files. */
    boolean hasReturnPath();

    /** Describes the peer for messages, e.g. {@code "tcp:127.0.0.1:4444"}. */
    String description();

    /**
     * Takes the socket out of the transport for direct I/O from and to native memory (a multifd
     * channel's packets), once everything written so far reached the kernel; bytes already
     * received come with it. This connection is closed afterwards. Null when the transport cannot
     * hand its socket over (TLS, which must encrypt every byte; NIO; files): keep using
     * {@link #write} and {@link #read} then.
     */
    default DetachedSocket detach() throws IOException {
        return null;
    }

    /** Closes the connection (idempotent); pending and future reads and writes fail. */
    @Override
    void close();
}
