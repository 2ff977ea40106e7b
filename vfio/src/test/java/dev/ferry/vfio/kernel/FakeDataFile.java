package dev.ferry.vfio.kernel;

import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.uapi.VfioIoctls;

import static dev.ferry.core.sys.Errno.EBADF;
import static dev.ferry.core.sys.Errno.ENOTTY;
import static dev.ferry.vfio.kernel.FakeVfioKernel.fail;
import static dev.ferry.vfio.kernel.FakeVfioKernel.need;
import static dev.ferry.vfio.kernel.FakeVfioKernel.u32;

/**
 * A migration data fd in the {@link FakeVfioKernel}: read-only when saving, write-only when
 * resuming (as the drivers' anon_inode files are opened), -1/ENOMSG for the driver's "nothing now",
 * VFIO_MIG_GET_PRECOPY_INFO its only ioctl. Closing it closes the driver's session handle.
 */
final class FakeDataFile extends FakeFile {
    final VfioDataFd session;
    final boolean saving;

    FakeDataFile(FakeVfioKernel kernel, FakeHostDevice device, VfioDataFd session, boolean saving) {
        super(kernel, (saving ? "[saving] " : "[resuming] ") + device.pciAddress());
        this.session = session;
        this.saving = saving;
    }

    @Override
    boolean takesStruct(long request) {
        return request == VfioIoctls.VFIO_MIG_GET_PRECOPY_INFO;
    }

    @Override
    int ioctl(long request, long arg) {
        String name = KernelIoctlNames.of(request);
        if (request != VfioIoctls.VFIO_MIG_GET_PRECOPY_INFO) {
            throw fail(name, ENOTTY, "not a data fd ioctl");
        }
        need(arg, name);
        int argsz = u32(arg, 0);
        if (argsz < 24) {
            throw kernel.shortArgsz(name, argsz, 24);
        }
        try {
            var info = session.precopyInfo();
            NativeMemory.putLong(arg + 8, info.initialBytes());
            NativeMemory.putLong(arg + 16, info.dirtyBytes());
            return 0;
        } catch (VfioException e) {
            throw fail(name, e.errno(), e.getMessage());
        }
    }

    @Override
    long read(long address, long length) {
        if (!saving) {
            throw fail("read", EBADF, what + " is opened write-only");
        }
        try {
            long n = session.read(address, length);
            if (n == VfioDataFd.NO_DATA) {
                throw fail("read", Errno.ENOMSG, what + ": no data now");
            }
            return n;
        } catch (VfioException e) {
            throw fail("read", e.errno(), e.getMessage());
        }
    }

    @Override
    long write(long address, long length) {
        if (saving) {
            throw fail("write", EBADF, what + " is opened read-only");
        }
        try {
            return session.write(address, length);
        } catch (VfioException e) {
            throw fail("write", e.errno(), e.getMessage());
        }
    }

    @Override
    void release() {
        session.close();
    }
}
