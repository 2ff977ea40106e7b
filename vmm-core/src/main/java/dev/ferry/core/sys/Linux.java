package dev.ferry.core.sys;

/**
 * Kernel constants the bindings use (x86-64). Each one is checked against the host's headers by
 * {@code HeaderProbeTest} when gcc is present.
 */
public final class Linux {
    public static final int MFD_CLOEXEC = 0x0001;
    public static final int MFD_ALLOW_SEALING = 0x0002;

    public static final int PROT_NONE = 0x0;
    public static final int PROT_READ = 0x1;
    public static final int PROT_WRITE = 0x2;
    public static final int MAP_SHARED = 0x01;
    public static final int MAP_PRIVATE = 0x02;
    public static final int MAP_ANONYMOUS = 0x20;
    public static final int MAP_NORESERVE = 0x4000;
    public static final long MAP_FAILED = -1L;
    public static final int MADV_DONTNEED = 4;
    public static final int MADV_REMOVE = 9;
    /** Linux 5.14+: populate (allocate, write-fault) page tables for a range in one call. */
    public static final int MADV_POPULATE_WRITE = 23;

    public static final int EFD_CLOEXEC = 02000000;
    public static final int EFD_NONBLOCK = 04000;
    public static final int EFD_SEMAPHORE = 1;

    public static final short POLLIN = 0x001;
    public static final short POLLOUT = 0x004;
    public static final short POLLERR = 0x008;
    public static final short POLLHUP = 0x010;
    public static final short POLLNVAL = 0x020;
    /** {@code sizeof(struct pollfd)}: int fd; short events; short revents. */
    public static final int POLLFD_SIZE = 8;

    public static final int O_RDONLY = 0;
    public static final int O_WRONLY = 01;
    public static final int O_RDWR = 02;
    public static final int O_NONBLOCK = 04000;
    public static final int O_CLOEXEC = 02000000;

    public static final int F_GETFD = 1;
    public static final int F_GETFL = 3;
    public static final int F_SETFL = 4;

    public static final int SEEK_DATA = 3;
    public static final int SEEK_HOLE = 4;

    public static final long PAGE_SIZE = 4096;

    private Linux() {
    }
}
