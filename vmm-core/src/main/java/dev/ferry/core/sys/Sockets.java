package dev.ferry.core.sys;

import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;

/**
 * Sockets as owned {@link Fd}s, for devices whose back-end fd goes on the device event loop (a
 * Java channel hides its fd): IPv4 UDP and TCP, and UNIX stream sockets. Frames move through
 * {@link #send} and {@link #recv} from and to native memory, so a caller's hot path allocates
 * nothing. Socket set-up allocates a sockaddr for the call and frees it.
 *
 * <p>Thread-safe (each call is one system call on the caller's fd).
 */
public final class Sockets {
    private static final LibC LIBC = Sys.libc();

    private Sockets() {
    }

    /**
     * A UDP socket bound to {@code local} (port 0: any) and connected to {@code remote}, so plain
     * sends go to the remote and only its datagrams are received. Blocking; receive with
     * {@link #recv} (MSG_DONTWAIT) on readiness.
     */
    public static Fd udpConnected(InetSocketAddress local, InetSocketAddress remote) {
        Fd fd = socket(NetLinux.AF_INET, NetLinux.SOCK_DGRAM, "udp " + local + " -> " + remote);
        try {
            withSockaddrIn(local, (a, len) -> check(LIBC.bind(fd.get(), a, len), "bind", fd + " to " + local));
            withSockaddrIn(remote, (a, len) -> check(LIBC.connect(fd.get(), a, len), "connect", fd + " to " + remote));
            return fd;
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        }
    }

    /** A TCP connection to {@code remote}, blocking (connect waits for the handshake). */
    public static Fd tcpConnect(InetSocketAddress remote) {
        Fd fd = socket(NetLinux.AF_INET, NetLinux.SOCK_STREAM, "tcp -> " + remote);
        try {
            withSockaddrIn(remote, (a, len) -> check(LIBC.connect(fd.get(), a, len), "connect", fd + " to " + remote));
            return fd;
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        }
    }

    /** A UNIX stream connection to the socket at {@code path}, blocking. */
    public static Fd unixConnect(Path path) {
        byte[] p = unixPath(path);
        Fd fd = socket(NetLinux.AF_UNIX, NetLinux.SOCK_STREAM, "unix -> " + path);
        long a = NativeMemory.allocate(NetLinux.SOCKADDR_UN_SIZE);
        try {
            sockaddrUn(a, p);
            check(LIBC.connect(fd.get(), a, NetLinux.SUN_PATH_OFFSET + p.length + 1), "connect", fd.toString());
            return fd;
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        } finally {
            NativeMemory.free(a);
        }
    }

    /**
     * A UNIX stream socket listening at {@code path}. A socket file left at the path by a process
     * that is gone is removed first (as QEMU's {@code server=on} does); any other file there is an
     * error, never deleted.
     */
    public static Fd unixListen(Path path, int backlog) {
        byte[] p = unixPath(path);
        if (java.nio.file.Files.exists(path, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            if (!isSocketFile(path)) {
                throw new IllegalArgumentException(path + " exists and is not a socket");
            }
            LIBC.unlink(path.toString());
        }
        Fd fd = socket(NetLinux.AF_UNIX, NetLinux.SOCK_STREAM, "unix listen " + path);
        long a = NativeMemory.allocate(NetLinux.SOCKADDR_UN_SIZE);
        try {
            sockaddrUn(a, p);
            check(LIBC.bind(fd.get(), a, NetLinux.SUN_PATH_OFFSET + p.length + 1), "bind", fd.toString());
            check(LIBC.listen(fd.get(), backlog), "listen", fd.toString());
            return fd;
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        } finally {
            NativeMemory.free(a);
        }
    }

    private static boolean isSocketFile(Path path) {
        try {
            Object mode = java.nio.file.Files.getAttribute(path, "unix:mode", java.nio.file.LinkOption.NOFOLLOW_LINKS);
            return mode instanceof Integer m && (m & 0170000) == 0140000;
        } catch (java.io.IOException | UnsupportedOperationException e) {
            return false;
        }
    }

    /** Accepts one connection on a listening socket (blocking unless the listener is non-blocking). */
    public static Fd accept(Fd listener) {
        int fd;
        do {
            fd = LIBC.accept4(listener.get(), 0, 0, NetLinux.SOCK_CLOEXEC);
        } while (fd < 0 && Sys.errno() == Errno.EINTR);
        if (fd < 0) {
            throw new NativeCallException("accept4", Sys.errno(), listener.toString());
        }
        return new Fd(fd, "accepted on " + listener.description());
    }

    /** A connected pair of UNIX stream sockets (for a peer in the same process, and tests). */
    public static Fd[] unixPair(String description) {
        int[] sv = new int[2];
        check(LIBC.socketpair(NetLinux.AF_UNIX, NetLinux.SOCK_STREAM | NetLinux.SOCK_CLOEXEC, 0, sv), "socketpair",
                description);
        return new Fd[] {new Fd(sv[0], description + " [0]"), new Fd(sv[1], description + " [1]")};
    }

    /** shutdown(2) both directions: a peer blocked on this connection sees its end at once. */
    public static void shutdown(Fd fd) {
        LIBC.shutdown(fd.get(), NetLinux.SHUT_RDWR); // an unconnected socket's ENOTCONN does not matter
    }

    /** The most descriptors one {@link #sendWithFds} or {@link #recvWithFds} carries. */
    public static final int MAX_FDS = 16;

    private static int cmsgSpace(int fds) {
        return NetLinux.CMSGHDR_SIZE + ((fds * 4 + 7) & ~7);
    }

    /**
     * One non-blocking sendmsg(2) of the native {@code struct msghdr} at {@code msg} (its iovecs
     * gathered in one call; no SIGPIPE for a peer that is gone): the byte count, or -1 when the
     * socket cannot take data now (EAGAIN). Retries EINTR.
     */
    public static long sendmsgNonBlocking(Fd fd, long msg) {
        long n;
        do {
            n = LIBC.sendmsg(fd.get(), msg, NetLinux.MSG_NOSIGNAL | NetLinux.MSG_DONTWAIT);
        } while (n < 0 && Sys.errno() == Errno.EINTR);
        if (n < 0) {
            if (Sys.errno() == Errno.EAGAIN) {
                return -1;
            }
            throw new NativeCallException("sendmsg", Sys.errno(), fd.toString());
        }
        return n;
    }

    /**
     * One non-blocking recvmsg(2) into the iovecs of the native {@code struct msghdr} at
     * {@code msg} (no control data): the byte count, 0 at the stream's end, or -1 when nothing
     * is ready (EAGAIN). Retries EINTR.
     */
    public static long recvmsgNonBlocking(Fd fd, long msg) {
        long n;
        do {
            n = LIBC.recvmsg(fd.get(), msg, NetLinux.MSG_DONTWAIT);
        } while (n < 0 && Sys.errno() == Errno.EINTR);
        if (n < 0) {
            if (Sys.errno() == Errno.EAGAIN) {
                return -1;
            }
            throw new NativeCallException("recvmsg", Sys.errno(), fd.toString());
        }
        return n;
    }

    /**
     * One sendmsg(2) of {@code count} bytes at native {@code buf} with the descriptors {@code fds}
     * (not closed; the peer gets duplicates) as SCM_RIGHTS in the same call, then plain sends for
     * whatever a stream socket did not take at once — so the descriptors travel with the first
     * byte. Blocking. Retries EINTR; MSG_NOSIGNAL is implied.
     */
    public static void sendWithFds(Fd fd, long buf, long count, int[] fds) {
        if (fds.length > MAX_FDS) {
            throw new IllegalArgumentException(fds.length + " descriptors in one message: at most " + MAX_FDS);
        }
        int ctl = fds.length == 0 ? 0 : cmsgSpace(fds.length);
        long m = NativeMemory.allocate(NetLinux.MSGHDR_SIZE + NetLinux.IOVEC_SIZE + ctl);
        try {
            long iov = m + NetLinux.MSGHDR_SIZE;
            long c = iov + NetLinux.IOVEC_SIZE;
            NativeMemory.fill(m, NetLinux.MSGHDR_SIZE + NetLinux.IOVEC_SIZE + ctl, (byte) 0);
            NativeMemory.putLong(iov, buf);
            NativeMemory.putLong(iov + 8, count);
            NativeMemory.putLong(m + NetLinux.MSG_IOV_OFFSET, iov);
            NativeMemory.putLong(m + NetLinux.MSG_IOVLEN_OFFSET, 1);
            if (ctl > 0) {
                NativeMemory.putLong(c + NetLinux.CMSG_LEN_OFFSET, NetLinux.CMSGHDR_SIZE + 4L * fds.length);
                NativeMemory.putInt(c + NetLinux.CMSG_LEVEL_OFFSET, NetLinux.SOL_SOCKET);
                NativeMemory.putInt(c + NetLinux.CMSG_TYPE_OFFSET, NetLinux.SCM_RIGHTS);
                for (int i = 0; i < fds.length; i++) {
                    NativeMemory.putInt(c + NetLinux.CMSGHDR_SIZE + 4L * i, fds[i]);
                }
                NativeMemory.putLong(m + NetLinux.MSG_CONTROL_OFFSET, c);
                NativeMemory.putLong(m + NetLinux.MSG_CONTROLLEN_OFFSET, ctl);
            }
            long n;
            do {
                n = LIBC.sendmsg(fd.get(), m, NetLinux.MSG_NOSIGNAL);
            } while (n < 0 && Sys.errno() == Errno.EINTR);
            if (n < 0) {
                throw new NativeCallException("sendmsg", Sys.errno(), fd.toString());
            }
            while (n < count) {
                long k = send(fd, buf + n, count - n, 0);
                if (k < 0) {
                    throw new NativeCallException("send", Errno.EAGAIN, fd + ": blocking send would block");
                }
                n += k;
            }
        } finally {
            NativeMemory.free(m);
        }
    }

    /**
     * What one {@link #recvWithFds} got: the byte count (0 at the stream's end, -1 when a
     * non-blocking receive found nothing) and the descriptors that came with it, now owned by the
     * caller.
     */
    public record Received(long bytes, Fd[] fds) {
        /** Closes every received descriptor (a message that must not carry any). */
        public void closeFds() {
            for (Fd f : fds) {
                f.close();
            }
        }
    }

    /**
     * One recvmsg(2) of up to {@code count} bytes into native {@code buf}, accepting up to
     * {@code maxFds} descriptors (close-on-exec). More descriptors than that — the kernel cuts the
     * control data — is an error after closing those that arrived, so a hostile peer cannot leak
     * descriptors into this process. {@code flags} as recv(2) (MSG_DONTWAIT). Retries EINTR.
     */
    public static Received recvWithFds(Fd fd, long buf, long count, int maxFds, int flags) {
        if (maxFds < 0 || maxFds > MAX_FDS) {
            throw new IllegalArgumentException("maxFds " + maxFds);
        }
        // Room for one more than allowed, so that "too many" is seen as such rather than cut silently.
        int ctl = cmsgSpace(maxFds + 1);
        long m = NativeMemory.allocate(NetLinux.MSGHDR_SIZE + NetLinux.IOVEC_SIZE + ctl);
        try {
            long iov = m + NetLinux.MSGHDR_SIZE;
            long c = iov + NetLinux.IOVEC_SIZE;
            NativeMemory.fill(m, NetLinux.MSGHDR_SIZE + NetLinux.IOVEC_SIZE + ctl, (byte) 0);
            NativeMemory.putLong(iov, buf);
            NativeMemory.putLong(iov + 8, count);
            NativeMemory.putLong(m + NetLinux.MSG_IOV_OFFSET, iov);
            NativeMemory.putLong(m + NetLinux.MSG_IOVLEN_OFFSET, 1);
            NativeMemory.putLong(m + NetLinux.MSG_CONTROL_OFFSET, c);
            NativeMemory.putLong(m + NetLinux.MSG_CONTROLLEN_OFFSET, ctl);
            long n;
            do {
                n = LIBC.recvmsg(fd.get(), m, flags | NetLinux.MSG_CMSG_CLOEXEC);
            } while (n < 0 && Sys.errno() == Errno.EINTR);
            if (n < 0) {
                if (Sys.errno() == Errno.EAGAIN) {
                    return new Received(-1, new Fd[0]);
                }
                throw new NativeCallException("recvmsg", Sys.errno(), fd.toString());
            }
            java.util.List<Fd> got = new java.util.ArrayList<>();
            long ctlLen = NativeMemory.getLong(m + NetLinux.MSG_CONTROLLEN_OFFSET);
            long off = 0;
            while (off + NetLinux.CMSGHDR_SIZE <= ctlLen) {
                long h = c + off;
                long len = NativeMemory.getLong(h + NetLinux.CMSG_LEN_OFFSET);
                if (len < NetLinux.CMSGHDR_SIZE || off + len > ctlLen) {
                    break;
                }
                if (NativeMemory.getInt(h + NetLinux.CMSG_LEVEL_OFFSET) == NetLinux.SOL_SOCKET
                        && NativeMemory.getInt(h + NetLinux.CMSG_TYPE_OFFSET) == NetLinux.SCM_RIGHTS) {
                    int k = (int) ((len - NetLinux.CMSGHDR_SIZE) / 4);
                    for (int i = 0; i < k; i++) {
                        got.add(new Fd(NativeMemory.getInt(h + NetLinux.CMSGHDR_SIZE + 4L * i),
                                "received from " + fd.description()));
                    }
                }
                off += (len + 7) & ~7L;
            }
            int mflags = NativeMemory.getInt(m + NetLinux.MSG_FLAGS_OFFSET);
            if (got.size() > maxFds || (mflags & NetLinux.MSG_CTRUNC) != 0) {
                got.forEach(Fd::close);
                throw new NativeCallException("recvmsg", Errno.EINVAL, fd + ": the peer sent more than " + maxFds
                        + " descriptors with one message");
            }
            return new Received(n, got.toArray(new Fd[0]));
        } finally {
            NativeMemory.free(m);
        }
    }

    /** The local port of an IPv4 socket. */
    public static int localPort(Fd fd) {
        long a = NativeMemory.allocate(NetLinux.SOCKADDR_IN_SIZE + 8);
        try {
            long lenAt = a + NetLinux.SOCKADDR_IN_SIZE;
            NativeMemory.putInt(lenAt, NetLinux.SOCKADDR_IN_SIZE);
            check(LIBC.getsockname(fd.get(), a, lenAt), "getsockname", fd.toString());
            return Short.toUnsignedInt(Short.reverseBytes(NativeMemory.getShort(a + NetLinux.SIN_PORT_OFFSET)));
        } finally {
            NativeMemory.free(a);
        }
    }

    /** Sets an int socket option at SOL_SOCKET (buffer sizes). */
    public static void setIntOption(Fd fd, int option, int value) {
        long a = NativeMemory.allocate(4);
        try {
            NativeMemory.putInt(a, value);
            check(LIBC.setsockopt(fd.get(), NetLinux.SOL_SOCKET, option, a, 4), "setsockopt", fd + " option " + option);
        } finally {
            NativeMemory.free(a);
        }
    }

    /**
     * send(2) of {@code count} bytes at native {@code buf} with {@code flags} (MSG_NOSIGNAL is
     * added: a closed stream peer is an EPIPE error, not a signal). Returns the bytes sent, or -1
     * when a non-blocking send would block (EAGAIN). Retries EINTR.
     */
    public static long send(Fd fd, long buf, long count, int flags) {
        long n;
        do {
            n = LIBC.send(fd.get(), buf, count, flags | NetLinux.MSG_NOSIGNAL);
        } while (n < 0 && Sys.errno() == Errno.EINTR);
        if (n < 0) {
            if (Sys.errno() == Errno.EAGAIN) {
                return -1;
            }
            throw new NativeCallException("send", Sys.errno(), fd.toString());
        }
        return n;
    }

    /**
     * recv(2) into native {@code buf}: the byte count (0 at a stream's end; a datagram's length,
     * cut to {@code count}), or -1 when nothing is ready (EAGAIN). Retries EINTR.
     */
    public static long recv(Fd fd, long buf, long count, int flags) {
        long n;
        do {
            n = LIBC.recv(fd.get(), buf, count, flags);
        } while (n < 0 && Sys.errno() == Errno.EINTR);
        if (n < 0) {
            if (Sys.errno() == Errno.EAGAIN) {
                return -1;
            }
            throw new NativeCallException("recv", Sys.errno(), fd.toString());
        }
        return n;
    }

    private static byte[] unixPath(Path path) {
        byte[] p = path.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8);
        if (p.length >= NetLinux.SUN_PATH_SIZE) {
            throw new IllegalArgumentException("UNIX socket path " + path + " is longer than "
                    + (NetLinux.SUN_PATH_SIZE - 1) + " bytes");
        }
        return p;
    }

    private static void sockaddrUn(long a, byte[] p) {
        NativeMemory.fill(a, NetLinux.SOCKADDR_UN_SIZE, (byte) 0);
        NativeMemory.putShort(a, (short) NetLinux.AF_UNIX);
        NativeMemory.copyFromArray(p, 0, a + NetLinux.SUN_PATH_OFFSET, p.length);
    }

    private static Fd socket(int domain, int type, String description) {
        int fd = LIBC.socket(domain, type | NetLinux.SOCK_CLOEXEC, 0);
        if (fd < 0) {
            throw new NativeCallException("socket", Sys.errno(), description);
        }
        return new Fd(fd, description);
    }

    @FunctionalInterface
    private interface SockaddrUse {
        void use(long addr, int len);
    }

    private static void withSockaddrIn(InetSocketAddress s, SockaddrUse use) {
        InetAddress ip = s.getAddress();
        if (ip == null) {
            try {
                ip = InetAddress.getByName(s.getHostString());
            } catch (UnknownHostException e) {
                throw new IllegalArgumentException("unknown host " + s.getHostString(), e);
            }
        }
        if (!(ip instanceof Inet4Address)) {
            throw new IllegalArgumentException(s + " is not an IPv4 address");
        }
        byte[] b = ip.getAddress();
        long a = NativeMemory.allocate(NetLinux.SOCKADDR_IN_SIZE);
        try {
            NativeMemory.fill(a, NetLinux.SOCKADDR_IN_SIZE, (byte) 0);
            NativeMemory.putShort(a + NetLinux.SIN_FAMILY_OFFSET, (short) NetLinux.AF_INET);
            NativeMemory.putShort(a + NetLinux.SIN_PORT_OFFSET, Short.reverseBytes((short) s.getPort()));
            NativeMemory.copyFromArray(b, 0, a + NetLinux.SIN_ADDR_OFFSET, 4);
            use.use(a, NetLinux.SOCKADDR_IN_SIZE);
        } finally {
            NativeMemory.free(a);
        }
    }

    private static void check(int r, String call, String detail) {
        if (r < 0) {
            throw new NativeCallException(call, Sys.errno(), detail);
        }
    }
}
