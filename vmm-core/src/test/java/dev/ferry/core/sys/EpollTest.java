package dev.ferry.core.sys;

import dev.ferry.core.testing.FdLeakCheck;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link Epoll} and the epoll calls of {@link Sys}, against the real kernel. */
class EpollTest {
    /** Only reached when the kernel never reports an fd that is ready. */
    private static final int HANG_MILLIS = 60_000;

    @Test
    void reportsAReadyFdWithItsToken() {
        try (Epoll epoll = new Epoll(4); EventFd e = new EventFd(Linux.EFD_NONBLOCK)) {
            long token = 0x1234_5678_9abc_def0L;
            epoll.add(e.fd(), Linux.EPOLLIN, token);
            assertEquals(0, epoll.await(0), "nothing signalled yet");
            e.signal();
            assertEquals(1, epoll.await(HANG_MILLIS));
            assertEquals(token, epoll.data(0));
            assertEquals(Linux.EPOLLIN, epoll.events(0));
            assertEquals(1, epoll.await(0), "level-triggered: still ready until consumed");
            e.consume();
            assertEquals(0, epoll.await(0));
        }
    }

    /** Several entries at once walk the packed 12-byte stride: a 16-byte one would garble tokens 2 and 3. */
    @Test
    void manyReadyFdsKeepTheirTokens() {
        try (Epoll epoll = new Epoll(8)) {
            Map<Long, EventFd> byToken = new HashMap<>();
            try {
                for (long token : new long[] {-2L, 0x7fff_ffff_ffff_ffffL, 42L}) {
                    EventFd e = new EventFd(Linux.EFD_NONBLOCK);
                    byToken.put(token, e);
                    epoll.add(e.fd(), Linux.EPOLLIN | Linux.EPOLLRDHUP, token);
                    e.signal();
                }
                assertEquals(3, epoll.await(HANG_MILLIS));
                Map<Long, Integer> seen = new HashMap<>();
                for (int i = 0; i < 3; i++) {
                    seen.put(epoll.data(i), epoll.events(i));
                }
                assertEquals(Map.of(-2L, Linux.EPOLLIN, 0x7fff_ffff_ffff_ffffL, Linux.EPOLLIN, 42L, Linux.EPOLLIN), seen);
                assertThrows(IndexOutOfBoundsException.class, () -> epoll.data(3));
            } finally {
                byToken.values().forEach(EventFd::close);
            }
        }
    }

    @Test
    void modifyChangesEventsAndTokenAndDeleteStopsReports() {
        try (Epoll epoll = new Epoll(4); EventFd e = new EventFd(Linux.EFD_NONBLOCK)) {
            epoll.add(e.fd(), Linux.EPOLLIN, 1);
            epoll.modify(e.fd(), Linux.EPOLLOUT, 2); // an eventfd far from its maximum is writable
            assertEquals(1, epoll.await(HANG_MILLIS));
            assertEquals(2, epoll.data(0));
            assertEquals(Linux.EPOLLOUT, epoll.events(0));
            epoll.delete(e.fd());
            e.signal();
            assertEquals(0, epoll.await(0));
        }
    }

    @Test
    void errorsNameTheCallAndTheOperation() {
        try (Epoll epoll = new Epoll(4); EventFd e = new EventFd(Linux.EFD_NONBLOCK)) {
            epoll.add(e.fd(), Linux.EPOLLIN, 1);
            NativeCallException twice = assertThrows(NativeCallException.class, () -> epoll.add(e.fd(), Linux.EPOLLIN, 1));
            assertEquals("epoll_ctl", twice.call());
            assertEquals(Errno.EEXIST, twice.errno());
            assertTrue(twice.getMessage().contains("EPOLL_CTL_ADD"), twice.getMessage());
            epoll.delete(e.fd());
            NativeCallException gone = assertThrows(NativeCallException.class, () -> epoll.delete(e.fd()));
            assertEquals(Errno.ENOENT, gone.errno());
            assertTrue(gone.getMessage().contains("EPOLL_CTL_DEL"), gone.getMessage());
        }
        NativeCallException create = assertThrows(NativeCallException.class, () -> Sys.epollCreate(Linux.EPOLLIN));
        assertEquals("epoll_create1", create.call());
        assertEquals(Errno.EINVAL, create.errno());
        assertThrows(IllegalArgumentException.class, () -> new Epoll(0));
    }

    @Test
    void closeClosesTheFdOnceAndLaterUseIsIllegalState() {
        new Epoll(1).close(); // warm-up: libc and the classes load before the leak check starts
        FdLeakCheck leaks = FdLeakCheck.start();
        Epoll epoll = new Epoll(16);
        EventFd e = new EventFd(Linux.EFD_NONBLOCK);
        epoll.add(e.fd(), Linux.EPOLLIN, 7);
        epoll.close();
        epoll.close();
        assertFalse(epoll.fd().isOpen());
        assertThrows(IllegalStateException.class, () -> epoll.add(e.fd(), Linux.EPOLLIN, 7));
        assertThrows(IllegalStateException.class, () -> epoll.await(0));
        assertThrows(IndexOutOfBoundsException.class, () -> epoll.data(0));
        e.close();
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
