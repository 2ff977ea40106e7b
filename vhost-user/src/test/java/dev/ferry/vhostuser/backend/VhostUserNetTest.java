package dev.ferry.vhostuser.backend;

import dev.ferry.core.sys.EventFd;
import dev.ferry.core.sys.Linux;
import dev.ferry.virtio.net.DgramBackend;
import dev.ferry.virtio.net.NetOptions;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.QueueConfig;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * virtio-net served over vhost-user with a datagram socket as its network: a frame the driver
 * transmits reaches the peer, a datagram from the peer lands in an RX buffer — logged in the
 * dirty log with its used ring — and SEND_RARP announces the guest's MAC on the network.
 */
class VhostUserNetTest {
    private static final byte[] MAC = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    private static final int RX = 0;
    private static final int TX = 1;
    @TempDir
    Path dir;

    private static DriverQueue startRing(BlkTestFrontend fe, int index, long gpa, EventFd kick, EventFd call)
            throws Exception {
        return startRing(fe, index, gpa, kick, call, true);
    }

    /** NUM, BASE, ADDR, KICK, CALL and, with {@code enable}, SET_VRING_ENABLE 1. */
    private static DriverQueue startRing(BlkTestFrontend fe, int index, long gpa, EventFd kick, EventFd call,
                                         boolean enable) throws Exception {
        QueueConfig c = QueueConfig.contiguous(128, gpa, fe.ringFeatures());
        DriverQueue q = DriverQueue.builder(fe.dm, c).build();
        fe.conn.request(VhostUser.SET_VRING_NUM, Payloads.vringState(index, 128));
        fe.conn.request(VhostUser.SET_VRING_BASE, Payloads.vringState(index, 0));
        fe.conn.request(VhostUser.SET_VRING_ADDR, Payloads.vringAddr(new Payloads.VringAddr(index, VhostUser.VRING_F_LOG,
                BlkTestFrontend.USER_BASE + c.descGpa(), BlkTestFrontend.USER_BASE + c.usedGpa(),
                BlkTestFrontend.USER_BASE + c.availGpa(), c.usedGpa())));
        fe.conn.request(VhostUser.SET_VRING_KICK, Payloads.u64(index), kick.fd());
        fe.conn.request(VhostUser.SET_VRING_CALL, Payloads.u64(index), call.fd());
        if (enable) {
            fe.conn.request(VhostUser.SET_VRING_ENABLE, Payloads.vringState(index, 1));
        }
        return q;
    }

    private static DriverQueue.Used await(DriverQueue q) throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (true) {
            DriverQueue.Used u = q.pollUsed();
            if (u != null) {
                return u;
            }
            assertTrue(System.nanoTime() < deadline, "nothing came back within 5 s");
            Thread.sleep(1);
        }
    }

    private static byte[] frame(String payload) {
        byte[] f = new byte[64];
        Arrays.fill(f, 0, 6, (byte) 0xff);
        System.arraycopy(MAC, 0, f, 6, 6);
        f[12] = 0x08;
        byte[] p = payload.getBytes();
        System.arraycopy(p, 0, f, 14, p.length);
        return f;
    }

    /**
     * Frames that reach the back-end's socket while no front-end runs its rings (between two
     * front-ends, as in a migration's hops) are dropped when the next front-end connects: the
     * guest's first receive buffer gets the first frame sent after that, not a stale one.
     */
    @Test
    void framesQueuedWhileNoFrontEndRanAreDropped() throws Exception {
        Path sock = dir.resolve("net.sock");
        try (DatagramChannel peer = DatagramChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            DgramBackend net = new DgramBackend(new InetSocketAddress("127.0.0.1", 0),
                    (InetSocketAddress) peer.getLocalAddress());
            InetSocketAddress device = new InetSocketAddress("127.0.0.1", net.localPort());
            try (VhostUserBackend b = VhostUserBackend.serveNet(new NetOptions(MAC, 256, false), net,
                    BackendOptions.server(sock))) {
                for (int i = 0; i < 20; i++) {
                    peer.send(ByteBuffer.wrap(frame("stale-" + i)), device);
                }
                Thread.sleep(100);
                try (BlkTestFrontend fe = new BlkTestFrontend(sock);
                     EventFd kickRx = new EventFd(Linux.EFD_NONBLOCK); EventFd kickTx = new EventFd(Linux.EFD_NONBLOCK);
                     EventFd callRx = new EventFd(Linux.EFD_NONBLOCK); EventFd callTx = new EventFd(Linux.EFD_NONBLOCK)) {
                    fe.negotiate();
                    DriverQueue rx = startRing(fe, RX, 0x1000, kickRx, callRx);
                    startRing(fe, TX, 0x4000, kickTx, callTx);
                    for (int i = 0; i < 4; i++) {
                        rx.add(List.of(), List.of(new DriverQueue.Buffer(BlkTestFrontend.DATA + 0x10000 + i * 4096L, 2048)),
                                false);
                    }
                    kickRx.signal();
                    byte[] fresh = frame("fresh");
                    peer.send(ByteBuffer.wrap(fresh), device);
                    await(rx);
                    byte[] landed = new byte[fresh.length];
                    fe.dm.read(BlkTestFrontend.DATA + 0x10000 + 12, landed, 0, landed.length);
                    assertArrayEquals(fresh, landed, "the first frame the guest gets is the one sent after it connected");
                }
            }
        }
    }

    /**
     * QEMU 7.2's vhost-user net sends SET_VRING_ENABLE 1 for its rings when the guest acks its
     * features — before it starts the back-end, so before SET_FEATURES — and not again once the
     * rings are set up: the back-end keeps the flag and serves the rings when they start. (It
     * refused the early enable, left the rings disabled, and a Linux guest's frames never left:
     * {@code LinuxVirtioNetTest} in the vmm module.) The requests go without REPLY_ACK, as
     * QEMU sends them.
     */
    @Test
    void anEnableSentBeforeSetFeaturesHoldsWhenTheRingsStart() throws Exception {
        Path sock = dir.resolve("net.sock");
        try (DatagramChannel peer = DatagramChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            DgramBackend net = new DgramBackend(new InetSocketAddress("127.0.0.1", 0),
                    (InetSocketAddress) peer.getLocalAddress());
            try (VhostUserBackend b = VhostUserBackend.serveNet(new NetOptions(MAC, 256, false), net,
                         BackendOptions.server(sock));
                 BlkTestFrontend fe = new BlkTestFrontend(sock);
                 EventFd kickRx = new EventFd(Linux.EFD_NONBLOCK); EventFd kickTx = new EventFd(Linux.EFD_NONBLOCK);
                 EventFd callRx = new EventFd(Linux.EFD_NONBLOCK); EventFd callTx = new EventFd(Linux.EFD_NONBLOCK)) {
                fe.features = fe.conn.getU64(VhostUser.GET_FEATURES) & ~VhostUser.bit(VhostUser.F_LOG_ALL);
                assertTrue(VhostUser.has(fe.features, VhostUser.F_PROTOCOL_FEATURES));
                fe.protocol = fe.conn.getU64(VhostUser.GET_PROTOCOL_FEATURES);
                fe.conn.request(VhostUser.SET_PROTOCOL_FEATURES, Payloads.u64(fe.protocol));
                fe.conn.request(VhostUser.SET_OWNER, new byte[0]);
                fe.conn.request(VhostUser.SET_VRING_ENABLE, Payloads.vringState(RX, 1));
                fe.conn.request(VhostUser.SET_VRING_ENABLE, Payloads.vringState(TX, 1));
                fe.conn.request(VhostUser.SET_FEATURES, Payloads.u64(fe.features));
                fe.sendMemTable();
                startRing(fe, RX, 0x1000, kickRx, callRx, false);
                DriverQueue tx = startRing(fe, TX, 0x4000, kickTx, callTx, false);

                byte[] out = frame("enabled-early");
                fe.dm.fill(BlkTestFrontend.DATA, 12, (byte) 0);
                fe.dm.write(BlkTestFrontend.DATA + 12, out, 0, out.length);
                tx.add(List.of(new DriverQueue.Buffer(BlkTestFrontend.DATA, 12 + out.length)), List.of(), false);
                kickTx.signal();
                peer.configureBlocking(false);
                ByteBuffer got = ByteBuffer.allocate(2048);
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (peer.receive(got) == null) {
                    assertTrue(System.nanoTime() < deadline, "the TX ring was not served within 10 s: " + b.stats()
                            + ", last refusal " + b.stats().lastRefusal());
                    Thread.sleep(5);
                }
                assertArrayEquals(out, Arrays.copyOf(got.array(), got.position()), "the transmitted frame reached the peer");
                await(tx);
                assertEquals(0, b.stats().refused(), "nothing refused: " + b.stats().lastRefusal());
            }
        }
    }

    @Test
    void framesFlowBothWaysRxIsLoggedAndSendRarpAnnounces() throws Exception {
        Path sock = dir.resolve("net.sock");
        try (DatagramChannel peer = DatagramChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            DgramBackend net = new DgramBackend(new InetSocketAddress("127.0.0.1", 0),
                    (InetSocketAddress) peer.getLocalAddress());
            int devicePort = net.localPort();
            try (VhostUserBackend b = VhostUserBackend.serveNet(new NetOptions(MAC, 256, false), net,
                         BackendOptions.server(sock));
                 BlkTestFrontend fe = new BlkTestFrontend(sock);
                 EventFd kickRx = new EventFd(Linux.EFD_NONBLOCK); EventFd kickTx = new EventFd(Linux.EFD_NONBLOCK);
                 EventFd callRx = new EventFd(Linux.EFD_NONBLOCK); EventFd callTx = new EventFd(Linux.EFD_NONBLOCK)) {
                fe.negotiate();
                assertTrue(VhostUser.has(fe.protocol, VhostUser.PF_RARP), "a net back-end offers RARP");
                assertEquals(3, fe.conn.getU64(VhostUser.GET_QUEUE_NUM));
                fe.ring = QueueConfig.contiguous(128, 0x1000, fe.ringFeatures()); // for startLogging's SET_VRING_ADDR
                DriverQueue rx = startRing(fe, RX, 0x1000, kickRx, callRx);
                DriverQueue tx = startRing(fe, TX, 0x4000, kickTx, callTx);
                fe.startLogging();

                // TX: header + frame in one device-readable buffer.
                byte[] out = frame("ferry-tx");
                fe.dm.fill(BlkTestFrontend.DATA, 12, (byte) 0);
                fe.dm.write(BlkTestFrontend.DATA + 12, out, 0, out.length);
                tx.add(List.of(new DriverQueue.Buffer(BlkTestFrontend.DATA, 12 + out.length)), List.of(), false);
                kickTx.signal();
                ByteBuffer got = ByteBuffer.allocate(2048);
                peer.receive(got);
                assertArrayEquals(out, Arrays.copyOf(got.array(), got.position()), "the transmitted frame reached the peer");
                await(tx);

                // RX: a buffer for the device, then a datagram from the peer.
                for (int i = 0; i < 4; i++) {
                    rx.add(List.of(), List.of(new DriverQueue.Buffer(BlkTestFrontend.DATA + 0x10000 + i * 4096L, 2048)), false);
                }
                kickRx.signal();
                byte[][] before = fe.snapshot();
                fe.harvestLog();
                byte[] in = frame("ferry-rx");
                peer.send(ByteBuffer.wrap(in), new InetSocketAddress("127.0.0.1", devicePort));
                DriverQueue.Used u = await(rx);
                assertEquals(12 + in.length, u.length());
                byte[] landed = new byte[in.length];
                fe.dm.read(BlkTestFrontend.DATA + 0x10000 + 12, landed, 0, landed.length);
                assertArrayEquals(in, landed, "the peer's frame landed in the RX buffer after the header");
                Set<Long> missing = new TreeSet<>(fe.changedPages(before));
                Set<Long> logged = fe.harvestLog();
                missing.removeAll(logged);
                assertEquals(Set.of(), missing, "RX pages written but not logged");
                assertTrue(logged.contains((BlkTestFrontend.DATA + 0x10000) >>> 12), "the RX buffer's page is logged");

                // SEND_RARP: the front-end announces the guest for it.
                fe.conn.request(VhostUser.SEND_RARP, Payloads.rarp(MAC));
                got.clear();
                peer.receive(got);
                assertEquals(0x80, got.get(12) & 0xff);
                assertEquals(0x35, got.get(13) & 0xff, "ethertype 0x8035 (RARP)");
                assertArrayEquals(MAC, Arrays.copyOfRange(got.array(), 6, 12), "from the guest's MAC");
                assertEquals(1, b.stats().rarps());
            }
        }
    }
}
