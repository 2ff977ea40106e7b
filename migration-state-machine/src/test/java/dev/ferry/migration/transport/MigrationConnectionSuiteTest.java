package dev.ferry.migration.transport;

import io.netty.buffer.ByteBuf;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.net.SocketTimeoutException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The contract of {@link MigrationConnection} and {@link MigrationListener}, run against every
 * socket transport (TCP over epoll, TCP over NIO, UNIX) with real sockets on loopback. Blocking
 * states are observed through the connection's own waiter accessors, never by sleeping and hoping.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class MigrationConnectionSuiteTest {
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;

    private final ExecutorService threads = Executors.newCachedThreadPool();

    @BeforeAll
    static void paranoidLeakDetection() {
        LeakRecorder.enable();
    }

    @AfterEach
    void noLeaks() throws InterruptedException {
        threads.shutdownNow();
        assertTrue(threads.awaitTermination(10, TimeUnit.SECONDS), "helper threads stuck");
        LeakRecorder.assertNoLeaks();
    }

    @ParameterizedTest
    @EnumSource(SocketKind.class)
    void roundTripsBothDirectionsAtOnceThenDeliversEndOfStream(SocketKind kind) throws Exception {
        try (ConnectedPair pair = ConnectedPair.open(kind, dir)) {
            StreamPattern forward = new StreamPattern(7);
            StreamPattern back = new StreamPattern(1_000_003);
            Future<?> send = run(() -> forward.send(pair.source, 64L * MIB, 256 * 1024));
            Future<?> receive = run(() -> forward.receive(pair.destination, 64L * MIB));
            Future<?> answer = run(() -> back.send(pair.destination, 64L * MIB, 4096));
            back.receive(pair.source, 64L * MIB);
            get(send);
            get(receive);
            get(answer);

            pair.source.close();
            assertNull(pair.destination.read(), "end of stream after the source closed");
            assertNull(pair.destination.read(), "end of stream stays end of stream");
        }
    }

    @ParameterizedTest
    @EnumSource(SocketKind.class)
    void deliversQueuedDataBeforeEndOfStream(SocketKind kind) throws Exception {
        try (ConnectedPair pair = ConnectedPair.open(kind, dir)) {
            StreamPattern pattern = new StreamPattern(42);
            pattern.send(pair.source, 3 * MIB + 17, 64 * 1024);
            pair.source.close();
            assertEquals(3L * MIB + 17, pattern.receiveToEnd(pair.destination));
        }
    }

    @ParameterizedTest
    @EnumSource(SocketKind.class)
    void closeFromAnotherThreadUnblocksRead(SocketKind kind) throws Exception {
        try (ConnectedPair pair = ConnectedPair.open(kind, dir)) {
            Future<ByteBuf> reading = threads.submit(pair.destination::read);
            awaitTrue(pair.destination::readerWaiting);
            pair.destination.close();
            IOException failure = failureOf(reading);
            assertTrue(failure.getMessage().contains("closed"), failure.getMessage());
        }
    }

    @ParameterizedTest
    @EnumSource(SocketKind.class)
    void interruptUnblocksRead(SocketKind kind) throws Exception {
        try (ConnectedPair pair = ConnectedPair.open(kind, dir)) {
            AtomicReference<Throwable> outcome = new AtomicReference<>();
            Thread reader = new Thread(() -> {
                try {
                    pair.destination.read();
                } catch (Throwable t) {
                    outcome.set(t);
                }
            }, "interrupted-reader");
            reader.start();
            awaitTrue(pair.destination::readerWaiting);
            reader.interrupt();
            reader.join();
            assertInstanceOf(InterruptedIOException.class, outcome.get());
        }
    }

    @ParameterizedTest
    @EnumSource(SocketKind.class)
    void closeFromAnotherThreadUnblocksWriteAndReleasesTheBuffer(SocketKind kind) throws Exception {
        try (ConnectedPair pair = ConnectedPair.open(kind, dir)) {
            AtomicReference<ByteBuf> last = new AtomicReference<>();
            Future<?> writing = run(() -> {
                for (;;) { // the destination never reads, so this ends in a blocked write
                    ByteBuf buf = pair.source.alloc().directBuffer(64 * 1024).writeZero(64 * 1024);
                    last.set(buf);
                    pair.source.write(buf);
                }
            });
            awaitTrue(pair.source::writerWaiting);
            pair.source.close();
            IOException failure = failureOf(writing);
            assertTrue(failure.getMessage().contains("closed"), failure.getMessage());
            assertEquals(0, last.get().refCnt(), "the blocked write released its buffer");
        }
    }

    @ParameterizedTest
    @EnumSource(SocketKind.class)
    void writeFlushDrainAfterCloseThrowAndWriteReleasesTheBuffer(SocketKind kind) throws Exception {
        try (ConnectedPair pair = ConnectedPair.open(kind, dir)) {
            pair.source.close();
            pair.source.close(); // idempotent
            ByteBuf buf = pair.source.alloc().directBuffer(16).writeLong(1);
            assertThrows(IOException.class, () -> pair.source.write(buf));
            assertEquals(0, buf.refCnt());
            assertThrows(IOException.class, pair.source::flush);
            assertThrows(IOException.class, pair.source::drain);
            assertThrows(IOException.class, pair.source::read);
        }
    }

    @ParameterizedTest
    @EnumSource(SocketKind.class)
    void writeFailsOnceThePeerHasClosed(SocketKind kind) throws Exception {
        try (ConnectedPair pair = ConnectedPair.open(kind, dir)) {
            pair.destination.close();
            IOException failure = assertThrows(IOException.class, () -> {
                for (int i = 0; i < 64 * 1024; i++) { // the kernel may take a few writes before it notices
                    pair.source.write(pair.source.alloc().directBuffer(64 * 1024).writeZero(64 * 1024));
                    pair.source.flush();
                }
            });
            assertTrue(failure.getMessage().startsWith(pair.source.description()), failure.getMessage());
        }
    }

    @ParameterizedTest
    @EnumSource(SocketKind.class)
    void backpressureBoundsTheReceiveQueueAndReadingResumes(SocketKind kind) throws Exception {
        try (ConnectedPair pair = ConnectedPair.open(kind, dir)) {
            StreamPattern pattern = new StreamPattern(99);
            long total = 96L * MIB;
            Future<?> sending = run(() -> pattern.send(pair.source, total, 64 * 1024));
            awaitTrue(() -> pair.destination.inboundPaused() && pair.source.writerWaiting());

            // Netty stops reading between chunks, so the queue overshoots the pause mark by at most
            // the chunk that crossed it (and one more if a read was already scheduled).
            long bound = NettyMigrationTransports.RECEIVE_PAUSE_ABOVE + 2L * NettyMigrationTransports.RECEIVE_CHUNK_MAX;
            for (int sample = 0; sample < 20; sample++) {
                long queued = pair.destination.queuedInboundBytes();
                assertTrue(queued > NettyMigrationTransports.RECEIVE_PAUSE_ABOVE && queued <= bound,
                        "queued " + queued + " outside (" + NettyMigrationTransports.RECEIVE_PAUSE_ABOVE + ", " + bound + "]");
                assertFalse(sending.isDone(), "the sender is held back, not finished");
                Thread.sleep(10);
            }

            pattern.receive(pair.destination, total);
            get(sending);
        }
    }

    @ParameterizedTest
    @EnumSource(SocketKind.class)
    void closeReleasesQueuedChunks(SocketKind kind) throws Exception {
        try (ConnectedPair pair = ConnectedPair.open(kind, dir)) {
            new StreamPattern(5).send(pair.source, 2 * MIB, 64 * 1024);
            awaitTrue(() -> pair.destination.queuedInboundBytes() == 2 * MIB);
            pair.destination.close();
            assertEquals(0, pair.destination.queuedInboundBytes());
            assertThrows(IOException.class, pair.destination::read);
        }
    }

    @ParameterizedTest
    @EnumSource(SocketKind.class)
    void allocatesDirectBuffersAndDescribesBothEnds(SocketKind kind) throws Exception {
        try (ConnectedPair pair = ConnectedPair.open(kind, dir)) {
            assertInstanceOf(WarmChunkAllocator.class, pair.source.alloc());
            ByteBuf buf = pair.source.alloc().buffer(4096);
            try {
                assertTrue(buf.isDirect(), "write buffers are off-heap");
            } finally {
                buf.release();
            }
            assertTrue(pair.source.hasReturnPath() && pair.destination.hasReturnPath());
            assertEquals(pair.listener.boundUri(), pair.source.description());
            String scheme = kind == SocketKind.UNIX ? "unix:" : "tcp:127.0.0.1:";
            assertTrue(pair.destination.description().startsWith(scheme), pair.destination.description());
            assertTrue(pair.listener.boundUri().startsWith(scheme), pair.listener.boundUri());
            assertFalse(pair.listener.boundUri().endsWith(":0"), "the real port is reported");
        }
    }

    @ParameterizedTest
    @EnumSource(SocketKind.class)
    void acceptTimesOutThenStillAccepts(SocketKind kind) throws Exception {
        try (NettyMigrationTransports transports = kind.transports();
             MigrationListener listener = transports.listen(kind.listenUri(dir))) {
            SocketTimeoutException timeout = assertThrows(SocketTimeoutException.class,
                    () -> listener.accept(Duration.ofMillis(100)));
            assertTrue(timeout.getMessage().contains(listener.boundUri()), timeout.getMessage());

            try (MigrationConnection source = transports.connect(listener.boundUri());
                 MigrationConnection destination = listener.accept(Duration.ofSeconds(10))) {
                new StreamPattern(3).send(source, 1000, 1000);
                new StreamPattern(3).receive(destination, 1000);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(SocketKind.class)
    void closingTheListenerUnblocksAccept(SocketKind kind) throws Exception {
        try (NettyMigrationTransports transports = kind.transports()) {
            MigrationListener listener = transports.listen(kind.listenUri(dir));
            AtomicReference<Thread> acceptor = new AtomicReference<>();
            Future<MigrationConnection> accepting = threads.submit(() -> {
                acceptor.set(Thread.currentThread());
                return listener.accept(Duration.ofSeconds(30));
            });
            awaitTrue(() -> acceptor.get() != null && acceptor.get().getState() == Thread.State.TIMED_WAITING);
            listener.close();
            IOException failure = failureOf(accepting);
            assertTrue(failure.getMessage().contains("listener closed"), failure.getMessage());
        }
    }

    @ParameterizedTest
    @EnumSource(SocketKind.class)
    void onlyTheFirstConnectionIsAccepted(SocketKind kind) throws Exception {
        try (ConnectedPair pair = ConnectedPair.open(kind, dir);
             MigrationConnection intruder = pair.transports.connect(pair.listener.boundUri())) {
            // The listener closes a second connection as soon as it arrives: end of stream, or reset.
            try {
                ByteBuf unexpected = intruder.read();
                if (unexpected != null) {
                    unexpected.release();
                }
                assertNull(unexpected, "a second connection gets no data");
            } catch (IOException expected) {
                // reset by the listener: also a refusal
            }
            IOException again = assertThrows(IOException.class, () -> pair.listener.accept(Duration.ofMillis(10)));
            assertTrue(again.getMessage().contains("already accepted"), again.getMessage());

            StreamPattern pattern = new StreamPattern(11); // the first connection is unaffected
            pattern.send(pair.source, 4096, 4096);
            pattern.receive(pair.destination, 4096);
        }
    }

    /** A blocking step run on a helper thread (the "other side" of a connection). */
    @FunctionalInterface
    private interface Step {
        void run() throws Exception;
    }

    private Future<?> run(Step step) {
        return threads.submit((Callable<Void>) () -> {
            step.run();
            return null;
        });
    }

    private static void get(Future<?> future) throws Exception {
        try {
            future.get(50, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof Exception cause) {
                throw cause;
            }
            throw e;
        }
    }

    private static IOException failureOf(Future<?> future) throws Exception {
        ExecutionException e = assertThrows(ExecutionException.class, () -> future.get(10, TimeUnit.SECONDS));
        return assertInstanceOf(IOException.class, e.getCause());
    }

    /** Polls a condition the code under test reaches on its own; the class timeout bounds it. */
    static void awaitTrue(BooleanSupplier condition) throws InterruptedException {
        while (!condition.getAsBoolean()) {
            Thread.sleep(2);
        }
    }
}
