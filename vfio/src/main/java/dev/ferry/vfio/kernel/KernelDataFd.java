package dev.ferry.vfio.kernel;

import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.vfio.device.PrecopyInfo;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.uapi.VfioDeviceState;
import dev.ferry.vfio.uapi.VfioIoctls;
import dev.ferry.vfio.uapi.VfioPrecopyInfo;

/**
 * A migration data fd the kernel returned in {@code vfio_device_feature_mig_state.data_fd}: owns
 * the fd and closes it once. read(2) and write(2) go straight to the kernel; {@code -1/ENOMSG}
 * becomes {@link #NO_DATA}, everything else negative a {@link VfioException} with the errno.
 * After the session's states are left the kernel fails reads and writes with ENODEV; the fd stays
 * open until {@link #close()}.
 *
 * <p>One thread at a time (the migration thread); the PRECOPY_INFO flyweight is reused.
 */
public final class KernelDataFd implements VfioDataFd {
    private final VfioSyscalls sys;
    private final int fd;
    private final String what;
    private final VfioPrecopyInfo info = new VfioPrecopyInfo();
    private boolean closed;

    KernelDataFd(VfioSyscalls sys, int fd, String device, VfioDeviceState openedBy) {
        this.sys = sys;
        this.fd = fd;
        this.what = device + " data_fd " + fd + " (" + openedBy + ")";
    }

    /** The kernel's fd number (for logs and for a fake kernel's bookkeeping in tests). */
    public int fd() {
        return fd;
    }

    @Override
    public long read(long address, long length) throws VfioException {
        checkOpen("read(data_fd)");
        try {
            return sys.read(fd, address, length);
        } catch (NativeCallException e) {
            if (e.errno() == Errno.ENOMSG) {
                return NO_DATA;
            }
            throw new VfioException("read(data_fd)", e.errno(), what, e);
        }
    }

    @Override
    public long write(long address, long length) throws VfioException {
        checkOpen("write(data_fd)");
        try {
            return sys.write(fd, address, length);
        } catch (NativeCallException e) {
            throw new VfioException("write(data_fd)", e.errno(), what, e);
        }
    }

    @Override
    public PrecopyInfo precopyInfo() throws VfioException {
        checkOpen("VFIO_MIG_GET_PRECOPY_INFO");
        info.prepare();
        try {
            sys.ioctl(fd, VfioIoctls.VFIO_MIG_GET_PRECOPY_INFO, info.address());
        } catch (NativeCallException e) {
            throw new VfioException("VFIO_MIG_GET_PRECOPY_INFO", e.errno(), what, e);
        }
        return new PrecopyInfo(info.initialBytes(), info.dirtyBytes());
    }

    /** Whether {@link #close()} has run. */
    public boolean isClosed() {
        return closed;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        info.close();
        sys.close(fd);
    }

    private void checkOpen(String op) throws VfioException {
        if (closed) {
            throw new VfioException(op, Errno.EBADF, what + " is closed");
        }
    }

    @Override
    public String toString() {
        return what + (closed ? " (closed)" : "");
    }
}
