package dev.ferry.core.sys;

import dev.ferry.core.testing.FdLeakCheck;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link TimerFd} against the real kernel. Readiness is awaited through epoll, as the device loop
 * does; no test asserts how long anything took.
 */
class TimerFdTest {
    /** Only reached when an armed timer never fires. */
    private static final int HANG_MILLIS = 60_000;
    private static final long MILLI = 1_000_000L;

    @Test
    void anArmedTimerBecomesReadableAndCountsOneExpiry() {
        try (TimerFd t = new TimerFd(); Epoll epoll = new Epoll(1)) {
            epoll.add(t.fd(), Linux.EPOLLIN, 1);
            assertEquals(0, t.expirations(), "not armed: nothing to read, and no blocking");
            t.arm(MILLI);
            assertEquals(1, epoll.await(HANG_MILLIS));
            assertEquals(1, t.expirations());
            assertEquals(0, t.expirations(), "read resets the count");
            assertEquals(0, epoll.await(0));
        }
    }

    @Test
    void disarmForgetsAnExpiryNotYetRead() {
        try (TimerFd t = new TimerFd(); Epoll epoll = new Epoll(1)) {
            epoll.add(t.fd(), Linux.EPOLLIN, 1);
            t.arm(0); // ≤ 0 means as soon as possible, not "disarmed"
            assertEquals(1, epoll.await(HANG_MILLIS));
            t.disarm();
            assertEquals(0, t.expirations());
            assertEquals(0, epoll.await(0));
        }
    }

    @Test
    void aPeriodicTimerKeepsFiring() {
        try (TimerFd t = new TimerFd(); Epoll epoll = new Epoll(1)) {
            epoll.add(t.fd(), Linux.EPOLLIN, 1);
            t.armPeriodic(MILLI, MILLI);
            for (int i = 0; i < 3; i++) {
                assertEquals(1, epoll.await(HANG_MILLIS));
                assertTrue(t.expirations() >= 1);
            }
            assertThrows(IllegalArgumentException.class, () -> t.armPeriodic(MILLI, 0));
        }
    }

    @Test
    void delaysOfSecondsSplitIntoTheTimespecFields() {
        try (TimerFd t = new TimerFd(); Epoll epoll = new Epoll(1)) {
            epoll.add(t.fd(), Linux.EPOLLIN, 1);
            t.arm(3_600_000 * MILLI + 1); // an hour: tv_sec 3600, tv_nsec 1 — EINVAL if tv_nsec overflowed
            assertEquals(0, epoll.await(0));
            t.disarm();
        }
    }

    @Test
    void errorsNameTheCall() {
        NativeCallException create = assertThrows(NativeCallException.class,
                () -> Sys.timerfdCreate(-1, Linux.TFD_CLOEXEC));
        assertEquals("timerfd_create", create.call());
        assertEquals(Errno.EINVAL, create.errno());
        long spec = NativeMemory.allocate(Linux.ITIMERSPEC_SIZE);
        try (Fd fd = Sys.timerfdCreate(Linux.CLOCK_MONOTONIC, Linux.TFD_CLOEXEC)) {
            NativeMemory.putLong(spec + Linux.ITIMERSPEC_VALUE_OFFSET + Linux.TIMESPEC_NSEC_OFFSET, 1_000_000_000L);
            NativeCallException set = assertThrows(NativeCallException.class, () -> Sys.timerfdSettime(fd, 0, spec));
            assertEquals("timerfd_settime", set.call());
            assertEquals(Errno.EINVAL, set.errno());
        } finally {
            NativeMemory.free(spec);
        }
    }

    @Test
    void closeIsIdempotentAndLaterUseIsIllegalState() {
        new TimerFd().close(); // warm-up before the leak check
        FdLeakCheck leaks = FdLeakCheck.start();
        TimerFd t = new TimerFd();
        t.arm(MILLI);
        t.close();
        t.close();
        assertFalse(t.fd().isOpen());
        assertThrows(IllegalStateException.class, () -> t.arm(MILLI));
        assertThrows(IllegalStateException.class, t::disarm);
        assertThrows(IllegalStateException.class, t::expirations);
        assertNoAnonInodeLeaks(leaks);
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
