package dev.ferry.virtio.net;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.NetLinux;
import dev.ferry.core.sys.Sockets;

import java.net.InetSocketAddress;

/**
 * A UDP socket connected to one remote address (QEMU's {@code -netdev dgram} with
 * {@code remote}): one Ethernet frame per datagram, no virtio-net header. The socket is bound to
 * {@code local} (port 0: any free port), so two VMMs on one host each talk to the same peer — a
 * traffic peer or a switch — from their own port.
 */
public final class DgramBackend implements NetBackend {
    private final Fd fd;
    private final String description;

    public DgramBackend(InetSocketAddress local, InetSocketAddress remote) {
        this.fd = Sockets.udpConnected(local, remote);
        try {
            Sockets.setIntOption(fd, NetLinux.SO_RCVBUF, 1 << 20);
            Sockets.setIntOption(fd, NetLinux.SO_SNDBUF, 1 << 20);
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        }
        this.description = "dgram " + local.getHostString() + ":" + Sockets.localPort(fd) + " -> "
                + remote.getHostString() + ":" + remote.getPort();
    }

    /** The local port the socket is bound to. */
    public int localPort() {
        return Sockets.localPort(fd);
    }

    @Override
    public String describe() {
        return description;
    }

    @Override
    public Fd fd() {
        return fd;
    }

    @Override
    public boolean vnetHeader() {
        return false;
    }

    @Override
    public boolean send(long buf, int length) {
        return Sockets.send(fd, buf + NetHeader.SIZE, length - NetHeader.SIZE, NetLinux.MSG_DONTWAIT) >= 0;
    }

    @Override
    public int receive(long buf, int capacity) {
        long n = Sockets.recv(fd, buf + NetHeader.SIZE, capacity - NetHeader.SIZE, NetLinux.MSG_DONTWAIT);
        if (n < 0) {
            return -1;
        }
        NetHeader.clear(buf);
        return (int) n + NetHeader.SIZE;
    }

    /** Reads queued datagrams into a scratch buffer until none is left (bounded by the receive buffer). */
    @Override
    public int discardQueued() {
        long scratch = dev.ferry.core.sys.NativeMemory.allocate(MAX_FRAME);
        try {
            int n = 0;
            for (int tries = 0; tries < 1 << 16; tries++) {
                try {
                    if (Sockets.recv(fd, scratch, MAX_FRAME, NetLinux.MSG_DONTWAIT) < 0) {
                        break;
                    }
                    n++;
                } catch (dev.ferry.core.sys.NativeCallException e) {
                    // an ICMP error the peer's address earned (ECONNREFUSED): reported once, go on
                }
            }
            return n;
        } finally {
            dev.ferry.core.sys.NativeMemory.free(scratch);
        }
    }

    @Override
    public void close() {
        fd.close();
    }
}
