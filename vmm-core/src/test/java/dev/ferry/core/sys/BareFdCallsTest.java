package dev.ferry.core.sys;

import dev.ferry.core.testing.FdLeakCheck;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link Sys}'s calls on bare fd numbers, for layers that own fds as numbers (VFIO's syscall seam). */
class BareFdCallsTest {
    @Test
    void readWriteAndCloseWorkOnNumbers() {
        Fd[] warm = Sys.pipe(Linux.O_CLOEXEC); // loads libc and what the JVM opens lazily for it
        Sys.close(warm[0].release(), "pipe:r");
        Sys.close(warm[1].release(), "pipe:w");
        FdLeakCheck leaks = FdLeakCheck.start();
        Fd[] pipe = Sys.pipe(Linux.O_CLOEXEC);
        int r = pipe[0].release();
        int w = pipe[1].release();
        long buf = NativeMemory.allocate(16);
        try {
            NativeMemory.putLong(buf, 0x0123456789abcdefL);
            assertEquals(8, Sys.write(w, buf, 8));
            NativeMemory.putLong(buf, 0);
            assertEquals(8, Sys.read(r, buf, 16));
            assertEquals(0x0123456789abcdefL, NativeMemory.getLong(buf));
            Sys.close(w, "pipe:w");
            assertEquals(0, Sys.read(r, buf, 16), "EOF once the write end is closed");
            Sys.close(r, "pipe:r");
            NativeCallException e = assertThrows(NativeCallException.class, () -> Sys.read(r, buf, 16));
            assertEquals(Errno.EBADF, e.errno());
            assertThrows(NativeCallException.class, () -> Sys.close(r, "pipe:r"));
        } finally {
            NativeMemory.free(buf);
        }
        leaks.assertNoLeaks();
    }

    @Test
    void ioctlNamesTheRequestAndKeepsTheErrno() {
        try (Fd efd = Sys.eventfd(0, Linux.EFD_CLOEXEC)) {
            long request = Ioctl.io(';', 100); // VFIO_GET_API_VERSION: not an eventfd ioctl
            NativeCallException e = assertThrows(NativeCallException.class,
                    () -> Sys.ioctl(efd.get(), request, 0, "VFIO_GET_API_VERSION"));
            assertEquals(Errno.ENOTTY, e.errno());
            assertTrue(e.getMessage().startsWith("VFIO_GET_API_VERSION(fd " + efd.get() + ")"), e.getMessage());
        }
    }
}
