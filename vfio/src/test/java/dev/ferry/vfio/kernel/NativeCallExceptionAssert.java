package dev.ferry.vfio.kernel;

import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.NativeCallException;
import org.junit.jupiter.api.function.Executable;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Asserts a raw syscall failed with a given errno. */
final class NativeCallExceptionAssert {
    private NativeCallExceptionAssert() {
    }

    static NativeCallException failsWith(int errno, Executable call) {
        NativeCallException e = assertThrows(NativeCallException.class, call);
        assertEquals(Errno.name(errno), Errno.name(e.errno()), e.getMessage());
        return e;
    }
}
