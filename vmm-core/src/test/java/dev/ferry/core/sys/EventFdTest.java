package dev.ferry.core.sys;

import dev.ferry.core.testing.FdLeakCheck;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

class EventFdTest {
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
}
