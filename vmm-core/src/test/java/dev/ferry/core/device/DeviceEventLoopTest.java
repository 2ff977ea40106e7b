package dev.ferry.core.device;

import dev.ferry.core.sys.EventFd;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sys;
import dev.ferry.core.testing.FdLeakCheck;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The device event loop against real eventfds, pipes and timerfds. Waits are bounded by a
 * generous {@link #HANG_SECONDS}, reached only when the loop is broken; "did not run" is shown
 * by ordering (a task queued after the event ran, or a later timer fired) rather than by time,
 * except where a short quiet window is the only witness.
 */
class DeviceEventLoopTest {
    private static final long HANG_SECONDS = 60;
    private static final long MILLI = 1_000_000L;

    private DeviceEventLoop loop;
    private final List<AutoCloseable> owned = new ArrayList<>();

    @BeforeEach
    void start() {
        loop = new DeviceEventLoop("test");
    }

    @AfterEach
    void stop() throws Exception {
        loop.close();
        for (AutoCloseable c : owned) {
            c.close();
        }
    }

    private EventFd eventFd() {
        EventFd e = new EventFd(Linux.EFD_NONBLOCK);
        owned.add(e);
        return e;
    }

    /** Returns once every handler for events ready before now has run: a task queued now runs after them. */
    private void settle() {
        loop.call(() -> null);
        loop.call(() -> null);
    }

    private static void await(CountDownLatch latch, String what) throws InterruptedException {
        assertTrue(latch.await(HANG_SECONDS, TimeUnit.SECONDS), what);
    }

    @Test
    void handlersRunOnTheNamedDaemonLoopThread() throws Exception {
        EventFd e = eventFd();
        AtomicReference<Thread> ranOn = new AtomicReference<>();
        CountDownLatch ran = new CountDownLatch(1);
        loop.add(e, () -> {
            ranOn.set(Thread.currentThread());
            ran.countDown();
        });
        assertFalse(loop.isPaused(), "running once constructed");
        e.signal();
        await(ran, "handler did not run");
        assertEquals("ferry-devices-test", ranOn.get().getName());
        assertTrue(ranOn.get().isDaemon());
        assertSame(ranOn.get(), loop.call(Thread::currentThread), "tasks run on the same thread");
        assertFalse(loop.inLoopThread());
    }

    /** Walks every cell of the run-state table in {@link DeviceEventLoop}'s Javadoc. */
    @Test
    void runStateTableEveryCell() throws Exception {
        EventFd e = eventFd();
        AtomicInteger runs = new AtomicInteger();
        loop.add(e, runs::incrementAndGet);

        loop.resume(); // RUNNING, resume → RUNNING
        assertFalse(loop.isPaused());
        assertTrue(delivers(e, runs));
        loop.pause(); // RUNNING, pause → PAUSED
        assertTrue(loop.isPaused());
        assertFalse(delivers(e, runs));
        loop.pause(); // PAUSED, pause → PAUSED
        assertTrue(loop.isPaused());
        assertEquals(1, runs.get(), "held signal stays held");
        loop.resume(); // PAUSED, resume → RUNNING
        assertFalse(loop.isPaused());
        settle();
        assertEquals(2, runs.get(), "the signal held during the pause, delivered once");
        assertTrue(delivers(e, runs));

        Thread running = loop.call(Thread::currentThread);
        loop.close(); // RUNNING, close → CLOSED
        assertFalse(running.isAlive());
        try (DeviceEventLoop paused = new DeviceEventLoop("paused")) {
            Thread pausedThread = paused.call(Thread::currentThread);
            paused.pause();
            paused.close(); // PAUSED, close → CLOSED
            assertFalse(pausedThread.isAlive());
            paused.pause(); // CLOSED, pause / resume / close → CLOSED: no effect, no error
            paused.resume();
            paused.close();
            assertThrows(IllegalStateException.class, () -> paused.execute(() -> { }));
        }
    }

    /** Signals {@code e} and tells whether its handler (counting into {@code runs}) ran for it. */
    private boolean delivers(EventFd e, AtomicInteger runs) {
        int before = runs.get();
        e.signal();
        settle();
        return runs.get() > before;
    }

    @Test
    void signalsCoalesceButNoneIsLost() throws Exception {
        EventFd e = eventFd();
        int threads = 4;
        int perThread = 5_000;
        long total = (long) threads * perThread;
        AtomicLong counted = new AtomicLong();
        AtomicInteger runs = new AtomicInteger();
        CountDownLatch all = new CountDownLatch(1);
        loop.addCounted(e, n -> {
            runs.incrementAndGet();
            if (counted.addAndGet(n) == total) {
                all.countDown();
            }
        });
        List<Thread> signallers = new ArrayList<>();
        for (int i = 0; i < threads; i++) {
            Thread t = new Thread(() -> {
                for (int k = 0; k < perThread; k++) {
                    e.signal();
                }
            });
            t.start();
            signallers.add(t);
        }
        for (Thread t : signallers) {
            t.join();
        }
        await(all, "counted " + counted.get() + " of " + total);
        settle();
        assertEquals(total, counted.get());
        assertTrue(runs.get() <= total, runs.get() + " runs");
        assertEquals(0, e.consumeOrZero(), "the loop consumed the whole counter");
    }

    @Test
    void pauseWaitsForTheRunningHandlerAndRunsNoneUntilResumeWhileTasksStillRun() throws Exception {
        EventFd slow = eventFd();
        EventFd other = eventFd();
        CountDownLatch entered = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        AtomicBoolean slowFinished = new AtomicBoolean();
        AtomicLong otherCount = new AtomicLong();
        AtomicInteger otherRuns = new AtomicInteger();
        LinkedBlockingQueue<Long> otherRan = new LinkedBlockingQueue<>();
        loop.add(slow, () -> {
            entered.countDown();
            try {
                release.await();
            } catch (InterruptedException x) {
                Thread.currentThread().interrupt();
            }
            slowFinished.set(true);
        });
        loop.addCounted(other, n -> {
            otherRuns.incrementAndGet();
            otherCount.addAndGet(n);
            otherRan.add(n);
        });

        slow.signal();
        await(entered, "slow handler did not start");
        AtomicBoolean pauseReturned = new AtomicBoolean();
        AtomicBoolean finishedWhenPauseReturned = new AtomicBoolean();
        Thread pauser = new Thread(() -> {
            loop.pause();
            finishedWhenPauseReturned.set(slowFinished.get());
            pauseReturned.set(true);
        });
        pauser.start();
        while (!(loop.isPaused() && pauser.getState() == Thread.State.WAITING) && pauser.isAlive()) {
            Thread.onSpinWait(); // until pause() waits for the running handler
        }
        assertFalse(pauseReturned.get(), "pause() returned while a handler was running");
        assertTrue(loop.isPaused());
        release.countDown();
        pauser.join(TimeUnit.SECONDS.toMillis(HANG_SECONDS));
        assertTrue(pauseReturned.get());
        assertTrue(finishedWhenPauseReturned.get(), "pause() returned before the running handler finished");

        // Paused: signalled fds wait; tasks run.
        other.signal();
        other.signal();
        slow.signal();
        assertEquals("task", loop.call(() -> "task"));
        CountDownLatch executed = new CountDownLatch(1);
        loop.execute(executed::countDown);
        await(executed, "execute() did not run while paused");
        assertNull(otherRan.poll(100, TimeUnit.MILLISECONDS), "a handler ran while paused");
        assertEquals(0, otherRuns.get());

        loop.resume();
        assertFalse(loop.isPaused());
        assertEquals(2L, otherRan.poll(HANG_SECONDS, TimeUnit.SECONDS), "signals of the pause, delivered once");
        settle();
        assertEquals(1, otherRuns.get());
        assertEquals(2, otherCount.get());
    }

    @Test
    void pauseFromAHandlerReturnsAtOnceAndStopsTheOthers() throws Exception {
        EventFd first = eventFd();
        EventFd second = eventFd();
        AtomicInteger secondRuns = new AtomicInteger();
        CountDownLatch secondRan = new CountDownLatch(1);
        CountDownLatch paused = new CountDownLatch(1);
        loop.add(first, () -> {
            loop.pause();
            paused.countDown();
        });
        loop.add(second, () -> {
            secondRuns.incrementAndGet();
            secondRan.countDown();
        });
        first.signal();
        await(paused, "pause() from a handler did not return");
        assertTrue(loop.isPaused());
        second.signal();
        settle();
        assertEquals(0, secondRuns.get());
        loop.resume();
        await(secondRan, "signal of the pause not delivered after resume");
        settle();
        assertEquals(1, secondRuns.get());
    }

    @Test
    void timersFireAndCancelStopsAnArmedOne() throws Exception {
        CountDownLatch fired = new CountDownLatch(1);
        AtomicReference<Thread> firedOn = new AtomicReference<>();
        DeviceEventLoop.Timer timer = loop.timer(() -> {
            firedOn.set(Thread.currentThread());
            fired.countDown();
        });
        timer.arm(MILLI);
        await(fired, "timer did not fire");
        assertTrue(loop.call(() -> firedOn.get() == Thread.currentThread()));

        AtomicInteger cancelledRuns = new AtomicInteger();
        CountDownLatch rearmedFired = new CountDownLatch(1);
        DeviceEventLoop.Timer cancelled = loop.timer(() -> {
            cancelledRuns.incrementAndGet();
            rearmedFired.countDown();
        });
        CountDownLatch later = new CountDownLatch(1);
        DeviceEventLoop.Timer witness = loop.timer(later::countDown);
        cancelled.arm(20 * MILLI);
        cancelled.cancel();
        witness.arm(200 * MILLI); // expires well after the cancelled one would have
        await(later, "witness timer did not fire");
        settle();
        assertEquals(0, cancelledRuns.get(), "a cancelled timer fired");

        cancelled.arm(MILLI); // cancel() does not retire the timer: it can be armed again
        await(rearmedFired, "re-armed timer did not fire");
        settle();
        assertEquals(1, cancelledRuns.get());
    }

    @Test
    void cancelOfAnExpiryThatCameWhilePausedMeansItNeverFires() throws Exception {
        AtomicInteger runs = new AtomicInteger();
        DeviceEventLoop.Timer timer = loop.timer(runs::incrementAndGet);
        CountDownLatch witnessFired = new CountDownLatch(1);
        DeviceEventLoop.Timer witness = loop.timer(witnessFired::countDown);
        loop.pause();
        timer.arm(MILLI);
        Thread.sleep(20); // the timer most likely expires during the pause; cancel must win either way
        timer.cancel();
        loop.resume();
        witness.arm(MILLI);
        await(witnessFired, "witness timer did not fire");
        settle();
        assertEquals(0, runs.get());
    }

    @Test
    void aTimerExpiringWhilePausedFiresAfterResume() throws Exception {
        CountDownLatch fired = new CountDownLatch(1);
        AtomicBoolean pausedWhenFired = new AtomicBoolean();
        DeviceEventLoop.Timer timer = loop.timer(() -> {
            pausedWhenFired.set(loop.isPaused());
            fired.countDown();
        });
        loop.pause();
        timer.arm(MILLI);
        assertFalse(fired.await(50, TimeUnit.MILLISECONDS), "timer fired while paused");
        loop.resume();
        await(fired, "timer that expired during the pause did not fire after resume");
        assertFalse(pausedWhenFired.get());
    }

    @Test
    void closingARegistrationStopsDeliveryAndLeavesTheFdAlone() throws Exception {
        EventFd e = eventFd();
        AtomicInteger runs = new AtomicInteger();
        CountDownLatch first = new CountDownLatch(1);
        DeviceEventLoop.Registration r = loop.add(e, () -> {
            runs.incrementAndGet();
            first.countDown();
        });
        e.signal();
        await(first, "handler did not run");
        r.close();
        r.close();
        e.signal();
        settle();
        assertEquals(1, runs.get());
        assertEquals(1, e.consumeOrZero(), "the loop no longer reads the eventfd");
        assertTrue(e.fd().isOpen(), "the loop closed an fd it does not own");

        // The same fd can be registered again once removed.
        CountDownLatch again = new CountDownLatch(1);
        loop.add(e, again::countDown);
        e.signal();
        await(again, "re-registered eventfd not delivered");
    }

    @Test
    void aHandlerMayRemoveAnotherOfTheSameBatch() throws Exception {
        EventFd a = eventFd();
        EventFd b = eventFd();
        AtomicInteger runs = new AtomicInteger();
        CountDownLatch oneRan = new CountDownLatch(1);
        AtomicReference<DeviceEventLoop.Registration> ra = new AtomicReference<>();
        AtomicReference<DeviceEventLoop.Registration> rb = new AtomicReference<>();
        ra.set(loop.add(a, () -> {
            runs.incrementAndGet();
            rb.get().close();
            oneRan.countDown();
        }));
        rb.set(loop.add(b, () -> {
            runs.incrementAndGet();
            ra.get().close();
            oneRan.countDown();
        }));
        loop.call(() -> { // both ready before the loop next waits: most likely one batch
            a.signal();
            b.signal();
            return null;
        });
        await(oneRan, "neither handler ran");
        settle();
        assertEquals(1, runs.get(), "whichever ran first removed the other");
    }

    @Test
    void socketLikeFdsGetTheirReadyEvents() throws Exception {
        Fd[] pipe = Sys.pipe(Linux.O_NONBLOCK | Linux.O_CLOEXEC);
        owned.add(pipe[0]);
        owned.add(pipe[1]);
        LinkedBlockingQueue<Integer> events = new LinkedBlockingQueue<>();
        long buf = NativeMemory.allocate(16);
        try {
            loop.addFd(pipe[0], Linux.EPOLLIN, ready -> {
                events.add(ready);
                Sys.readNonBlocking(pipe[0], buf, 16);
            });
            NativeMemory.putLong(buf, 1);
            Sys.write(pipe[1], buf, 8);
            assertEquals(Linux.EPOLLIN, events.poll(HANG_SECONDS, TimeUnit.SECONDS));
            settle();
            assertTrue(events.isEmpty(), "drained pipe reported again: " + events);
        } finally {
            loop.close(); // before freeing what the handler reads into
            NativeMemory.free(buf);
        }
        try (DeviceEventLoop other = new DeviceEventLoop("refuses")) {
            assertThrows(IllegalArgumentException.class,
                    () -> other.addFd(pipe[0], Linux.EPOLLIN | Linux.EPOLLET, ready -> { }));
        }
    }

    @Test
    void refusesBlockingEventFdsAndEdgeTriggeredFds() {
        EventFd blocking = new EventFd(0);
        owned.add(blocking);
        assertThrows(IllegalArgumentException.class, () -> loop.add(blocking, () -> { }));
        assertThrows(IllegalArgumentException.class,
                () -> loop.addFd(eventFd().fd(), Linux.EPOLLIN | Linux.EPOLLONESHOT, ready -> { }));
    }

    @Test
    void aThrowingHandlerDoesNotStopTheLoop() throws Exception {
        EventFd e = eventFd();
        AtomicInteger runs = new AtomicInteger();
        CountDownLatch first = new CountDownLatch(1);
        CountDownLatch second = new CountDownLatch(1);
        loop.add(e, () -> {
            if (runs.incrementAndGet() == 1) {
                first.countDown();
                throw new IllegalStateException("handler failure on purpose (test)");
            }
            second.countDown();
        });
        loop.execute(() -> {
            throw new IllegalStateException("task failure on purpose (test)");
        });
        e.signal();
        await(first, "handler did not run");
        e.signal();
        await(second, "loop stopped after a handler threw");
        assertEquals(2, runs.get());
    }

    @Test
    void callRunsInlineOnTheLoopThreadAndPropagatesExceptions() throws Exception {
        assertEquals(List.of("outer", "inner", "outer again"), loop.call(() -> {
            List<String> order = new ArrayList<>();
            order.add("outer");
            loop.call(() -> order.add("inner")); // queued, it would deadlock here
            order.add("outer again");
            return order;
        }));
        IllegalArgumentException thrown = new IllegalArgumentException("from the task");
        assertSame(thrown, assertThrows(IllegalArgumentException.class, () -> loop.call(() -> {
            throw thrown;
        })));
        IOException checked = new IOException("checked");
        CompletionException wrapped = assertThrows(CompletionException.class, () -> loop.call(() -> {
            throw checked;
        }));
        assertSame(checked, wrapped.getCause());
        CompletionException inline = assertThrows(CompletionException.class, () -> loop.call(() -> loop.call(() -> {
            throw checked;
        })));
        assertSame(checked, inline.getCause());
    }

    @Test
    void closeJoinsTheThreadClosesWhatTheLoopOwnsAndRefusesLaterWork() throws Exception {
        new DeviceEventLoop("warm-up").close();
        EventFd e = new EventFd(Linux.EFD_NONBLOCK);
        FdLeakCheck leaks = FdLeakCheck.start();
        DeviceEventLoop closing = new DeviceEventLoop("closing");
        Thread thread = closing.call(Thread::currentThread);
        DeviceEventLoop.Registration r = closing.add(e, () -> { });
        DeviceEventLoop.Timer timer = closing.timer(() -> { });
        timer.arm(3_600_000 * MILLI);
        closing.close();
        assertFalse(thread.isAlive(), "close() returned before the loop thread ended");
        closing.close();
        r.close();
        timer.close();
        timer.cancel();
        assertTrue(e.fd().isOpen(), "the loop closed a caller's eventfd");
        assertThrows(IllegalStateException.class, () -> closing.add(e, () -> { }));
        assertThrows(IllegalStateException.class, () -> closing.timer(() -> { }));
        assertThrows(IllegalStateException.class, () -> closing.execute(() -> { }));
        assertThrows(IllegalStateException.class, () -> closing.call(() -> 1));
        assertThrows(IllegalStateException.class, () -> timer.arm(MILLI));
        e.close();
        assertNoAnonInodeLeaks(leaks);
    }

    @Test
    void closeWaitsForTheRunningHandlerAndNoneRunsAfter() throws Exception {
        EventFd e = eventFd();
        CountDownLatch entered = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        AtomicInteger runs = new AtomicInteger();
        AtomicBoolean running = new AtomicBoolean();
        loop.add(e, () -> {
            running.set(true);
            runs.incrementAndGet();
            entered.countDown();
            try {
                release.await();
            } catch (InterruptedException x) {
                Thread.currentThread().interrupt();
            }
            running.set(false);
        });
        e.signal();
        await(entered, "handler did not start");
        e.signal();
        Thread closer = new Thread(loop::close);
        closer.start();
        while (closer.getState() != Thread.State.WAITING && closer.isAlive()) {
            Thread.onSpinWait();
        }
        release.countDown();
        closer.join(TimeUnit.SECONDS.toMillis(HANG_SECONDS));
        assertFalse(closer.isAlive());
        assertFalse(running.get(), "close() returned while a handler ran");
        assertEquals(1, runs.get(), "a handler ran after close()");
    }

    @Test
    void closeFromAHandlerEndsTheLoopAfterIt() throws Exception {
        EventFd e = eventFd();
        AtomicReference<Thread> loopThread = new AtomicReference<>();
        CountDownLatch closed = new CountDownLatch(1);
        loop.add(e, () -> {
            loopThread.set(Thread.currentThread());
            loop.close(); // returns at once: the thread cannot join itself
            closed.countDown();
        });
        e.signal();
        await(closed, "close() from a handler did not return");
        loopThread.get().join(TimeUnit.SECONDS.toMillis(HANG_SECONDS));
        assertFalse(loopThread.get().isAlive());
        assertThrows(IllegalStateException.class, () -> loop.execute(() -> { }));
    }

    @Test
    void pendingCallsFailWhenTheLoopClosesFirst() throws Exception {
        CountDownLatch entered = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        loop.execute(() -> {
            entered.countDown();
            try {
                release.await();
            } catch (InterruptedException x) {
                Thread.currentThread().interrupt();
            }
            loop.close(); // from the loop thread: the queued call below never runs
        });
        await(entered, "task did not start");
        AtomicReference<Throwable> callEnd = new AtomicReference<>();
        Thread caller = new Thread(() -> {
            try {
                loop.call(() -> "never");
            } catch (Throwable t) {
                callEnd.set(t);
            }
        });
        caller.start();
        while (caller.getState() != Thread.State.WAITING && caller.isAlive()) {
            Thread.onSpinWait();
        }
        release.countDown();
        caller.join(TimeUnit.SECONDS.toMillis(HANG_SECONDS));
        assertFalse(caller.isAlive(), "call() hung on a closed loop");
        assertInstanceOf(IllegalStateException.class, callEnd.get());
    }

    /**
     * The fds epoll, eventfds and timerfds use are anonymous inodes; only those count here. Other
     * threads of the JVM open files of their own now and then (cgroup limits, /dev/urandom), which
     * a process-wide check would blame on the code under test.
     */
    private static void assertNoAnonInodeLeaks(FdLeakCheck leaks) {
        java.util.Map<Integer, String> leaked = new java.util.TreeMap<>(leaks.leaked());
        leaked.values().removeIf(target -> !target.startsWith("anon_inode:"));
        assertTrue(leaked.isEmpty(), () -> "fds leaked: " + leaked);
    }
}
