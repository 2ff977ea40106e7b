package dev.ferry.vfio.kernel;

import dev.ferry.core.sys.Sys;

/**
 * {@link VfioSyscalls} on the real kernel, through {@code core.sys}. Stateless and thread-safe;
 * EINTR is retried there.
 */
public final class NativeVfioSyscalls implements VfioSyscalls {
    @Override
    public int open(String path, int flags) {
        // Sys.open hands back an owned Fd; ownership moves to the caller as a bare number
        return Sys.open(path, flags).release();
    }

    @Override
    public void close(int fd) {
        Sys.close(fd, "vfio");
    }

    @Override
    public int ioctl(int fd, long request, long argAddress) {
        return Sys.ioctl(fd, request, argAddress, KernelIoctlNames.of(request));
    }

    @Override
    public long read(int fd, long address, long length) {
        return Sys.read(fd, address, length);
    }

    @Override
    public long write(int fd, long address, long length) {
        return Sys.write(fd, address, length);
    }
}
