package dev.ferry.virtio.net.peer;

import dev.ferry.virtio.guest.NetTraffic;
import dev.ferry.virtio.net.Rarp;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The traffic peer's checker and switch on hand-made frames: a jump in a guest's sequence is a
 * gap of the right size, a repeat or a step back is a duplicate/reorder, each DATA frame is
 * answered with the peer's next sequence number and the echo; a RARP is an announce and moves the
 * MAC to the port it came from. And it runs as its own process.
 */
@Timeout(60)
class TrafficPeerTest {
    static final byte[] GUEST = {0x52, 0x54, 0, 1, 2, 3};

    static ByteBuffer data(long seq) {
        ByteBuffer b = ByteBuffer.allocate(64);
        b.put(0, NetTraffic.PEER_MAC).put(6, GUEST).putShort(12, (short) NetTraffic.ETHERTYPE)
                .putInt(14, NetTraffic.MAGIC).put(18, (byte) NetTraffic.DATA).putLong(20, seq);
        return b;
    }

    static ByteBuffer reply(DatagramChannel ch) throws Exception {
        ByteBuffer in = ByteBuffer.allocate(2048);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        ch.configureBlocking(false);
        while (ch.read(in) <= 0) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("no reply from the peer");
            }
            Thread.sleep(1);
        }
        return in.flip();
    }

    @Test
    void gapsDuplicatesRepliesAndAnnounces() throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             DatagramChannel a = DatagramChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
             DatagramChannel b = DatagramChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            a.connect(new InetSocketAddress("127.0.0.1", peer.port()));
            b.connect(new InetSocketAddress("127.0.0.1", peer.port()));
            long[] seqs = {1, 2, 4, 4, 3, 7};
            for (int i = 0; i < seqs.length; i++) {
                a.write(data(seqs[i]));
                ByteBuffer r = reply(a);
                assertEquals(NetTraffic.REPLY, r.get(18));
                assertEquals(i + 1, r.getLong(20), "the peer's own sequence");
                assertEquals(seqs[i], r.getLong(28), "the echo");
            }
            TrafficPeer.FlowStats f = peer.flow(GUEST);
            assertEquals(6, f.received());
            assertEquals(7, f.lastSeq());
            assertEquals(1 + 2, f.lost(), "3 (later a reorder) and 5, 6");
            assertEquals(2, f.gaps().size());
            assertEquals(3, f.gaps().get(0).expected());
            assertEquals(4, f.gaps().get(0).got());
            assertEquals(5, f.gaps().get(1).expected());
            assertEquals(2, f.dupsOrReorders(), "the second 4 and the late 3");
            assertTrue(peer.sentAt(GUEST, 6) >= peer.sentAt(GUEST, 1));
            assertEquals(-1, peer.sentAt(GUEST, 7));

            String aPort = peer.portOf(GUEST);
            b.write(ByteBuffer.wrap(Rarp.frame(GUEST)));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (peer.announces().isEmpty() && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            assertEquals(1, peer.announces().size());
            assertEquals("rarp", peer.announces().get(0).kind());
            assertEquals("52:54:00:01:02:03", peer.announces().get(0).mac());
            String bPort = peer.portOf(GUEST);
            assertTrue(!bPort.equals(aPort) && bPort.endsWith(":" + ((InetSocketAddress) b.getLocalAddress()).getPort()),
                    bPort);
            assertEquals(1, peer.moves().size());
            assertEquals(aPort, peer.moves().get(0).from());
            b.write(data(8));
            assertEquals(8, reply(b).getLong(28), "the reply goes where the MAC moved");
        }
    }

    @Test
    void runsAsItsOwnProcess() throws Exception {
        int port;
        try (DatagramChannel probe = DatagramChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            port = ((InetSocketAddress) probe.getLocalAddress()).getPort();
        }
        Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp",
                System.getProperty("java.class.path"), TrafficPeer.class.getName(), "udp:127.0.0.1:" + port, "3")
                .redirectErrorStream(true).start();
        try (BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream()));
             DatagramChannel ch = DatagramChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            String first = out.readLine();
            while (first != null && !first.startsWith("traffic peer on")) {
                first = out.readLine();
            }
            assertTrue(first != null, "the peer started");
            ch.connect(new InetSocketAddress("127.0.0.1", port));
            ch.write(data(1));
            assertEquals(1, reply(ch).getLong(28));
            String line;
            boolean reported = false;
            while ((line = out.readLine()) != null) {
                reported |= line.contains("guest 52:54:00:01:02:03: received 1, last seq 1, lost 0");
            }
            assertTrue(reported, "the report names the guest's flow");
            assertTrue(p.waitFor(20, TimeUnit.SECONDS));
            assertEquals(0, p.exitValue());
        } finally {
            p.destroyForcibly();
        }
    }
}
