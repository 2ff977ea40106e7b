package dev.ferry.virtio.net;

import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.transport.MmioGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.Arrays;
import java.util.List;

import static dev.ferry.virtio.transport.MmioGuest.buf;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/**
 * A stream peer's framing is hostile input: frames split across reads arrive whole, a length
 * above any frame ends the back-end with a logged reason — the device receives nothing more, the
 * guest sees no error and no partial frame, and the VMM goes on.
 */
@Timeout(60)
class NetStreamHostileTest {
    @Test
    void splitFramesArriveWholeAndAnAbsurdLengthEndsTheBackend() throws Exception {
        try (ServerSocketChannel server = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            StreamBackend backend = StreamBackend.tcp((InetSocketAddress) server.getLocalAddress());
            VirtioNet net = new VirtioNet("nic0", new NetOptions(NetFixture.MAC, 256, false), backend);
            try (SocketChannel peer = server.accept();
                 MmioGuest g = new MmioGuest("stream", false, c -> VirtioMmioDevice.attach(c, "virtio-net", net))) {
                g.machine.vmStart();
                assertEquals(true, g.negotiate(NetFixture.BASE));
                DriverQueue rx = g.setupQueue(VirtioNet.RX, 16);
                g.setupQueue(VirtioNet.TX, 16);
                g.setupQueue(VirtioNet.CTRL, 16);
                g.driverOk();
                for (int k = 0; k < 4; k++) {
                    rx.add(List.of(), List.of(buf(MmioGuest.data(k), 2048)), false);
                }
                g.kick(VirtioNet.RX);

                byte[] f = NetFixture.frame(NetFixture.MAC, new byte[] {2, 0, 0, 0, 0, 9}, 300, 5);
                ByteBuffer framed = ByteBuffer.allocate(4 + f.length).putInt(f.length).put(f).flip();
                ByteBuffer first = framed.duplicate().limit(7); // the length and 3 bytes, then the rest
                peer.write(first);
                g.settle();
                assertNull(rx.pollUsed(), "half a frame is not a frame");
                peer.write(framed.position(7));
                DriverQueue.Used u = g.awaitUsed(rx);
                byte[] got = g.readBytes(MmioGuest.data(u.id()), (int) u.length());
                assertArrayEquals(f, Arrays.copyOfRange(got, NetHeader.SIZE, got.length));

                peer.write(ByteBuffer.wrap(new byte[] {(byte) 0x7f, -1, -1, -1, 1, 2, 3}));
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (!Boolean.TRUE.equals(stats(g).get("backend-failed")) && System.nanoTime() < deadline) {
                    Thread.sleep(2);
                }
                assertEquals(true, stats(g).get("backend-failed"), "the hostile length ended the back-end");
                assertNull(rx.pollUsed(), "nothing of it reached the guest");
                assertEquals(0, g.status() & Virtio.STATUS_NEEDS_RESET, "the guest did nothing wrong");
                assertEquals(1L, stats(g).get("rx-frames"));
            }
        }
    }

    @SuppressWarnings("unchecked")
    private static java.util.Map<String, Object> stats(MmioGuest g) {
        return (java.util.Map<String, Object>) g.describe().get("virtio-net");
    }
}
