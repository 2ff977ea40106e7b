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
        byte[] p = path.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8);
        if (p.length >= NetLinux.SUN_PATH_SIZE) {
            throw new IllegalArgumentException("UNIX socket path " + path + " is longer than "
                    + (NetLinux.SUN_PATH_SIZE - 1) + " bytes");
        }
        Fd fd = socket(NetLinux.AF_UNIX, NetLinux.SOCK_STREAM, "unix -> " + path);
        long a = NativeMemory.allocate(NetLinux.SOCKADDR_UN_SIZE);
        try {
            NativeMemory.fill(a, NetLinux.SOCKADDR_UN_SIZE, (byte) 0);
            NativeMemory.putShort(a, (short) NetLinux.AF_UNIX);
            NativeMemory.copyFromArray(p, 0, a + NetLinux.SUN_PATH_OFFSET, p.length);
            check(LIBC.connect(fd.get(), a, NetLinux.SUN_PATH_OFFSET + p.length + 1), "connect", fd.toString());
            return fd;
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        } finally {
            NativeMemory.free(a);
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
