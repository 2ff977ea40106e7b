package dev.ferry.migration.transport;

import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.UnpooledUnsafeDirectByteBuf;
import io.netty.util.internal.PlatformDependent;

import java.nio.ByteBuffer;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The migration channels' allocator: direct buffers of exactly {@link #CHUNK} bytes — what the
 * source's stream fills and what the receiver reads a bulk transfer into — come from a set of up
 * to {@code keep} buffers whose memory stays mapped and faulted in between uses; every other
 * request goes to Netty's pooled allocator.
 *
 * <p>Why: a stream's chunks are filled on one thread and freed on another, so Netty's pool serves
 * them from its shared arenas, which give a chunk's memory back to the system once it is empty and
 * take fresh memory for the next; each fresh page then costs a page fault on first touch, and on a
 * nested hypervisor (this project's hosts) first touch runs at ~250 MB/s, slower than the link.
 * Here a freed chunk's memory is kept, up to the bound, for the next buffer.
 *
 * <p>Thread-safe. Buffers are leak-tracked like Netty's own. {@link #close} frees the kept memory;
 * buffers still in use are freed when released.
 */
final class WarmChunkAllocator extends AbstractByteBufAllocator implements AutoCloseable {
    /** The one size served from kept memory: the save stream's chunk and the largest receive read. */
    static final int CHUNK = 256 << 10;

    private final ByteBufAllocator fallback = PooledByteBufAllocator.DEFAULT;
    private final ArrayBlockingQueue<ByteBuffer> idle;
    private final AtomicLong fresh = new AtomicLong();
    private volatile boolean closed;

    WarmChunkAllocator(int keep) {
        super(true);
        this.idle = new ArrayBlockingQueue<>(keep);
    }

    /** Chunks whose memory had to be taken from the system (not reused); for tests and statistics. */
    long freshChunks() {
        return fresh.get();
    }

    /** Chunks kept for reuse now. */
    int idleChunks() {
        return idle.size();
    }

    @Override
    protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
        if (initialCapacity != CHUNK || closed) {
            return fallback.directBuffer(initialCapacity, maxCapacity);
        }
        return new UnpooledUnsafeDirectByteBuf(this, CHUNK, maxCapacity) {
            @Override
            protected ByteBuffer allocateDirect(int capacity) {
                ByteBuffer b = capacity == CHUNK ? idle.poll() : null; // a buffer grown past a chunk is its own
                if (b != null) {
                    // Netty sets the old buffer's position and limit when it copies out of it on a
                    // resize, and takes a new buffer's capacity from remaining(): start clean.
                    return b.clear();
                }
                fresh.incrementAndGet();
                return super.allocateDirect(capacity);
            }

            @Override
            protected void freeDirect(ByteBuffer buffer) {
                if (closed || buffer.capacity() != CHUNK || !idle.offer(buffer)) {
                    super.freeDirect(buffer);
                } else if (closed) {
                    close(); // closed between the check and the offer: free what is kept, this one too
                }
            }
        };
    }

    @Override
    protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
        return fallback.heapBuffer(initialCapacity, maxCapacity);
    }

    @Override
    public boolean isDirectBufferPooled() {
        return true;
    }

    @Override
    public void close() {
        closed = true;
        ByteBuffer b;
        while ((b = idle.poll()) != null) {
            PlatformDependent.freeDirectBuffer(b);
        }
    }
}
