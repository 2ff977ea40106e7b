package dev.ferry.core.sys;

import dev.ferry.core.testing.FdLeakCheck;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Ownership rules of {@link Fd} and the errors of {@link Sys}, against the real kernel. */
class FdTest {
    private static final String MISSING = "/nonexistent/ferry-fd-test/no-such-file";

    /** Whether the kernel has {@code fd} open, asked without going through any Fd object. */
    private static boolean kernelHasOpen(int fd) {
        return Sys.libc().fcntl(fd, Linux.F_GETFD, 0) >= 0;
    }

    @Test
    void closeClosesTheKernelFdOnce() {
        Fd fd = Sys.eventfd(0, Linux.EFD_CLOEXEC);
        int n = fd.get();
        assertTrue(kernelHasOpen(n));
        fd.close();
        assertFalse(fd.isOpen());
        assertFalse(kernelHasOpen(n), "close() must close fd " + n);
        assertEquals(Errno.EBADF, Sys.errno());
    }

    @Test
    void secondCloseIsANoOpEvenWhenTheNumberWasReused() {
        Fd first = Sys.eventfd(0, Linux.EFD_CLOEXEC);
        int n = first.get();
        first.close();
        // The kernel hands out the lowest free number: most likely n again.
        try (Fd second = Sys.eventfd(0, Linux.EFD_CLOEXEC)) {
            first.close();
            assertTrue(second.isOpen());
            assertTrue(kernelHasOpen(second.get()), "closing " + first + " again closed " + second
                    + (second.get() == n ? " (same number reused)" : ""));
        }
    }

    @Test
    void getAfterCloseThrowsAndNamesTheFd() {
        Fd fd = Sys.eventfd(0, Linux.EFD_CLOEXEC);
        fd.close();
        IllegalStateException e = assertThrows(IllegalStateException.class, fd::get);
        assertTrue(e.getMessage().contains("eventfd"), e.getMessage());
        assertTrue(fd.toString().contains("closed"), fd.toString());
    }

    @Test
    void releaseHandsOverTheNumberWithoutClosingIt() {
        Fd fd = Sys.eventfd(0, Linux.EFD_CLOEXEC);
        int n = fd.get();
        int released = fd.release();
        assertEquals(n, released);
        assertFalse(fd.isOpen());
        assertThrows(IllegalStateException.class, fd::get);
        assertThrows(IllegalStateException.class, fd::release, "a second release has nothing to hand over");
        fd.close();
        assertTrue(kernelHasOpen(n), "close() after release() must not close the handed-over fd");
        new Fd(released, "new owner").close();
        assertFalse(kernelHasOpen(n));
    }

    @Test
    void negativeNumberIsRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Fd(-1, "bogus"));
        assertTrue(e.getMessage().contains("bogus"), e.getMessage());
    }

    @Test
    void failedOpenCarriesCallErrnoAndPath() {
        NativeCallException e = assertThrows(NativeCallException.class, () -> Sys.open(MISSING, Linux.O_RDONLY));
        assertEquals("open", e.call());
        assertEquals(Errno.ENOENT, e.errno());
        assertTrue(e.getMessage().startsWith("open("), e.getMessage());
        assertTrue(e.getMessage().contains(MISSING), e.getMessage());
        assertTrue(e.getMessage().contains("ENOENT"), e.getMessage());
        assertTrue(e.getMessage().contains("No such file or directory"), e.getMessage());
    }

    @Test
    void failedIoctlIsNamedAfterTheRequest() {
        try (Fd fd = Sys.eventfd(0, Linux.EFD_CLOEXEC)) {
            NativeCallException e = assertThrows(NativeCallException.class,
                    () -> Sys.ioctl(fd, Ioctl.io(0xAE, 0x80), 0, "KVM_RUN"));
            assertEquals("KVM_RUN", e.call());
            assertEquals(Errno.ENOTTY, e.errno());
            assertTrue(e.getMessage().startsWith("KVM_RUN(eventfd"), e.getMessage());
            assertEquals(-Errno.ENOTTY, Sys.ioctlErrno(fd, Ioctl.io(0xAE, 0x80), 0));
        }
    }

    @Test
    void dupOwnsAnIndependentFd() {
        try (Fd a = Sys.eventfd(0, Linux.EFD_CLOEXEC); Fd b = Sys.dup(a)) {
            assertTrue(b.get() != a.get());
            assertEquals(a.description(), b.description());
            a.close();
            assertTrue(kernelHasOpen(b.get()));
        }
    }

    @Test
    void pipeEndsAreOwnedAndClosed() {
        Sys.pipe(Linux.O_CLOEXEC); // warm up: the first call loads classes and native stubs
        FdLeakCheck leaks = FdLeakCheck.start();
        Fd[] p = Sys.pipe(Linux.O_CLOEXEC);
        assertEquals(2, leaks.leaked().size(), "pipe2 opens two fds: " + leaks.leaked());
        p[0].close();
        p[1].close();
        leaks.assertNoLeaks();
    }

    @Test
    void fdLeakCheckReportsALeakedFd() {
        FdLeakCheck leaks = FdLeakCheck.start();
        Fd fd = Sys.memfdCreate("ferry-leak-probe", Linux.MFD_CLOEXEC);
        try {
            AssertionError e = assertThrows(AssertionError.class, leaks::assertNoLeaks);
            assertTrue(e.getMessage().contains("fd " + fd.get() + " -> /memfd:ferry-leak-probe"), e.getMessage());
            assertEquals(FdLeakCheck.openFdCount(), FdLeakCheck.openFds().size());
        } finally {
            fd.close();
        }
        leaks.assertNoLeaks();
    }
}
