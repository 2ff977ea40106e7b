package dev.ferry.migration.transport;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelConfig;

import java.io.IOException;
import java.util.ArrayDeque;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The hand-off of received chunks from a channel's event loop to the one consumer thread, with
 * backpressure: when more than {@code pauseAbove} bytes wait unconsumed, the channel's auto-read
 * is switched off, so the kernel's receive buffer fills and TCP (or the UNIX socket) stops the
 * sender; when the consumer has taken the queue down to {@code resumeBelow}, reading resumes.
 * Netty checks auto-read between reads, so the queue overshoots the pause mark by at most one
 * receive chunk (plus one more when the peer half-closes while paused).
 *
 * <p>Threads: {@link #offer}, {@link #endOfStream} and {@link #fail} run on the event loop;
 * {@link #take} on the consumer thread; {@link #close} on any thread. One lock guards all state;
 * it is held only for queue operations and the auto-read switch, never across I/O.
 *
 * <p>Ownership: a queued chunk belongs to the queue until {@link #take} hands it to the caller;
 * {@link #close} releases whatever is left, and chunks offered after close are released at once.
 */
final class ReceiveQueue {
    private final String description;
    private final ChannelConfig config;
    private final long pauseAbove;
    private final long resumeBelow;

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final ArrayDeque<ByteBuf> chunks = new ArrayDeque<>();
    private long queuedBytes;
    private boolean paused;
    private boolean endOfStream;
    private Throwable failure;
    private boolean closed;

    ReceiveQueue(String description, ChannelConfig config, long pauseAbove, long resumeBelow) {
        if (resumeBelow > pauseAbove) {
            throw new IllegalArgumentException("resumeBelow " + resumeBelow + " > pauseAbove " + pauseAbove);
        }
        this.description = description;
        this.config = config;
        this.pauseAbove = pauseAbove;
        this.resumeBelow = resumeBelow;
    }

    /** Event loop: queues a received chunk (taking ownership) and pauses reading past the bound. */
    void offer(ByteBuf chunk) {
        lock.lock();
        try {
            if (closed || !chunk.isReadable()) {
                chunk.release();
                return;
            }
            chunks.addLast(chunk);
            queuedBytes += chunk.readableBytes();
            if (!paused && queuedBytes > pauseAbove) {
                paused = true;
                config.setAutoRead(false);
            }
            changed.signal();
        } finally {
            lock.unlock();
        }
    }

    /** Event loop: the channel went inactive; the consumer gets null after the queued chunks. */
    void endOfStream() {
        lock.lock();
        try {
            endOfStream = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Event loop: the channel failed; the consumer gets the queued chunks, then the failure. */
    void fail(Throwable cause) {
        lock.lock();
        try {
            if (failure == null) {
                failure = cause;
            }
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /**
     * Consumer thread: the next chunk (now owned by the caller), or null at a clean end of stream.
     *
     * @throws IOException if the queue was closed, or the channel failed and nothing is left
     */
    ByteBuf take() throws IOException, InterruptedException {
        lock.lockInterruptibly();
        try {
            for (;;) {
                if (closed) {
                    throw new IOException(description + ": connection closed");
                }
                ByteBuf chunk = chunks.pollFirst();
                if (chunk != null) {
                    queuedBytes -= chunk.readableBytes();
                    if (paused && queuedBytes <= resumeBelow) {
                        paused = false;
                        config.setAutoRead(true); // schedules a read on the event loop
                    }
                    return chunk;
                }
                if (failure != null) {
                    throw new IOException(description + ": connection failed: " + NettyMigrationConnection.describe(failure),
                            failure);
                }
                if (endOfStream) {
                    return null;
                }
                changed.await();
            }
        } finally {
            lock.unlock();
        }
    }

    /** What the queue held when its channel was detached: its chunks, and how the stream had ended. */
    record Detached(java.util.List<ByteBuf> chunks, boolean endOfStream, Throwable failure) {
    }

    /**
     * Event loop, with auto-read off: hands every queued chunk to the caller and closes the queue
     * (later offers are released, takes fail), so no byte is left behind or read twice.
     */
    Detached detach() {
        lock.lock();
        try {
            java.util.List<ByteBuf> out = new java.util.ArrayList<>(chunks);
            chunks.clear();
            queuedBytes = 0;
            closed = true;
            changed.signalAll();
            return new Detached(out, endOfStream, failure);
        } finally {
            lock.unlock();
        }
    }

    /** Any thread: releases every queued chunk and makes pending and later takes fail. */
    void close() {
        lock.lock();
        try {
            closed = true;
            ByteBuf chunk;
            while ((chunk = chunks.pollFirst()) != null) {
                chunk.release();
            }
            queuedBytes = 0;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Bytes received but not yet taken; for tests and statistics. */
    long queuedBytes() {
        lock.lock();
        try {
            return queuedBytes;
        } finally {
            lock.unlock();
        }
    }

    /** Whether the consumer is parked in {@link #take}; for tests. */
    boolean consumerWaiting() {
        lock.lock();
        try {
            return lock.hasWaiters(changed);
        } finally {
            lock.unlock();
        }
    }

    /** Whether reading from the socket is currently switched off by backpressure. */
    boolean paused() {
        lock.lock();
        try {
            return paused;
        } finally {
            lock.unlock();
        }
    }
}
