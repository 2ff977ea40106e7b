package dev.ferry.core.sys;

import jnr.ffi.annotations.In;
import jnr.ffi.annotations.Out;
import jnr.ffi.types.size_t;
import jnr.ffi.types.ssize_t;

/**
 * Raw libc bindings: the bottom layer, never used outside {@code sys}. Pointers travel as plain
 * {@code long} addresses so calls allocate nothing; errno is captured by jnr-ffi after each call.
 */
public interface LibC {
    int memfd_create(String name, int flags);

    int ftruncate(int fd, long length);

    /**
     * {@code addr} is a {@link jnr.ffi.Pointer} (null for "anywhere") on purpose: with only
     * primitive parameters jnr-ffi 2.2 takes its fast path, which passes a six-argument call's
     * last argument as garbage on x86-64 — glibc then sees an unaligned offset and fails with
     * EINVAL before any syscall. A Pointer parameter selects the generic invoker. Every other
     * binding here has at most five arguments; a new six-argument one needs the same care.
     */
    long mmap(jnr.ffi.Pointer addr, @size_t long length, int prot, int flags, int fd, long offset);

    int munmap(long addr, @size_t long length);

    int mincore(long addr, @size_t long length, long vec);

    long lseek(int fd, long offset, int whence);

    int madvise(long addr, @size_t long length, int advice);

    int ioctl(int fd, @size_t long request, long argp);

    int eventfd(int initval, int flags);

    int poll(long fds, long nfds, int timeout);

    int close(int fd);

    int dup(int fd);

    @ssize_t long read(int fd, long buf, @size_t long count);

    @ssize_t long write(int fd, long buf, @size_t long count);

    @ssize_t long pread(int fd, long buf, @size_t long count, long offset);

    @ssize_t long pwrite(int fd, long buf, @size_t long count, long offset);

    int fsync(int fd);

    int fdatasync(int fd);

    int open(String path, int flags, int mode);

    int fcntl(int fd, int cmd, int arg);

    String strerror(int errnum);

    int pipe2(@Out int[] fds, int flags);

    int getpid();

    long syscall(long number, long a1, long a2, long a3);

    int fstat(int fd, @Out @In byte[] statbuf);

    /** glibc's {@code eventfd_write}: one 8-byte write of {@code value}; 0 or -1 with errno. */
    int eventfd_write(int fd, long value);

    /** glibc's {@code eventfd_read}: one 8-byte read into {@code value[0]}; 0 or -1 with errno. */
    int eventfd_read(int fd, @Out long[] value);

    int epoll_create1(int flags);

    /** {@code event} is the address of a packed 12-byte {@code struct epoll_event} (0 for DEL). */
    int epoll_ctl(int epfd, int op, int fd, long event);

    /** {@code events} is the address of {@code maxevents} packed {@code struct epoll_event}s. */
    int epoll_wait(int epfd, long events, int maxevents, int timeout);

    int timerfd_create(int clockid, int flags);

    /** {@code newValue} and {@code oldValue} are addresses of {@code struct itimerspec} (old may be 0). */
    int timerfd_settime(int fd, int flags, long newValue, long oldValue);

    int socket(int domain, int type, int protocol);

    /** {@code addr} is the address of a {@code struct sockaddr_in} or {@code sockaddr_un} of {@code len} bytes. */
    int bind(int fd, long addr, int len);

    int connect(int fd, long addr, int len);

    /** {@code len} is the address of an in/out {@code socklen_t}. */
    int getsockname(int fd, long addr, long len);

    int setsockopt(int fd, int level, int optname, long optval, int optlen);

    @ssize_t long send(int fd, long buf, @size_t long count, int flags);

    @ssize_t long recv(int fd, long buf, @size_t long count, int flags);

    /** {@code msg} is the address of a {@code struct msghdr} ({@link NetLinux#MSGHDR_SIZE}). */
    @ssize_t long sendmsg(int fd, long msg, int flags);

    /** {@code msg} is the address of a {@code struct msghdr}; the kernel fills its control and flags. */
    @ssize_t long recvmsg(int fd, long msg, int flags);

    int listen(int fd, int backlog);

    /** {@code addr} and {@code addrlen} may be 0 (the peer's address is not wanted). */
    int accept4(int fd, long addr, long addrlen, int flags);

    int shutdown(int fd, int how);

    int unlink(String path);

    int socketpair(int domain, int type, int protocol, @Out int[] sv);
}
