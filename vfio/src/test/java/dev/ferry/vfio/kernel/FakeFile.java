package dev.ferry.vfio.kernel;

import static dev.ferry.core.sys.Errno.EINVAL;
import static dev.ferry.vfio.kernel.FakeVfioKernel.fail;

/** An open file: what an fd points to, alive while fds or other objects reference it. */
abstract class FakeFile {
    final FakeVfioKernel kernel;
    final String what;
    /** Fds and kernel objects holding this file; {@link #release()} runs when the last lets go. */
    int refs = 1;

    FakeFile(FakeVfioKernel kernel, String what) {
        this.kernel = kernel;
        this.what = what;
    }

    /** Whether {@code request}'s argument is a struct starting with argsz/size (for the call log). */
    boolean takesStruct(long request) {
        return false;
    }

    abstract int ioctl(long request, long arg);

    long read(long address, long length) {
        throw fail("read", EINVAL, what + " cannot be read");
    }

    long write(long address, long length) {
        throw fail("write", EINVAL, what + " cannot be written");
    }

    void release() {
    }
}
