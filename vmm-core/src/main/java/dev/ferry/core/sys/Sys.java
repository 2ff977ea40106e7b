package dev.ferry.core.sys;

import jnr.ffi.LibraryLoader;
import jnr.ffi.Runtime;

/**
 * The middle layer: each libc call once, with errno turned into a {@link NativeCallException}
 * that names the call. Everything else in Ferry calls the kernel through here (or through
 * {@link Fd}, {@link Mapping} and friends, which call here).
 *
 * <p>Thread-safe: jnr-ffi stores errno per thread.
 */
public final class Sys {
    private static final LibC LIBC = LibraryLoader.create(LibC.class).load("c");
    private static final Runtime RUNTIME = Runtime.getRuntime(LIBC);
    /** Where {@link #eventfdReadOrZero} lets jnr-ffi copy the counter out: one per thread, reused. */
    private static final ThreadLocal<long[]> EVENTFD_VALUE = ThreadLocal.withInitial(() -> new long[1]);

    private Sys() {
    }

    /** The raw binding, for the few callers in {@code sys}-like layers (KVM, VFIO) that need it. */
    public static LibC libc() {
        return LIBC;
    }

    public static int errno() {
        return RUNTIME.getLastError();
    }

    static String strerror(int errno) {
        try {
            return LIBC.strerror(errno);
        } catch (RuntimeException | LinkageError e) {
            return "unknown error";
        }
    }

    private static NativeCallException fail(String call, String detail) {
        return new NativeCallException(call, errno(), detail);
    }

    public static Fd memfdCreate(String name, int flags) {
        int fd = LIBC.memfd_create(name, flags);
        if (fd < 0) {
            throw fail("memfd_create", name);
        }
        return new Fd(fd, "memfd:" + name);
    }

    public static void ftruncate(Fd fd, long length) {
        if (LIBC.ftruncate(fd.get(), length) < 0) {
            throw fail("ftruncate", fd + ", length=" + length);
        }
    }

    /** Maps {@code length} bytes; returns the address. Prefer {@link Mapping}, which owns the result. */
    public static long mmap(long addr, long length, int prot, int flags, int fd, long offset) {
        long p = LIBC.mmap(addr == 0 ? null : jnr.ffi.Pointer.wrap(RUNTIME, addr), length, prot, flags, fd, offset);
        if (p == Linux.MAP_FAILED) {
            throw fail("mmap", "length=" + length + ", prot=" + prot + ", flags=0x" + Integer.toHexString(flags)
                    + ", fd=" + fd + ", offset=" + offset);
        }
        return p;
    }

    public static void munmap(long addr, long length) {
        if (LIBC.munmap(addr, length) < 0) {
            throw fail("munmap", "0x" + Long.toHexString(addr) + ", length=" + length);
        }
    }

    /**
     * Residency of {@code length} bytes at {@code addr} (page aligned): one byte per page into
     * {@code vec}, bit 0 set when the page is in memory. For a shared memfd mapping a page that is
     * not resident is a hole — or, when the host swaps, a page swapped out: see
     * {@link #seekData}.
     */
    public static void mincore(long addr, long length, long vec) {
        if (LIBC.mincore(addr, length, vec) < 0) {
            throw fail("mincore", "0x" + Long.toHexString(addr) + ", length=" + length);
        }
    }

    /**
     * {@code lseek(fd, offset, SEEK_DATA)}: the first offset at or after {@code offset} that holds
     * data (on tmpfs/memfd, swapped-out pages count as data), or -1 when only a hole follows.
     */
    public static long seekData(Fd fd, long offset) {
        long r = LIBC.lseek(fd.get(), offset, Linux.SEEK_DATA);
        if (r < 0) {
            if (errno() == Errno.ENXIO) {
                return -1;
            }
            throw fail("lseek", fd + ", SEEK_DATA, offset=" + offset);
        }
        return r;
    }

    /** x86_64 {@code struct stat}: 144 bytes, {@code st_size} at 48, {@code st_blocks} (512-byte units) at 64. */
    public static final int STAT_SIZE = 144;
    public static final int STAT_ST_SIZE = 48;
    public static final int STAT_ST_BLOCKS = 64;

    /**
     * {@code fstat(fd)}: the file's size and the bytes the file system has allocated for it
     * ({@code st_blocks × 512}) — for a memfd, the guest RAM the host really backs.
     */
    public static long[] fstatSizeAndAllocated(Fd fd) {
        byte[] st = new byte[STAT_SIZE];
        if (LIBC.fstat(fd.get(), st) < 0) {
            throw fail("fstat", fd.toString());
        }
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(st).order(java.nio.ByteOrder.nativeOrder());
        return new long[] {b.getLong(STAT_ST_SIZE), b.getLong(STAT_ST_BLOCKS) * 512};
    }

    public static void madvise(long addr, long length, int advice) {
        if (LIBC.madvise(addr, length, advice) < 0) {
            throw fail("madvise", "length=" + length + ", advice=" + advice);
        }
    }

    /**
     * ioctl with a pointer (or integer) argument. {@code name} is the request's symbolic name, used
     * in the error. Returns the non-negative result.
     */
    public static int ioctl(Fd fd, long request, long arg, String name) {
        int r;
        do {
            r = LIBC.ioctl(fd.get(), request, arg);
        } while (r < 0 && errno() == Errno.EINTR);
        if (r < 0) {
            throw fail(name, fd.toString());
        }
        return r;
    }

    /** ioctl that reports failure as a negative errno instead of throwing (for expected errors). */
    public static int ioctlErrno(Fd fd, long request, long arg) {
        int r;
        do {
            r = LIBC.ioctl(fd.get(), request, arg);
        } while (r < 0 && errno() == Errno.EINTR);
        return r < 0 ? -errno() : r;
    }

    public static Fd eventfd(int initval, int flags) {
        int fd = LIBC.eventfd(initval, flags);
        if (fd < 0) {
            throw fail("eventfd", null);
        }
        return new Fd(fd, "eventfd");
    }

    public static Fd open(String path, int flags) {
        int fd = LIBC.open(path, flags, 0);
        if (fd < 0) {
            throw fail("open", path);
        }
        return new Fd(fd, path);
    }

    public static Fd dup(Fd fd) {
        int r = LIBC.dup(fd.get());
        if (r < 0) {
            throw fail("dup", fd.toString());
        }
        return new Fd(r, fd.description());
    }

    /** fcntl's F_DUPFD_CLOEXEC. */
    private static final int F_DUPFD_CLOEXEC = 1030;

    /**
     * A close-on-exec duplicate of a descriptor another layer owns as a bare number (a Netty
     * channel's socket): the duplicate is the caller's to close, and no child process inherits it.
     */
    public static Fd dupCloexec(int fd, String description) {
        int r = LIBC.fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (r < 0) {
            throw fail("fcntl(F_DUPFD_CLOEXEC)", description + " (fd " + fd + ")");
        }
        return new Fd(r, description);
    }

    /** read(2) into native memory; returns the byte count, 0 at EOF; retries EINTR. */
    public static long read(Fd fd, long buf, long count) {
        long n;
        do {
            n = LIBC.read(fd.get(), buf, count);
        } while (n < 0 && errno() == Errno.EINTR);
        if (n < 0) {
            throw fail("read", fd.toString());
        }
        return n;
    }

    /** write(2) from native memory; returns the byte count; retries EINTR. */
    public static long write(Fd fd, long buf, long count) {
        long n;
        do {
            n = LIBC.write(fd.get(), buf, count);
        } while (n < 0 && errno() == Errno.EINTR);
        if (n < 0) {
            throw fail("write", fd.toString());
        }
        return n;
    }

    /** pread(2) into native memory at {@code offset}; the byte count, short at EOF; retries EINTR. */
    public static long pread(Fd fd, long buf, long count, long offset) {
        long n;
        do {
            n = LIBC.pread(fd.get(), buf, count, offset);
        } while (n < 0 && errno() == Errno.EINTR);
        if (n < 0) {
            throw fail("pread", fd + ", count=" + count + ", offset=" + offset);
        }
        return n;
    }

    /** pwrite(2) from native memory at {@code offset}; the byte count written; retries EINTR. */
    public static long pwrite(Fd fd, long buf, long count, long offset) {
        long n;
        do {
            n = LIBC.pwrite(fd.get(), buf, count, offset);
        } while (n < 0 && errno() == Errno.EINTR);
        if (n < 0) {
            throw fail("pwrite", fd + ", count=" + count + ", offset=" + offset);
        }
        return n;
    }

    /** fdatasync(2): the file's data (and what is needed to read it back) reaches stable storage. */
    public static void fdatasync(Fd fd) {
        int r;
        do {
            r = LIBC.fdatasync(fd.get());
        } while (r < 0 && errno() == Errno.EINTR);
        if (r < 0) {
            throw fail("fdatasync", fd.toString());
        }
    }

    /** Sets O_NONBLOCK on {@code fd}'s open file description (shared with every holder of it). */
    public static void setNonBlocking(Fd fd) {
        int flags = LIBC.fcntl(fd.get(), Linux.F_GETFL, 0);
        if (flags < 0 || LIBC.fcntl(fd.get(), Linux.F_SETFL, flags | Linux.O_NONBLOCK) < 0) {
            throw fail("fcntl(F_SETFL, O_NONBLOCK)", fd.toString());
        }
    }

    /** Pipe with both ends owned: {@code [read end, write end]}. */
    public static Fd[] pipe(int flags) {
        int[] fds = new int[2];
        if (LIBC.pipe2(fds, flags) < 0) {
            throw fail("pipe2", null);
        }
        return new Fd[] {new Fd(fds[0], "pipe:r"), new Fd(fds[1], "pipe:w")};
    }

    /**
     * poll(2) on a native {@code struct pollfd} array; returns the number of ready fds, 0 on
     * timeout. EINTR returns 0 too (callers loop).
     */
    public static int poll(long pollfds, int nfds, int timeoutMillis) {
        int r = LIBC.poll(pollfds, nfds, timeoutMillis);
        if (r < 0) {
            if (errno() == Errno.EINTR) {
                return 0;
            }
            throw fail("poll", "nfds=" + nfds);
        }
        return r;
    }

    /**
     * ioctl on a bare fd number, for a kernel-facing layer that keeps its fds as numbers behind its
     * own syscall seam (VFIO: the kernel hands the migration data fd back inside a struct, so no
     * {@link Fd} ever wraps it). Retries EINTR; {@code name} is the request's symbolic name, used
     * in the error. Returns the non-negative result.
     */
    public static int ioctl(int fd, long request, long arg, String name) {
        int r;
        do {
            r = LIBC.ioctl(fd, request, arg);
        } while (r < 0 && errno() == Errno.EINTR);
        if (r < 0) {
            throw fail(name, "fd " + fd);
        }
        return r;
    }

    /** read(2) on a bare fd number into native memory; the count, 0 at EOF; retries EINTR. */
    public static long read(int fd, long buf, long count) {
        long n;
        do {
            n = LIBC.read(fd, buf, count);
        } while (n < 0 && errno() == Errno.EINTR);
        if (n < 0) {
            throw fail("read", "fd " + fd);
        }
        return n;
    }

    /** write(2) on a bare fd number from native memory; the count written; retries EINTR. */
    public static long write(int fd, long buf, long count) {
        long n;
        do {
            n = LIBC.write(fd, buf, count);
        } while (n < 0 && errno() == Errno.EINTR);
        if (n < 0) {
            throw fail("write", "fd " + fd);
        }
        return n;
    }

    /**
     * read(2) on a non-blocking fd into native memory: the byte count, 0 at EOF, -1 when nothing
     * is ready (EAGAIN). Retries EINTR.
     */
    public static long readNonBlocking(Fd fd, long buf, long count) {
        long n;
        do {
            n = LIBC.read(fd.get(), buf, count);
        } while (n < 0 && errno() == Errno.EINTR);
        if (n < 0) {
            if (errno() == Errno.EAGAIN) {
                return -1;
            }
            throw fail("read", fd.toString());
        }
        return n;
    }

    /**
     * write(2) from native memory on a non-blocking fd: the byte count, or -1 when the fd cannot
     * take data now (EAGAIN). Retries EINTR.
     */
    public static long writeNonBlocking(Fd fd, long buf, long count) {
        long n;
        do {
            n = LIBC.write(fd.get(), buf, count);
        } while (n < 0 && errno() == Errno.EINTR);
        if (n < 0) {
            if (errno() == Errno.EAGAIN) {
                return -1;
            }
            throw fail("write", fd.toString());
        }
        return n;
    }

    /**
     * Adds {@code value} to the eventfd counter on a bare fd number (glibc's {@code eventfd_write},
     * an 8-byte write(2) from its own stack: no buffer is shared between callers). Retries EINTR.
     */
    public static void eventfdWrite(int fd, long value) {
        int r;
        do {
            r = LIBC.eventfd_write(fd, value);
        } while (r < 0 && errno() == Errno.EINTR);
        if (r < 0) {
            throw fail("write", "eventfd (fd " + fd + ")");
        }
    }

    /**
     * Reads and resets the eventfd counter on a bare fd number (glibc's {@code eventfd_read}; the
     * value lands in a per-thread array, so callers share no buffer). Blocks on a blocking
     * eventfd whose counter is 0; on a non-blocking one that is {@code read: EAGAIN}. Retries
     * EINTR.
     */
    public static long eventfdRead(int fd) {
        long v = eventfdReadOrZero(fd);
        if (v == 0) {
            throw new NativeCallException("read", Errno.EAGAIN, "eventfd (fd " + fd + ")");
        }
        return v;
    }

    /**
     * Like {@link #eventfdRead} but returns 0 when a non-blocking eventfd's counter is 0 (a
     * successful read never returns 0: the kernel blocks or fails with EAGAIN instead).
     */
    public static long eventfdReadOrZero(int fd) {
        long[] value = EVENTFD_VALUE.get();
        int r;
        do {
            r = LIBC.eventfd_read(fd, value);
        } while (r < 0 && errno() == Errno.EINTR);
        if (r < 0) {
            if (errno() == Errno.EAGAIN) {
                return 0;
            }
            throw fail("read", "eventfd (fd " + fd + ")");
        }
        return value[0];
    }

    /** An epoll instance; {@code flags} is 0 or {@link Linux#EPOLL_CLOEXEC}. Prefer {@link Epoll}. */
    public static Fd epollCreate(int flags) {
        int fd = LIBC.epoll_create1(flags);
        if (fd < 0) {
            throw fail("epoll_create1", "flags=0x" + Integer.toHexString(flags));
        }
        return new Fd(fd, "epoll");
    }

    /**
     * epoll_ctl(2): {@code op} is {@link Linux#EPOLL_CTL_ADD}, {@code _MOD} or {@code _DEL};
     * {@code event} the address of a {@code struct epoll_event} (ignored, may be 0, for DEL).
     */
    public static void epollCtl(Fd epfd, int op, Fd fd, long event) {
        if (LIBC.epoll_ctl(epfd.get(), op, fd.get(), event) < 0) {
            String name = op == Linux.EPOLL_CTL_ADD ? "ADD" : op == Linux.EPOLL_CTL_MOD ? "MOD"
                    : op == Linux.EPOLL_CTL_DEL ? "DEL" : "op " + op;
            throw fail("epoll_ctl", epfd + ", EPOLL_CTL_" + name + ", " + fd);
        }
    }

    /**
     * epoll_wait(2) into {@code maxEvents} {@code struct epoll_event}s at {@code events}: the
     * number of ready fds, 0 on timeout. The one place an interrupted wait is handled: EINTR
     * returns 0 too, and callers loop (as after a timeout).
     */
    public static int epollWait(Fd epfd, long events, int maxEvents, int timeoutMillis) {
        int r = LIBC.epoll_wait(epfd.get(), events, maxEvents, timeoutMillis);
        if (r < 0) {
            if (errno() == Errno.EINTR) {
                return 0;
            }
            throw fail("epoll_wait", epfd + ", maxevents=" + maxEvents);
        }
        return r;
    }

    /** A timerfd on {@code clockid} ({@link Linux#CLOCK_MONOTONIC}). Prefer {@link TimerFd}. */
    public static Fd timerfdCreate(int clockid, int flags) {
        int fd = LIBC.timerfd_create(clockid, flags);
        if (fd < 0) {
            throw fail("timerfd_create", "clock=" + clockid + ", flags=0x" + Integer.toHexString(flags));
        }
        return new Fd(fd, "timerfd");
    }

    /** timerfd_settime(2) with the {@code struct itimerspec} at {@code newValue}; the old value is not read. */
    public static void timerfdSettime(Fd fd, int flags, long newValue) {
        if (LIBC.timerfd_settime(fd.get(), flags, newValue, 0) < 0) {
            throw fail("timerfd_settime", fd.toString());
        }
    }

    /**
     * Closes a bare fd number. {@link Fd} calls this for the fds it owns; a layer that owns fds
     * as numbers (see {@link #ioctl(int, long, long, String)}) calls it once per fd.
     */
    public static void close(int fd, String description) {
        if (LIBC.close(fd) < 0 && errno() != Errno.EINTR) {
            throw fail("close", description + " (fd " + fd + ")");
        }
    }
}
