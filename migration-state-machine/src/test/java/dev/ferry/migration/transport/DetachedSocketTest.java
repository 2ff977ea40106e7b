package dev.ferry.migration.transport;

import dev.ferry.core.sys.NativeMemory;
import io.netty.buffer.ByteBuf;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.EOFException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A socket taken out of its transport for gathered and scattered I/O straight from and to native
 * memory: nothing the transport had received is lost or read twice, data larger than the socket
 * buffers moves intact between scattered ranges, the stream's end and a shutdown are reported as
 * such, and the duplicated descriptor is closed once.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class DetachedSocketTest {
    private static final int PAGE = 4096;

    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(value = SocketKind.class, names = {"TCP_EPOLL", "UNIX"})
    void bytesBeforeAndAfterTheDetachArriveOnceAndInOrder(SocketKind kind) throws Exception {
        byte[] before = new byte[100_000]; // sent through the transport; the destination's queue holds it
        new Random(1).nextBytes(before);
        int pages = 3 * 1024; // 12 MiB: more than both socket buffers, so writes wait and come back partial
        long src = NativeMemory.allocate((long) pages * PAGE);
        long dst = NativeMemory.allocate((long) pages * PAGE + 100_000);
        try (ConnectedPair pair = ConnectedPair.open(kind, dir);
             IoVector out = new IoVector(pages); IoVector in = new IoVector(pages + 1)) {
            fillRandom(src, (long) pages * PAGE, 2);
            ByteBuf b = pair.source.alloc().directBuffer(before.length);
            b.writeBytes(before);
            pair.source.write(b);
            pair.source.flush();
            awaitQueued(pair.destination, before.length);

            DetachedSocket s = pair.source.detach();
            DetachedSocket d = pair.destination.detach();
            assertNotNull(s);
            assertNotNull(d);
            assertThrows(IOException.class, () -> pair.source.write(pair.source.alloc().directBuffer(1)),
                    "the transport no longer writes to a detached socket");
            // Gather the source pages in reverse order, so no two ranges merge.
            for (int i = pages - 1; i >= 0; i--) {
                out.add(src + (long) i * PAGE, PAGE);
            }
            assertEquals(pages, out.entries());
            CompletableFuture<Void> writer = CompletableFuture.runAsync(() -> {
                try {
                    s.write(out);
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            in.add(dst, before.length);
            for (int i = 0; i < pages; i++) {
                in.add(dst + before.length + (long) i * PAGE, PAGE);
            }
            assertEquals(1, in.entries(), "adjacent ranges merge into one iovec");
            assertTrue(d.read(in));
            writer.get(30, TimeUnit.SECONDS);
            assertEquals(0, out.remaining());
            assertEquals((long) pages * PAGE, s.bytesWritten());
            assertEquals(before.length + (long) pages * PAGE, d.bytesRead());

            byte[] got = new byte[before.length];
            NativeMemory.copyToArray(dst, got, 0, got.length);
            assertArrayEquals(before, got);
            byte[] want = new byte[PAGE];
            byte[] page = new byte[PAGE];
            for (int i = 0; i < pages; i++) {
                NativeMemory.copyToArray(src + (long) (pages - 1 - i) * PAGE, want, 0, PAGE);
                NativeMemory.copyToArray(dst + before.length + (long) i * PAGE, page, 0, PAGE);
                assertArrayEquals(want, page, "page " + i);
            }

            s.shutdown();
            s.close();
            in.clear();
            in.add(dst, 16);
            assertFalse(d.read(in), "the end of the stream before a read's first byte is a clean end");
            d.close();
        } finally {
            NativeMemory.free(src);
            NativeMemory.free(dst);
        }
    }

    @Test
    void aStreamEndingInsideAReadIsAnEofThatSaysHowFarItGot() throws Exception {
        try (ConnectedPair pair = ConnectedPair.open(SocketKind.TCP_EPOLL, dir); IoVector v = new IoVector(2)) {
            DetachedSocket s = pair.source.detach();
            DetachedSocket d = pair.destination.detach();
            long buf = NativeMemory.allocate(64);
            try {
                v.add(buf, 10);
                s.write(v);
                s.close();
                v.clear();
                v.add(buf, 64);
                EOFException e = assertThrows(EOFException.class, () -> d.read(v));
                assertTrue(e.getMessage().contains("after 10 bytes, 54 bytes short of a 64-byte read"), e.getMessage());
            } finally {
                d.close();
                NativeMemory.free(buf);
            }
        }
    }

    @Test
    void whatArrivedBeforeThePeerClosedIsStillReadAfterADetach() throws Exception {
        try (ConnectedPair pair = ConnectedPair.open(SocketKind.TCP_EPOLL, dir); IoVector v = new IoVector(1)) {
            ByteBuf b = pair.source.alloc().directBuffer(5);
            b.writeBytes(new byte[] {1, 2, 3, 4, 5});
            pair.source.write(b);
            pair.source.drain();
            pair.source.close(); // the destination's transport reads the bytes and the end, and closes
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (pair.destination.channel().isOpen() && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            DetachedSocket d = pair.destination.detach();
            long buf = NativeMemory.allocate(8);
            try {
                v.add(buf, 5);
                assertTrue(d.read(v));
                for (int i = 0; i < 5; i++) {
                    assertEquals(i + 1, NativeMemory.getByte(buf + i));
                }
                v.clear();
                v.add(buf, 1);
                assertFalse(d.read(v));
            } finally {
                d.close();
                NativeMemory.free(buf);
            }
        }
    }

    @Test
    void aShutdownFromAnotherThreadWakesABlockedReader() throws Exception {
        try (ConnectedPair pair = ConnectedPair.open(SocketKind.UNIX, dir); IoVector v = new IoVector(1)) {
            DetachedSocket d = pair.destination.detach();
            long buf = NativeMemory.allocate(8);
            try {
                v.add(buf, 8);
                CompletableFuture<Boolean> reader = CompletableFuture.supplyAsync(() -> {
                    try {
                        return d.read(v);
                    } catch (IOException e) {
                        throw new RuntimeException(e);
                    }
                });
                Thread.sleep(3 * DetachedSocket.POLL_MS);
                assertFalse(reader.isDone(), "nothing was sent: the reader waits");
                d.shutdown();
                Throwable t = assertThrows(java.util.concurrent.ExecutionException.class,
                        () -> reader.get(5, TimeUnit.SECONDS)).getCause().getCause();
                assertTrue(t.getMessage().endsWith("connection closed"), t.getMessage());
            } finally {
                d.close();
                NativeMemory.free(buf);
            }
        }
    }

    @Test
    void nioChannelsKeepTheirSocket() throws Exception {
        try (ConnectedPair pair = ConnectedPair.open(SocketKind.TCP_NIO, dir)) {
            assertNull(pair.source.detach());
            assertNull(pair.destination.detach());
        }
    }

    @Test
    void detachedDescriptorsAreClosedOnce() throws Exception {
        Path fds = Path.of("/proc/self/fd");
        org.junit.jupiter.api.Assumptions.assumeTrue(Files.isDirectory(fds), "needs /proc/self/fd");
        try (NettyMigrationTransports transports = SocketKind.TCP_EPOLL.transports()) {
            round(transports);
            long before = count(fds);
            for (int i = 0; i < 10; i++) {
                round(transports);
            }
            long after = count(fds);
            for (int wait = 0; wait < 100 && after > before; wait++) {
                Thread.sleep(20);
                after = count(fds);
            }
            assertTrue(after <= before, "descriptors leaked: " + before + " open before, " + after + " after");
        }
    }

    private void round(NettyMigrationTransports transports) throws Exception {
        try (MigrationListener listener = transports.listen("tcp:127.0.0.1:0")) {
            MigrationConnection source = transports.connect(listener.boundUri());
            MigrationConnection destination = listener.accept(java.time.Duration.ofSeconds(10));
            DetachedSocket s = source.detach();
            DetachedSocket d = destination.detach();
            s.shutdown();
            s.close();
            s.close();
            d.close();
            source.close();
            destination.close();
        }
    }

    private static long count(Path fds) throws IOException {
        try (Stream<Path> s = Files.list(fds)) {
            return s.count();
        }
    }

    private static void awaitQueued(NettyMigrationConnection c, long bytes) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (c.queuedInboundBytes() < bytes && System.nanoTime() < deadline) {
            Thread.sleep(2);
        }
        assertEquals(bytes, c.queuedInboundBytes(), "the transport received the bytes sent before the detach");
    }

    private static void fillRandom(long address, long length, long seed) {
        Random r = new Random(seed);
        for (long i = 0; i < length; i += 8) {
            NativeMemory.putLong(address + i, r.nextLong());
        }
    }
}
