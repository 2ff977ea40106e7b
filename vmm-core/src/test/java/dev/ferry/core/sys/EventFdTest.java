package dev.ferry.core.sys;

import dev.ferry.core.testing.FdLeakCheck;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link EventFd} against the real kernel: counter semantics, and its use under many threads and a racing close. */
class EventFdTest {
    /** Generous bound for threads to finish; only hit when the code under test hangs. */
    private static final long HANG_SECONDS = 60;
    @Test
    void signalsAddUpAndConsumeResets() {
        try (EventFd e = new EventFd(Linux.EFD_NONBLOCK)) {
            e.signal();
            e.signal();
            assertEquals(2, e.consume());
            NativeCallException empty = assertThrows(NativeCallException.class, e::consume);
            assertEquals("read", empty.call());
            assertEquals(Errno.EAGAIN, empty.errno());
        }
    }

    @Test
    void semaphoreModeConsumesOneAtATime() {
        try (EventFd e = new EventFd(Linux.EFD_NONBLOCK | Linux.EFD_SEMAPHORE)) {
            e.signal();
            e.signal();
            assertEquals(1, e.consume());
            assertEquals(1, e.consume());
            assertThrows(NativeCallException.class, e::consume);
        }
    }

    @Test
    void closeIsIdempotentAndFreesTheFd() {
        new EventFd(0).close();
        FdLeakCheck leaks = FdLeakCheck.start();
        EventFd e = new EventFd(0);
        e.close();
        e.close();
        assertFalse(e.fd().isOpen());
        leaks.assertNoLeaks();
    }

    @Test
    void consumeOrZeroReturnsZeroOnAnEmptyCounter() {
        try (EventFd e = new EventFd(Linux.EFD_NONBLOCK)) {
            assertEquals(0, e.consumeOrZero());
            e.signal();
            e.signal();
            e.signal();
            assertEquals(3, e.consumeOrZero());
            assertEquals(0, e.consumeOrZero());
        }
    }

    @Test
    void callsAfterCloseAreIllegalState() {
        EventFd e = new EventFd(Linux.EFD_NONBLOCK);
        e.close();
        assertTrue(assertThrows(IllegalStateException.class, e::signal).getMessage().contains("signal() after close"));
        assertThrows(IllegalStateException.class, e::consume);
        assertThrows(IllegalStateException.class, e::consumeOrZero);
    }

    @Test
    void concurrentSignalsAddUpExactly() throws Exception {
        int threads = 8;
        int perThread = 20_000;
        try (EventFd e = new EventFd(Linux.EFD_NONBLOCK)) {
            List<Throwable> failures = runAll(threads, i -> {
                for (int k = 0; k < perThread; k++) {
                    e.signal();
                }
            });
            assertEquals(List.of(), failures);
            assertEquals((long) threads * perThread, e.consume());
        }
    }

    @Test
    void concurrentConsumersTakeEverySignalExactlyOnce() throws Exception {
        int signallers = 4;
        int perSignaller = 20_000;
        int consumers = 3;
        long total = (long) signallers * perSignaller;
        EventFd e = new EventFd(0); // blocking: consumers wait in read(2) until close wakes them
        AtomicLong consumed = new AtomicLong();
        CountDownLatch allConsumed = new CountDownLatch(1);
        ConcurrentLinkedQueue<Throwable> consumerEnds = new ConcurrentLinkedQueue<>();
        List<Thread> consumerThreads = new ArrayList<>();
        for (int i = 0; i < consumers; i++) {
            Thread t = new Thread(() -> {
                try {
                    for (;;) {
                        if (consumed.addAndGet(e.consume()) == total) {
                            allConsumed.countDown();
                        }
                    }
                } catch (Throwable end) {
                    consumerEnds.add(end);
                }
            }, "consumer-" + i);
            t.start();
            consumerThreads.add(t);
        }
        assertEquals(List.of(), runAll(signallers, i -> {
            for (int k = 0; k < perSignaller; k++) {
                e.signal();
            }
        }));
        assertTrue(allConsumed.await(HANG_SECONDS, TimeUnit.SECONDS), "consumed " + consumed.get() + " of " + total);
        e.close(); // consumers still blocked in read(2) are woken and told the eventfd is closed
        for (Thread t : consumerThreads) {
            t.join(TimeUnit.SECONDS.toMillis(HANG_SECONDS));
            assertFalse(t.isAlive(), t.getName() + " still blocked after close()");
        }
        assertEquals(total, consumed.get());
        assertEquals(consumers, consumerEnds.size());
        for (Throwable end : consumerEnds) {
            assertInstanceOf(IllegalStateException.class, end, end::toString);
        }
        assertFalse(e.fd().isOpen());
    }

    @Test
    void closeWakesAConsumeBlockedInRead() throws Exception {
        EventFd e = new EventFd(0);
        CountDownLatch entered = new CountDownLatch(1);
        AtomicLong result = new AtomicLong();
        Throwable[] end = new Throwable[1];
        Thread t = new Thread(() -> {
            entered.countDown();
            try {
                result.set(e.consume());
            } catch (Throwable x) {
                end[0] = x;
            }
        });
        t.start();
        entered.await();
        Thread.sleep(50); // most likely inside read(2) by now; either way consume() must end with the close
        e.close();
        t.join(TimeUnit.SECONDS.toMillis(HANG_SECONDS));
        assertFalse(t.isAlive(), "consume() still blocked after close()");
        assertInstanceOf(IllegalStateException.class, end[0], String.valueOf(end[0]));
        assertFalse(e.fd().isOpen());
    }

    /**
     * Signallers race a close; right after it a fresh eventfd most likely gets the same number. No
     * signal may land in it, and every signaller must stop with IllegalStateException — never
     * EBADF, which would mean it wrote to a number it no longer owned.
     */
    @Test
    void closeWhileOthersSignalNeverWritesToAReusedNumber() throws Exception {
        int rounds = 20;
        int reused = 0;
        for (int round = 0; round < rounds; round++) {
            EventFd e = new EventFd(Linux.EFD_NONBLOCK);
            int number = e.fd().get();
            AtomicLong signalled = new AtomicLong();
            ConcurrentLinkedQueue<Throwable> ends = new ConcurrentLinkedQueue<>();
            List<Thread> signallers = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                Thread t = new Thread(() -> {
                    try {
                        for (;;) {
                            e.signal();
                            signalled.incrementAndGet();
                        }
                    } catch (Throwable end) {
                        ends.add(end);
                    }
                });
                t.start();
                signallers.add(t);
            }
            while (signalled.get() < 1_000) {
                Thread.onSpinWait();
            }
            e.close();
            try (EventFd fresh = new EventFd(Linux.EFD_NONBLOCK)) {
                if (fresh.fd().get() == number) {
                    reused++;
                }
                for (Thread t : signallers) {
                    t.join(TimeUnit.SECONDS.toMillis(HANG_SECONDS));
                    assertFalse(t.isAlive());
                }
                assertEquals(0, fresh.consumeOrZero(), "a signal after close() reached fd " + number + ", now "
                        + fresh.fd());
            }
            assertEquals(4, ends.size());
            for (Throwable end : ends) {
                assertInstanceOf(IllegalStateException.class, end, end::toString);
            }
        }
        assertTrue(reused > 0, "the kernel never handed the closed number out again in " + rounds
                + " rounds, so the test proved nothing");
    }

    @Test
    void racingClosesAllReturnWithTheFdClosed() throws Exception {
        EventFd e = new EventFd(Linux.EFD_NONBLOCK);
        int number = e.fd().get();
        assertEquals(List.of(), runAll(4, i -> e.close()));
        assertFalse(e.fd().isOpen());
        // Closed, or already reused by another thread of the JVM for something else.
        String target = FdLeakCheck.openFds().get(number);
        assertFalse("anon_inode:[eventfd]".equals(target), "fd " + number + " still open: " + target);
    }

    @Test
    void adoptTakesAPeersEventfdAndRefusesAnythingElse() {
        try (EventFd mine = new EventFd(Linux.EFD_NONBLOCK)) {
            EventFd adopted = EventFd.adopt(Sys.dup(mine.fd()));
            assertEquals(0, adopted.consumeOrZero(), "adopted non-blocking: an empty counter reads 0, never blocks");
            adopted.signal();
            assertEquals(1, mine.consumeOrZero(), "the adopted fd is the same eventfd");
            adopted.close();
            assertTrue(mine.fd().isOpen());
        }
        Fd[] pipe = Sys.pipe(Linux.O_CLOEXEC);
        try {
            Fd readEnd = pipe[0];
            var e = assertThrows(IllegalArgumentException.class, () -> EventFd.adopt(readEnd));
            assertTrue(e.getMessage().contains("not an eventfd"), e.getMessage());
            assertFalse(readEnd.isOpen(), "a refused descriptor is closed");
        } finally {
            pipe[1].close();
        }
    }

    private interface Body {
        void run(int index) throws Exception;
    }

    /** Runs {@code threads} bodies released together; returns what they threw. */
    private static List<Throwable> runAll(int threads, Body body) throws InterruptedException {
        CountDownLatch start = new CountDownLatch(1);
        ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
        List<Thread> all = new ArrayList<>();
        for (int i = 0; i < threads; i++) {
            int index = i;
            Thread t = new Thread(() -> {
                try {
                    start.await();
                    body.run(index);
                } catch (Throwable x) {
                    failures.add(x);
                }
            });
            t.start();
            all.add(t);
        }
        start.countDown();
        for (Thread t : all) {
            t.join(TimeUnit.SECONDS.toMillis(HANG_SECONDS));
            assertFalse(t.isAlive(), "a thread did not finish");
        }
        return new ArrayList<>(failures);
    }
}
