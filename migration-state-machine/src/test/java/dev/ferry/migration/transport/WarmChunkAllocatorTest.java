package dev.ferry.migration.transport;

import io.netty.buffer.ByteBuf;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.file.Path;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The stream channels' chunks keep their memory between uses: filled on one thread and freed on
 * another, as a migration's are, they are taken from the system only up to the number in flight;
 * other sizes are Netty's pooled buffers; a chunk grown past its size is not kept; close frees
 * what is kept and later releases free theirs.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class WarmChunkAllocatorTest {
    private static final int CHUNK = WarmChunkAllocator.CHUNK;

    @TempDir
    Path dir;

    @Test
    void chunksFreedOnAnotherThreadAreReusedNotRetaken() throws Exception {
        WarmChunkAllocator alloc = new WarmChunkAllocator(64);
        BlockingQueue<ByteBuf> inFlight = new ArrayBlockingQueue<>(32);
        ExecutorService consumer = Executors.newSingleThreadExecutor();
        try {
            Future<Long> checked = consumer.submit(() -> {
                long sum = 0;
                for (int i = 0; i < 2000; i++) {
                    ByteBuf b = inFlight.take();
                    sum += b.getLong(0) + b.getLong(CHUNK - 8);
                    b.release();
                }
                return sum;
            });
            long expected = 0;
            for (int i = 0; i < 2000; i++) {
                ByteBuf b = alloc.directBuffer(CHUNK, CHUNK);
                assertTrue(b.hasMemoryAddress(), "the save stream copies into the chunk by address");
                assertEquals(CHUNK, b.maxCapacity());
                b.setLong(0, i).setLong(CHUNK - 8, 3L * i).writerIndex(CHUNK);
                expected += 4L * i;
                inFlight.put(b);
            }
            assertEquals(expected, checked.get(30, TimeUnit.SECONDS), "every chunk carried its own bytes");
        } finally {
            consumer.shutdownNow();
        }
        assertTrue(alloc.freshChunks() <= 32 + 2, "2000 chunks with at most ~33 in flight took "
                + alloc.freshChunks() + " from the system");
        assertEquals(alloc.freshChunks(), alloc.idleChunks(), "all of them are kept once freed");
        alloc.close();
        assertEquals(0, alloc.idleChunks(), "close frees what is kept");
    }

    @Test
    void otherSizesAreNettysPooledBuffersAndGrownChunksAreNotKept() {
        WarmChunkAllocator alloc = new WarmChunkAllocator(4);
        ByteBuf small = alloc.directBuffer(4096, 4096);
        assertEquals(0, alloc.freshChunks());
        assertTrue(small.isDirect());
        small.release();
        ByteBuf heap = alloc.heapBuffer(100);
        assertTrue(heap.hasArray());
        heap.release();

        ByteBuf growing = alloc.directBuffer(CHUNK, 2 * CHUNK);
        growing.writeZero(CHUNK + 1); // grows: its chunk is freed (and kept), the larger memory is its own
        assertEquals(1, alloc.idleChunks(), "the outgrown chunk went back to the kept set");
        growing.release();
        assertEquals(1, alloc.idleChunks(), "memory of another size is never kept");
        ByteBuf again = alloc.directBuffer(CHUNK, CHUNK);
        assertEquals(0, alloc.idleChunks(), "the kept chunk served the next request");
        assertEquals(CHUNK, again.capacity(), "whole, although the resize had moved its position and limit");
        again.writeZero(CHUNK).setLong(CHUNK - 8, 42);
        assertEquals(42, again.getLong(CHUNK - 8));
        assertEquals(2, alloc.freshChunks(), "the first chunk and the grown buffer's memory were the only fresh ones");
        alloc.close();
        again.release();
        assertEquals(0, alloc.idleChunks(), "a chunk released after close is freed, not kept");
        ByteBuf afterClose = alloc.directBuffer(CHUNK, CHUNK);
        assertNotSame(WarmChunkAllocator.class, afterClose.alloc().getClass(), "after close chunks come from Netty's pool");
        afterClose.release();
    }

    @ParameterizedTest
    @EnumSource(SocketKind.class)
    void aStreamThroughTheTransportReusesItsChunks(SocketKind kind) throws Exception {
        LeakRecorder.enable();
        long total = 256L << 20;
        StreamPattern pattern = new StreamPattern(7);
        ExecutorService receiver = Executors.newSingleThreadExecutor();
        try (ConnectedPair pair = ConnectedPair.open(kind, dir)) {
            Future<?> received = receiver.submit(() -> {
                pattern.receive(pair.destination, total);
                return null;
            });
            pattern.send(pair.source, total, CHUNK);
            received.get(60, TimeUnit.SECONDS);
            long fresh = pair.transports.chunkAllocator().freshChunks();
            // 1024 chunks sent and ~1000 or more received; what is in flight at once is bounded by the
            // sender's high water mark and the receiver's pause mark (4 + 8 MiB, 48 chunks).
            assertTrue(fresh > 0, kind + ": the stream's chunks came from the transport's allocator");
            assertTrue(fresh <= 64 + 8, kind + ": " + fresh + " chunks taken from the system for a 256 MiB stream");
        } finally {
            receiver.shutdownNow();
        }
        LeakRecorder.assertNoLeaks();
    }
}
