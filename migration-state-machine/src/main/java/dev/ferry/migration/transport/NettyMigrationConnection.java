package dev.ferry.migration.transport;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.util.ReferenceCountUtil;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A {@link MigrationConnection} over a connected Netty stream channel (TCP or UNIX).
 *
 * <p>Outbound: {@link #write} hands the buffer to Netty without copying and returns while the
 * channel's outbound buffer (including writes still travelling to the event loop) is below its
 * high-water mark; above it the producer flushes and parks until Netty reports the channel
 * writable again (below the low-water mark). Buffers are written with the void promise, so the
 * hot path allocates no future; a failed write surfaces through {@code exceptionCaught} and fails
 * the next call. {@link #drain} writes an empty marker buffer with a real promise: Netty completes
 * outbound entries in order, so the marker completes once everything before it reached the kernel.
 *
 * <p>Inbound: received chunks go to a {@link ReceiveQueue}, which switches auto-read off while it
 * holds too much.
 *
 * <p>Threads: the producer thread calls {@link #write}, {@link #flush}, {@link #drain}; the consumer
 * thread calls {@link #read}; {@link #close} may come from any thread, including the event loop.
 * None of these blocks the event loop: the {@link Events} handler only queues and signals.
 */
final class NettyMigrationConnection implements MigrationConnection {
    /** How long {@link #close} waits for the channel (and its descriptor) to be closed. */
    private static final long CLOSE_WAIT_SECONDS = 10;

    private final Channel channel;
    private final String description;
    private final ReceiveQueue received;
    private final AtomicBoolean closed = new AtomicBoolean();
    private final ReentrantLock writerLock = new ReentrantLock();
    private final Condition writabilityChanged = writerLock.newCondition();
    private volatile Throwable failure;

    private NettyMigrationConnection(Channel channel, String description, long pauseAbove, long resumeBelow) {
        this.channel = channel;
        this.description = description;
        this.received = new ReceiveQueue(description, channel.config(), pauseAbove, resumeBelow);
    }

    /**
     * Event loop (channel initializer): wraps {@code channel} and appends the handler that feeds
     * the connection, before the channel reads anything.
     *
     * @param pauseAbove  queued inbound bytes above which reading pauses
     * @param resumeBelow queued inbound bytes at or below which reading resumes
     */
    static NettyMigrationConnection attach(Channel channel, String description, long pauseAbove, long resumeBelow) {
        NettyMigrationConnection connection = new NettyMigrationConnection(channel, description, pauseAbove, resumeBelow);
        channel.pipeline().addLast("ferry-migration", connection.new Events());
        return connection;
    }

    /** The Netty channel (for a TLS handshake the caller awaits before the stream starts). */
    Channel channel() {
        return channel;
    }

    @Override
    public ByteBufAllocator alloc() {
        return channel.alloc();
    }

    /** Producer thread. Blocks above the high-water mark; releases {@code buf} if it throws. */
    @Override
    public void write(ByteBuf buf) throws IOException {
        Objects.requireNonNull(buf, "buf");
        try {
            awaitWritable();
        } catch (IOException | RuntimeException e) {
            ReferenceCountUtil.safeRelease(buf);
            throw e;
        }
        // If the channel closes right now, Netty fails the write and releases the buffer itself.
        channel.write(buf, channel.voidPromise());
    }

    /** Producer thread; never blocks. */
    @Override
    public void flush() throws IOException {
        ensureOpen();
        channel.flush();
    }

    /** Producer thread; blocks until every earlier write reached the kernel or failed. */
    @Override
    public void drain() throws IOException {
        ensureOpen();
        ChannelFuture marker = channel.writeAndFlush(Unpooled.EMPTY_BUFFER);
        try {
            marker.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException(description + ": interrupted while draining writes");
        }
        if (!marker.isSuccess()) {
            ensureOpen(); // prefer "closed" or the original failure over Netty's follow-up error
            throw new IOException(description + ": write failed: " + marker.cause().getMessage(), marker.cause());
        }
    }

    /** Consumer thread. */
    @Override
    public ByteBuf read() throws IOException {
        try {
            return received.take();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException(description + ": interrupted while reading");
        }
    }

    @Override
    public boolean hasReturnPath() {
        return true;
    }

    @Override
    public String description() {
        return description;
    }

    /**
     * Any thread. Wakes blocked readers and writers with an {@link IOException}, releases queued
     * inbound chunks, closes the channel (which releases queued outbound buffers) and, unless
     * called on the event loop, waits until the socket is closed so no descriptor outlives it.
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        received.close();
        signalWriters();
        ChannelFuture closing = channel.close();
        if (!channel.eventLoop().inEventLoop()) {
            closing.awaitUninterruptibly(CLOSE_WAIT_SECONDS, TimeUnit.SECONDS);
        }
    }

    /**
     * Hands the socket over: drains the writes, then on the event loop switches reading off,
     * duplicates the descriptor, takes the received chunks and closes the channel (Netty
     * deregisters it from epoll before closing its descriptor, so the event loop never touches
     * the socket again). Null for TLS and NIO channels.
     */
    @Override
    public DetachedSocket detach() throws IOException {
        if (!(channel instanceof io.netty.channel.unix.UnixChannel unix)
                || channel.pipeline().get(io.netty.handler.ssl.SslHandler.class) != null) {
            return null;
        }
        if (channel.isActive()) {
            try {
                drain();
            } catch (IOException e) {
                // A peer that sent its last bytes and closed between the check and the drain
                // must not lose them: what it sent is handed over below, and a later write fails
                // on the closed socket. Any other write failure stands.
                if (channel.isActive() || failure != null) {
                    throw e;
                }
            }
        }
        io.netty.util.concurrent.Future<DetachedSocket> handOver = channel.eventLoop().submit(() -> {
            if (!closed.compareAndSet(false, true)) {
                throw new IOException(description + ": connection closed");
            }
            channel.config().setAutoRead(false);
            ReceiveQueue.Detached queued = received.detach();
            dev.ferry.core.sys.Fd fd = null;
            Throwable failed = failure != null ? failure : queued.failure();
            if (channel.isOpen() && failed == null) {
                fd = dev.ferry.core.sys.Sys.dupCloexec(unix.fd().intValue(), description);
            } else if (failed == null && !queued.endOfStream() && !channel.isOpen()) {
                failed = new java.nio.channels.ClosedChannelException();
            }
            channel.close();
            return new DetachedSocket(fd, description, queued.chunks(), failed);
        });
        try {
            handOver.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            close();
            throw new InterruptedIOException(description + ": interrupted while detaching the socket");
        }
        signalWriters();
        if (!handOver.isSuccess()) {
            Throwable cause = handOver.cause();
            if (cause instanceof IOException io) {
                throw io;
            }
            throw new IOException(description + ": cannot detach the socket: " + cause, cause);
        }
        return handOver.getNow();
    }

    /** Bytes received and not yet read; lets tests check the backpressure bound. */
    long queuedInboundBytes() {
        return received.queuedBytes();
    }

    /** Whether backpressure has switched reading off; for tests. */
    boolean inboundPaused() {
        return received.paused();
    }

    /** Whether a reader is parked waiting for data; for tests. */
    boolean readerWaiting() {
        return received.consumerWaiting();
    }

    /** Whether a writer is parked above the high-water mark; for tests. */
    boolean writerWaiting() {
        writerLock.lock();
        try {
            return writerLock.hasWaiters(writabilityChanged);
        } finally {
            writerLock.unlock();
        }
    }

    @Override
    public String toString() {
        return "NettyMigrationConnection[" + description + "]";
    }

    private void awaitWritable() throws IOException {
        ensureOpen();
        if (channel.isWritable()) {
            return;
        }
        // Unflushed writes count towards the mark too: push them out or we would wait forever.
        channel.flush();
        try {
            writerLock.lockInterruptibly();
            try {
                // Events.channelWritabilityChanged and channelInactive signal under this lock, after
                // the state they report has changed, so checking here cannot miss a wake-up.
                while (!channel.isWritable()) {
                    ensureOpen();
                    writabilityChanged.await();
                }
            } finally {
                writerLock.unlock();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException(description + ": interrupted while waiting to write");
        }
        ensureOpen();
    }

    @Override
    public boolean peerGone() {
        return failure != null || !channel.isActive();
    }

    /** A failure in words: TLS refusals explained, native errors without their syscall prefix. */
    static String describe(Throwable cause) {
        for (Throwable c = cause; c != null; c = c.getCause()) {
            if (c instanceof javax.net.ssl.SSLException) {
                return "TLS: " + dev.ferry.migration.tls.MigrationTls.explain(c);
            }
        }
        if (cause.getMessage() == null) {
            // Netty reports some peer closes without a message: name what happened, not "unknown".
            return cause instanceof java.nio.channels.ClosedChannelException
                    ? "the peer closed the connection" : cause.getClass().getSimpleName();
        }
        return withoutSyscallPrefix(cause.getMessage());
    }

    private void ensureOpen() throws IOException {
        if (closed.get()) {
            throw new IOException(description + ": connection closed");
        }
        Throwable cause = failure;
        if (cause != null) {
            throw new IOException(description + ": connection failed: " + describe(cause), cause);
        }
        if (!channel.isActive()) {
            throw new IOException(description + ": connection closed by peer");
        }
    }

    /** Netty's native errors read "recvAddress(..) failed: Connection reset by peer"; keep the reason. */
    static String withoutSyscallPrefix(String message) {
        return message == null ? "unknown error" : message.replaceFirst("^\\w+\\(\\.\\.\\) failed: ", "");
    }

    private void signalWriters() {
        writerLock.lock();
        try {
            writabilityChanged.signalAll();
        } finally {
            writerLock.unlock();
        }
    }

    /** The channel's last inbound handler; every method runs on the channel's event loop. */
    private final class Events extends ChannelInboundHandlerAdapter {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (msg instanceof ByteBuf chunk) {
                received.offer(chunk);
            } else {
                ReferenceCountUtil.release(msg);
            }
        }

        @Override
        public void channelWritabilityChanged(ChannelHandlerContext ctx) {
            signalWriters();
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            received.endOfStream();
            signalWriters();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            if (failure == null && !closed.get()) {
                failure = cause;
            }
            received.fail(cause);
            signalWriters();
            ctx.close();
        }
    }
}
