package dev.ferry.vhostuser.backend;

import dev.ferry.core.sys.EventFd;
import dev.ferry.core.sys.Linux;
import dev.ferry.virtio.guest.NetTraffic;
import dev.ferry.virtio.net.DgramBackend;
import dev.ferry.virtio.net.NetOptions;
import dev.ferry.virtio.net.VirtioNet;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.QueueConfig;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Ferry's multiqueue net back-end ({@link MultiQueueNet}) under a hand-driven front-end: 2N queues
 * and protocol feature MQ; receive steering follows each flow to the pair it last transmitted on
 * (to the first enabled pair for an unknown flow or a disabled pair); writes into every pair's
 * rings are logged; a hostile TX or RX chain is a device error, not a crash.
 */
@Timeout(60)
class MultiQueueNetBackendTest {
    private static final byte[] MAC = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    @TempDir
    Path dir;

    private static final class Rig implements AutoCloseable {
        final DatagramChannel peer;
        final DgramBackend net;
        final InetSocketAddress device;
        final VhostUserBackend backend;
        final BlkTestFrontend fe;
        final List<EventFd> fds = new ArrayList<>();
        final DriverQueue[] queues = new DriverQueue[4];
        final EventFd[] kicks = new EventFd[4];

        Rig(Path sock) throws Exception {
            this(sock, 0);
        }

        /** A rig whose front-end declines {@code declined} (e.g. MRG_RXBUF). */
        Rig(Path sock, long declined) throws Exception {
            peer = DatagramChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
            net = new DgramBackend(new InetSocketAddress("127.0.0.1", 0), (InetSocketAddress) peer.getLocalAddress());
            device = new InetSocketAddress("127.0.0.1", net.localPort());
            backend = VhostUserBackend.serveNet(new NetOptions(MAC, 256, false), net, BackendOptions.server(sock), 2);
            fe = new BlkTestFrontend(sock);
            fe.negotiateWithout(declined);
        }

        /** Starts ring {@code index} at its own area (0x1000 + 0x3000·index), enabled. */
        DriverQueue start(int index) throws Exception {
            long gpa = 0x1000 + 0x3000L * index;
            QueueConfig c = QueueConfig.contiguous(128, gpa, fe.ringFeatures());
            DriverQueue q = DriverQueue.builder(fe.dm, c).build();
            EventFd kick = new EventFd(Linux.EFD_NONBLOCK);
            EventFd call = new EventFd(Linux.EFD_NONBLOCK);
            fds.add(kick);
            fds.add(call);
            fe.conn.request(VhostUser.SET_VRING_NUM, Payloads.vringState(index, 128));
            fe.conn.request(VhostUser.SET_VRING_BASE, Payloads.vringState(index, 0));
            fe.conn.request(VhostUser.SET_VRING_ADDR, Payloads.vringAddr(new Payloads.VringAddr(index, VhostUser.VRING_F_LOG,
                    BlkTestFrontend.USER_BASE + c.descGpa(), BlkTestFrontend.USER_BASE + c.usedGpa(),
                    BlkTestFrontend.USER_BASE + c.availGpa(), c.usedGpa())));
            fe.conn.request(VhostUser.SET_VRING_KICK, Payloads.u64(index), kick.fd());
            fe.conn.request(VhostUser.SET_VRING_CALL, Payloads.u64(index), call.fd());
            fe.conn.request(VhostUser.SET_VRING_ENABLE, Payloads.vringState(index, 1));
            queues[index] = q;
            kicks[index] = kick;
            return q;
        }

        /**
         * Sends a Ferry traffic DATA frame of flow {@code flow} on pair {@code pair}'s tx queue; the
         * peer gets it, and the device gives the buffer back. The frame reaches the peer before the
         * device publishes the tx used index (it sends, then publishes), so only the returned buffer
         * says the device is done writing the ring: a snapshot taken before that races its
         * {@code used.idx} store.
         */
        void transmit(int pair, int flow, long at) throws Exception {
            transmit(pair, traffic(NetTraffic.PEER_MAC, MAC, NetTraffic.DATA, flow), at);
        }

        /** As above, with any frame {@code f}. */
        void transmit(int pair, byte[] f, long at) throws Exception {
            fe.dm.fill(at, 12, (byte) 0);
            fe.dm.write(at + 12, f, 0, f.length);
            DriverQueue tx = queues[2 * pair + 1];
            int head = tx.add(List.of(new DriverQueue.Buffer(at, 12 + f.length)), List.of(), false);
            kicks[2 * pair + 1].signal();
            ByteBuffer got = ByteBuffer.allocate(2048);
            peer.receive(got);
            assertEquals(f.length, got.position());
            long deadline = System.nanoTime() + 5_000_000_000L;
            DriverQueue.Used u;
            while ((u = tx.pollUsed()) == null) {
                assertTrue(System.nanoTime() < deadline, "tx queue " + (2 * pair + 1) + " did not return its buffer within 5 s");
                Thread.sleep(1);
            }
            assertEquals(new DriverQueue.Used(head, 0), u, "the tx buffer comes back with nothing written");
        }

        void rxBuffers(int pair, long at, int n) {
            for (int i = 0; i < n; i++) {
                queues[2 * pair].add(List.of(), List.of(new DriverQueue.Buffer(at + i * 4096L, 2048)), false);
            }
            kicks[2 * pair].signal();
        }

        /** The peer sends a REPLY of flow {@code flow}; returns the pair whose rx queue got it. */
        int receive(int flow) throws Exception {
            peer.send(ByteBuffer.wrap(traffic(MAC, NetTraffic.PEER_MAC, NetTraffic.REPLY, flow)), device);
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (System.nanoTime() < deadline) {
                for (int p = 0; p < 2; p++) {
                    if (queues[2 * p] != null && queues[2 * p].pollUsed() != null) {
                        return p;
                    }
                }
                Thread.sleep(1);
            }
            throw new AssertionError("the frame reached no rx queue within 5 s");
        }

        @Override
        public void close() {
            fe.close();
            backend.close();
            fds.forEach(EventFd::close);
            try {
                peer.close();
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }
    }

    static byte[] traffic(byte[] dst, byte[] src, int kind, int flow) {
        ByteBuffer b = ByteBuffer.allocate(64);
        b.put(0, dst).put(6, src).putShort(12, (short) NetTraffic.ETHERTYPE).putInt(14, NetTraffic.MAGIC);
        b.put(18, (byte) kind).put(19, (byte) flow).putLong(20, 1);
        return b.array();
    }

    @Test
    void repliesFollowTheirFlowToThePairItTransmittedOn() throws Exception {
        try (Rig r = new Rig(dir.resolve("mq.sock"))) {
            assertTrue(VhostUser.has(r.fe.protocol, VhostUser.PF_MQ));
            assertEquals(4, r.fe.conn.getU64(VhostUser.GET_QUEUE_NUM), "two pairs: 4 queues, no control queue");
            for (int q = 0; q < 4; q++) {
                r.start(q);
            }
            r.fe.ring = r.queues[0].config();
            r.fe.startLogging();
            r.rxBuffers(0, BlkTestFrontend.DATA, 8);
            r.rxBuffers(1, BlkTestFrontend.DATA + 0x10000, 8);
            r.transmit(1, 5, BlkTestFrontend.DATA + 0x40000);
            r.transmit(0, 6, BlkTestFrontend.DATA + 0x41000);
            // Both transmits came back and the rx queues hold only buffers: the device writes
            // nothing until the peer sends, so the snapshot and the harvest see the same memory.
            byte[][] before = r.fe.snapshot();
            r.fe.harvestLog();
            assertEquals(1, r.receive(5), "flow 5 went out on pair 1");
            assertEquals(0, r.receive(6), "flow 6 went out on pair 0");
            assertEquals(0, r.receive(7), "flow 7 never went out: the first pair");
            Set<Long> missing = new TreeSet<>(r.fe.changedPages(before));
            missing.removeAll(r.fe.harvestLog());
            assertEquals(Set.of(), missing, "pages the device wrote (both pairs' rx) but did not log");
            r.transmit(0, 5, BlkTestFrontend.DATA + 0x42000);
            assertEquals(0, r.receive(5), "flow 5 moved to pair 0 with its last transmit");
            r.transmit(1, 5, BlkTestFrontend.DATA + 0x43000);
            r.fe.conn.request(VhostUser.SET_VRING_ENABLE, Payloads.vringState(2, 0));
            assertEquals(0, r.receive(5), "pair 1 disabled: the first enabled pair");
            MultiQueueNet m = (MultiQueueNet) r.backend.model();
            assertEquals(2, m.txFrames(0));
            assertEquals(2, m.txFrames(1));
            assertNull(r.backend.stats().lastDeviceError());
        }
    }

    /**
     * A frame of the guest's that is not Ferry's traffic (here an IPv6 neighbour solicitation,
     * which Linux sends from whichever CPU on that CPU's pair) is a flow of its own, not traffic
     * flow 0: before, it moved flow 0's replies to its pair. Seen with Linux and two pairs under
     * QEMU (LinuxVirtioNetMqTest): 15 of flow 0's 300 replies arrived on rx queue 1.
     */
    @Test
    void aGuestFrameOfAnotherProtocolDoesNotMoveTrafficFlowZero() throws Exception {
        try (Rig r = new Rig(dir.resolve("mq.sock"))) {
            for (int q = 0; q < 4; q++) {
                r.start(q);
            }
            r.rxBuffers(0, BlkTestFrontend.DATA, 8);
            r.rxBuffers(1, BlkTestFrontend.DATA + 0x10000, 8);
            r.transmit(0, 0, BlkTestFrontend.DATA + 0x40000);
            ByteBuffer ns = ByteBuffer.allocate(86);
            ns.put(0, new byte[] {0x33, 0x33, (byte) 0xff, 0x12, 0x34, 0x56}).put(6, MAC).putShort(12, (short) 0x86dd);
            r.transmit(1, ns.array(), BlkTestFrontend.DATA + 0x41000);
            assertEquals(0, r.receive(0), "traffic flow 0 last went out on pair 0");
            MultiQueueNet m = (MultiQueueNet) r.backend.model();
            assertEquals(1, m.txFrames(1), "the other frame went out on pair 1");
            assertNull(r.backend.stats().lastDeviceError());
        }
    }

    /**
     * A stopped ring is not a disabled one: while the front-end stops the rings one by one
     * (GET_VRING_BASE), a frame whose pair's rx ring is stopped is dropped — for a learned flow
     * and for an unknown one whose first enabled pair is the stopped one — and never lands on
     * the other pair's ring, which still runs (the guest would count it misdelivered).
     */
    @Test
    void aFrameForAStoppedPairGoesToNoOtherPair() throws Exception {
        try (Rig r = new Rig(dir.resolve("mq.sock"))) {
            for (int q = 0; q < 4; q++) {
                r.start(q);
            }
            r.rxBuffers(0, BlkTestFrontend.DATA, 8);
            r.rxBuffers(1, BlkTestFrontend.DATA + 0x10000, 8);
            r.transmit(1, 5, BlkTestFrontend.DATA + 0x40000);
            r.transmit(0, 6, BlkTestFrontend.DATA + 0x41000);
            MultiQueueNet m = (MultiQueueNet) r.backend.model();
            long dropped = m.rxDropped();
            stop(r, 0); // rx0 stopped, rx1 still running
            r.peer.send(ByteBuffer.wrap(traffic(MAC, NetTraffic.PEER_MAC, NetTraffic.REPLY, 6)), r.device);
            r.peer.send(ByteBuffer.wrap(traffic(MAC, NetTraffic.PEER_MAC, NetTraffic.REPLY, 7)), r.device);
            assertEquals(1, r.receive(5), "flow 5's pair still runs");
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (m.rxDropped() < dropped + 2) {
                assertTrue(System.nanoTime() < deadline, "frames for the stopped pair dropped: " + m.rxDropped());
                Thread.sleep(1);
            }
            assertNull(r.queues[2].pollUsed(), "nothing more on pair 1's rx ring");
            assertNull(r.backend.stats().lastDeviceError());
        }
    }

    private static void stop(Rig r, int ring) throws Exception {
        try (dev.ferry.vhostuser.proto.VhostUserMessage m = r.fe.conn.call(VhostUser.GET_VRING_BASE,
                Payloads.vringState(ring, 0))) {
            assertEquals(ring, Payloads.vringState(m).index());
        }
    }

    @Test
    void aTxChainWithoutTheHeaderIsADeviceError() throws Exception {
        try (Rig r = new Rig(dir.resolve("mq.sock"))) {
            for (int q = 0; q < 4; q++) {
                r.start(q);
            }
            r.queues[3].add(List.of(new DriverQueue.Buffer(BlkTestFrontend.DATA, 4)), List.of(), false);
            r.kicks[3].signal();
            awaitDeviceError(r.backend);
            assertTrue(r.backend.stats().lastDeviceError().contains("TX chain head 0 on queue 3 has 4 device-readable"),
                    r.backend.stats().lastDeviceError());
        }
    }

    /**
     * A received frame bigger than the next rx chain is dropped and counted, the chain kept: the
     * next frame that fits lands in it, and the device goes on. It was a device error: any peer
     * could break a multiqueue guest's NIC with one frame above the guest's 1518-byte buffers.
     */
    @Test
    void anRxChainTooSmallForTheFrameDropsTheFrameAndKeepsTheChain() throws Exception {
        try (Rig r = new Rig(dir.resolve("mq.sock"), VhostUser.bit(VirtioNet.F_MRG_RXBUF))) {
            for (int q = 0; q < 4; q++) {
                r.start(q);
            }
            r.queues[0].add(List.of(), List.of(new DriverQueue.Buffer(BlkTestFrontend.DATA, 60)), false);
            r.kicks[0].signal();
            MultiQueueNet m = (MultiQueueNet) r.backend.model();
            r.peer.send(ByteBuffer.wrap(traffic(MAC, NetTraffic.PEER_MAC, NetTraffic.REPLY, 0)), r.device); // 64 + 12
            awaitTooBig(m, "the frame is dropped as too big");
            assertNull(r.queues[0].pollUsed(), "nothing used");
            byte[] small = java.util.Arrays.copyOf(traffic(MAC, NetTraffic.PEER_MAC, NetTraffic.REPLY, 0), 44);
            r.peer.send(ByteBuffer.wrap(small), r.device);
            DriverQueue.Used u = awaitUsed(r.queues[0], "the next frame lands in the kept chain within 5 s");
            assertEquals(new DriverQueue.Used(0, 12 + 44), u, "the kept chain, with the small frame and its header");
            byte[] got = new byte[44];
            r.fe.dm.read(BlkTestFrontend.DATA + 12, got, 0, 44);
            assertEquals(java.util.Arrays.toString(small), java.util.Arrays.toString(got));
            assertEquals(1, m.rxTooBig());
            assertEquals(1, m.rxFrames(0));
            assertNull(r.backend.stats().lastDeviceError(), "no device error");
        }
    }

    /**
     * With MRG_RXBUF a frame larger than one chain is spread over as many as it needs, their count
     * in the header's num_buffers: with one 40-byte chain posted the 76-byte frame (header
     * included) waits, nothing used; a second chain and a kick deliver it into both (40 + 36).
     */
    @Test
    void withMergeableBuffersAFrameSpansChainsAndWaitsForEnough() throws Exception {
        try (Rig r = new Rig(dir.resolve("mq.sock"))) {
            assertTrue(VhostUser.has(r.fe.features, VirtioNet.F_MRG_RXBUF), "MRG_RXBUF offered and taken");
            for (int q = 0; q < 4; q++) {
                r.start(q);
            }
            long a = BlkTestFrontend.DATA;
            long b = BlkTestFrontend.DATA + 0x1000;
            r.queues[0].add(List.of(), List.of(new DriverQueue.Buffer(a, 40)), false);
            r.kicks[0].signal();
            MultiQueueNet m = (MultiQueueNet) r.backend.model();
            byte[] frame = traffic(MAC, NetTraffic.PEER_MAC, NetTraffic.REPLY, 0); // 64 bytes, 76 with the header
            r.peer.send(ByteBuffer.wrap(frame), r.device);
            Thread.sleep(200); // proving a negative: the frame must not go into one short chain
            assertNull(r.queues[0].pollUsed(), "one 40-byte chain cannot hold 76 bytes: the frame waits");
            assertEquals(0, m.rxTooBig(), "waiting, not dropped");
            r.queues[0].add(List.of(), List.of(new DriverQueue.Buffer(b, 40)), false);
            r.kicks[0].signal();
            DriverQueue.Used first = awaitUsed(r.queues[0], "the frame is delivered once a second chain came");
            DriverQueue.Used second = r.queues[0].pollUsed();
            assertEquals(new DriverQueue.Used(0, 40), first);
            assertEquals(new DriverQueue.Used(1, 36), second);
            byte[] hdr = new byte[12];
            r.fe.dm.read(a, hdr, 0, 12);
            assertEquals(2, (hdr[10] & 0xff) | (hdr[11] & 0xff) << 8, "num_buffers");
            byte[] got = new byte[64];
            r.fe.dm.read(a + 12, got, 0, 28);
            r.fe.dm.read(b, got, 28, 36);
            assertEquals(java.util.Arrays.toString(frame), java.util.Arrays.toString(got), "the frame across both chains");
            assertEquals(1, m.rxMultiBuffer());
            assertEquals(1, m.rxFrames(0));
            assertNull(r.backend.stats().lastDeviceError(), "no device error");
        }
    }

    /**
     * With MRG_RXBUF a frame larger than a whole ring of chains can never be delivered: it is
     * dropped and counted, every chain kept, and the next frame lands in the first of them.
     */
    @Test
    void withMergeableBuffersAFrameBiggerThanTheWholeRingIsDropped() throws Exception {
        try (Rig r = new Rig(dir.resolve("mq.sock"))) {
            for (int q = 0; q < 4; q++) {
                r.start(q);
            }
            for (int i = 0; i < 128; i++) { // the ring's 128 entries, 16 bytes each: 2048 bytes
                r.queues[0].add(List.of(), List.of(new DriverQueue.Buffer(BlkTestFrontend.DATA + 16L * i, 16)), false);
            }
            r.kicks[0].signal();
            MultiQueueNet m = (MultiQueueNet) r.backend.model();
            byte[] big = java.util.Arrays.copyOf(traffic(MAC, NetTraffic.PEER_MAC, NetTraffic.REPLY, 0), 4000);
            r.peer.send(ByteBuffer.wrap(big), r.device);
            awaitTooBig(m, "the frame is dropped as too big for the ring");
            assertNull(r.queues[0].pollUsed(), "nothing used");
            byte[] small = java.util.Arrays.copyOf(traffic(MAC, NetTraffic.PEER_MAC, NetTraffic.REPLY, 0), 20);
            r.peer.send(ByteBuffer.wrap(small), r.device); // 32 bytes with the header: the first two chains
            DriverQueue.Used u = awaitUsed(r.queues[0], "the next frame lands in the kept chains within 5 s");
            assertEquals(new DriverQueue.Used(0, 16), u, "the first kept chain");
            assertEquals(new DriverQueue.Used(1, 16), r.queues[0].pollUsed(), "and the second");
            assertEquals(1, m.rxFrames(0));
            assertEquals(1, m.rxTooBig());
            assertNull(r.backend.stats().lastDeviceError(), "no device error");
        }
    }

    /** The next used entry of {@code q}, waited for up to 5 s. */
    private static DriverQueue.Used awaitUsed(DriverQueue q, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        DriverQueue.Used u;
        while ((u = q.pollUsed()) == null) {
            assertTrue(System.nanoTime() < deadline, what);
            Thread.sleep(1);
        }
        return u;
    }

    /** Waits up to 5 s for the model to count a frame dropped as too big. */
    private static void awaitTooBig(MultiQueueNet m, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (m.rxTooBig() == 0) {
            assertTrue(System.nanoTime() < deadline, what);
            Thread.sleep(1);
        }
    }

    private static void awaitDeviceError(VhostUserBackend b) throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (b.stats().lastDeviceError() == null && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
        assertNotNull(b.stats().lastDeviceError(), b.stats().toString());
    }
}
