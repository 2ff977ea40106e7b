package dev.ferry.core.sys;

import org.junit.jupiter.api.Test;

import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** A connected UDP socket made by {@link Sockets} talks to a plain Java channel both ways over loopback. */
class SocketsTest {
    @Test
    void udpConnectedSendsAndReceives() throws Exception {
        try (DatagramChannel peer = DatagramChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            InetSocketAddress peerAddr = (InetSocketAddress) peer.getLocalAddress();
            long buf = NativeMemory.allocate(64);
            try (Fd fd = Sockets.udpConnected(new InetSocketAddress("127.0.0.1", 0), peerAddr)) {
                int port = Sockets.localPort(fd);
                NativeMemory.copyFromArray("hello".getBytes(), 0, buf, 5);
                assertEquals(5, Sockets.send(fd, buf, 5, 0));
                ByteBuffer in = ByteBuffer.allocate(64);
                InetSocketAddress from = (InetSocketAddress) peer.receive(in);
                assertEquals(port, from.getPort());
                assertEquals("hello", new String(in.array(), 0, in.position()));
                assertEquals(-1, Sockets.recv(fd, buf, 64, NetLinux.MSG_DONTWAIT), "nothing ready");
                peer.send(ByteBuffer.wrap("world!".getBytes()), from);
                long n;
                long deadline = System.nanoTime() + 5_000_000_000L;
                while ((n = Sockets.recv(fd, buf, 64, NetLinux.MSG_DONTWAIT)) < 0 && System.nanoTime() < deadline) {
                    Thread.sleep(1);
                }
                assertEquals(6, n);
                byte[] got = new byte[6];
                NativeMemory.copyToArray(buf, got, 0, 6);
                assertEquals("world!", new String(got));
            } finally {
                NativeMemory.free(buf);
            }
        }
    }

    @Test
    void connectToNothingNamesTheCall() {
        NativeCallException e = assertThrows(NativeCallException.class,
                () -> Sockets.tcpConnect(new InetSocketAddress("127.0.0.1", 1)));
        assertEquals("connect", e.call());
    }
}
