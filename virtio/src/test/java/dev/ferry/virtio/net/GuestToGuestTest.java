package dev.ferry.virtio.net;

import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.net.peer.TrafficPeer;
import dev.ferry.virtio.transport.MmioGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.net.InetSocketAddress;
import java.util.Arrays;
import java.util.List;

import static dev.ferry.virtio.transport.MmioGuest.buf;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Two guests joined through the traffic peer's switch: each NIC's dgram back-end talks to the
 * peer, which learns each MAC from the frames it sends and forwards a unicast frame from one to
 * the other, and a broadcast to every other port it learned.
 */
@Timeout(60)
class GuestToGuestTest {
    static final byte[] MAC_A = {0x52, 0x54, 0, 0, 0, 0x0a};
    static final byte[] MAC_B = {0x52, 0x54, 0, 0, 0, 0x0b};
    static final byte[] BCAST = {-1, -1, -1, -1, -1, -1};

    @Test
    void unicastAndBroadcastThroughTheSwitch() throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             Nic a = new Nic("a", MAC_A, peer);
             Nic b = new Nic("b", MAC_B, peer)) {
            // B speaks first: the switch learns it, and knows no one else to flood to
            b.send(NetFixture.frame(BCAST, MAC_B, 60, 0));
            a.send(NetFixture.frame(BCAST, MAC_A, 60, 1));
            assertArrayEquals(NetFixture.frame(BCAST, MAC_A, 60, 1), b.receive(), "A's broadcast reaches B");
            b.send(NetFixture.frame(BCAST, MAC_B, 60, 2));
            assertArrayEquals(NetFixture.frame(BCAST, MAC_B, 60, 2), a.receive(), "B's broadcast reaches A");
            byte[] f = NetFixture.frame(MAC_B, MAC_A, 1000, 3);
            a.send(f);
            assertArrayEquals(f, b.receive(), "A's unicast to B");
            byte[] r = NetFixture.frame(MAC_A, MAC_B, 400, 4);
            b.send(r);
            assertArrayEquals(r, a.receive(), "B's answer to A");
        }
    }

    /** One guest: its NIC on a dgram back-end to the peer, the test as its driver. */
    static final class Nic implements AutoCloseable {
        final MmioGuest g;
        final DriverQueue rx;
        final DriverQueue tx;

        Nic(String name, byte[] mac, TrafficPeer peer) throws Exception {
            VirtioNet net = new VirtioNet(name, new NetOptions(mac, 256, false), new DgramBackend(
                    new InetSocketAddress("127.0.0.1", 0), new InetSocketAddress("127.0.0.1", peer.port())));
            g = new MmioGuest(name, false, c -> VirtioMmioDevice.attach(c, "virtio-net", net));
            g.machine.vmStart();
            g.negotiate(NetFixture.BASE);
            rx = g.setupQueue(VirtioNet.RX, 16);
            tx = g.setupQueue(VirtioNet.TX, 16);
            g.setupQueue(VirtioNet.CTRL, 16);
            g.driverOk();
            for (int k = 0; k < 8; k++) {
                rx.add(List.of(), List.of(buf(MmioGuest.data(k), 2048)), false);
            }
            g.kick(VirtioNet.RX);
        }

        void send(byte[] frame) throws InterruptedException {
            byte[] b = new byte[NetHeader.SIZE + frame.length];
            System.arraycopy(frame, 0, b, NetHeader.SIZE, frame.length);
            g.writeBytes(MmioGuest.data(40), b);
            tx.add(List.of(buf(MmioGuest.data(40), b.length)), List.of(), false);
            g.kick(VirtioNet.TX);
            g.awaitUsed(tx);
        }

        byte[] receive() throws InterruptedException {
            DriverQueue.Used u = g.awaitUsed(rx);
            byte[] b = g.readBytes(MmioGuest.data(u.id()), (int) u.length());
            rx.add(List.of(), List.of(buf(MmioGuest.data(u.id()), 2048)), false);
            g.kick(VirtioNet.RX);
            return Arrays.copyOfRange(b, NetHeader.SIZE, b.length);
        }

        @Override
        public void close() {
            g.close();
        }
    }
}
