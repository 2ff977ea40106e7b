package dev.ferry.core.sys;

/**
 * Kernel constants the bindings use (x86-64). Each one is checked against the host's headers by
 * {@code HeaderProbeTest} when gcc is present.
 */
public final class Linux {
    public static final int MFD_CLOEXEC = 0x0001;
    public static final int MFD_ALLOW_SEALING = 0x0002;
    /** A memfd on the kernel's internal hugetlbfs: pages come from the huge page pool. */
    public static final int MFD_HUGETLB = 0x0004;
    /** With {@link #MFD_HUGETLB}: 2 MiB pages ({@code 21 << MFD_HUGE_SHIFT}). */
    public static final int MFD_HUGE_2MB = 21 << 26;

    public static final int PROT_NONE = 0x0;
    public static final int PROT_READ = 0x1;
    public static final int PROT_WRITE = 0x2;
    public static final int MAP_SHARED = 0x01;
    public static final int MAP_PRIVATE = 0x02;
    public static final int MAP_ANONYMOUS = 0x20;
    public static final int MAP_NORESERVE = 0x4000;
    public static final int MAP_POPULATE = 0x8000;
    public static final int MAP_HUGETLB = 0x40000;
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

    /** epoll_create1 flag (sys/epoll.h). */
    public static final int EPOLL_CLOEXEC = 02000000;
    public static final int EPOLL_CTL_ADD = 1;
    public static final int EPOLL_CTL_DEL = 2;
    public static final int EPOLL_CTL_MOD = 3;
    public static final int EPOLLIN = 0x001;
    public static final int EPOLLOUT = 0x004;
    public static final int EPOLLERR = 0x008;
    public static final int EPOLLHUP = 0x010;
    public static final int EPOLLRDHUP = 0x2000;
    public static final int EPOLLONESHOT = 1 << 30;
    public static final int EPOLLET = 1 << 31;
    /**
     * {@code struct epoll_event}, packed on x86-64 (no padding between the fields):
     * <pre>
     *   0      4                  12
     *   +------+------------------+
     *   |events| data (u64)       |
     *   +------+------------------+
     * </pre>
     */
    public static final int EPOLL_EVENT_SIZE = 12;
    public static final int EPOLL_EVENT_EVENTS_OFFSET = 0;
    public static final int EPOLL_EVENT_DATA_OFFSET = 4;

    /** time.h: the clock timerfds count on; never jumps with wall-clock changes. */
    public static final int CLOCK_MONOTONIC = 1;
    public static final int TFD_NONBLOCK = 04000;
    public static final int TFD_CLOEXEC = 02000000;
    /**
     * {@code struct itimerspec} of two {@code struct timespec} (each {@code time_t tv_sec; long
     * tv_nsec;}, 16 bytes):
     * <pre>
     *   0                16               32
     *   +----------------+----------------+
     *   | it_interval    | it_value       |   it_value = 0 disarms; it_interval = 0 fires once
     *   | sec  | nsec    | sec  | nsec    |
     *   +----------------+----------------+
     * </pre>
     */
    public static final int ITIMERSPEC_SIZE = 32;
    public static final int ITIMERSPEC_INTERVAL_OFFSET = 0;
    public static final int ITIMERSPEC_VALUE_OFFSET = 16;
    public static final int TIMESPEC_SEC_OFFSET = 0;
    public static final int TIMESPEC_NSEC_OFFSET = 8;

    private Linux() {
    }
}
