package dev.ferry.vmm.vhostuser;

import dev.ferry.virtio.net.DgramBackend;
import dev.ferry.virtio.net.NetOptions;
import dev.ferry.virtio.net.peer.TrafficPeer;
import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.MultiQueueNet;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Linux's virtio_net with two queue pairs on Ferry's multiqueue back-end ({@link MultiQueueNet})
 * under QEMU 7.2 (see {@link LinuxGuestTest}): both pairs carry their flows, also after the
 * back-end is replaced between rounds or mid-traffic.
 */
class LinuxVirtioNetMqTest extends LinuxGuestTest {
    /** The fields of the guest's FERRY-NETMQ line of flow {@code flow}. */
    private static Map<String, String> flowLine(LinuxQemu q, int flow) throws IOException {
        String text = q.serialText();
        return text.lines().filter(l -> l.startsWith("FERRY-NETMQ flow=" + flow + " ")).map(LinuxGuestTest::fields)
                .findFirst().orElseThrow(() -> new AssertionError("no FERRY-NETMQ line of flow " + flow + ":\n" + text));
    }

    /** A per-queue counter of the guest's driver (its FERRY-NETMQ-STAT line). */
    private static long queueStat(LinuxQemu q, String name) throws IOException {
        return Long.parseLong(q.line("FERRY-NETMQ-STAT " + name + "=").trim());
    }

    /**
     * Two queue pairs: QEMU's {@code virtio-net-pci} with {@code mq=on} on a {@code vhost-user}
     * netdev with {@code queues=2}, Ferry's {@link MultiQueueNet} behind it, and two vCPUs so that
     * Linux's virtio_net uses both pairs. QEMU serves the control queue and enables pair 1's rings
     * at the driver's VQ_PAIRS_SET. The guest sends one flow per pair from a process pinned to
     * that pair's CPU (the driver's XPS maps CPU i to tx queue i), flow 1 half as many frames
     * again as flow 0: the per-queue counts of the back-end and of the guest's driver then say
     * which queue carried which flow.
     */
    @Test
    void linuxVirtioNetUsesBothQueuePairsOfTheMultiqueueBackEnd() throws Exception {
        int frames = 300;
        long[] perFlow = {frames, frames * 3 / 2};
        byte[] mac = NetOptions.parseMac(MAC);
        Path sock = dir.resolve("netmq.sock");
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend b = VhostUserBackend.serveNet(new NetOptions(mac, 256, false),
                     new DgramBackend(new InetSocketAddress("127.0.0.1", 0), new InetSocketAddress("127.0.0.1", peer.port())),
                     BackendOptions.server(sock), 2);
             LinuxQemu q = new LinuxQemu(dir, "netmq", kernel.image(), initrd, "ferry.mode=netmq ferry.frames=" + frames
                     + " ferry.window=16", List.of(nicMq(sock)), null, 2)) {
            MultiQueueNet m = (MultiQueueNet) b.model();
            Map<String, Object> d = new HashMap<>();
            try {
                q.awaitSerial("FERRY-DONE", 240);
            } finally {
                m.describe(d);
                System.out.printf("netmq: peer %s; back-end %s %s%n", peer.report(), b.stats(), d);
            }
            String features = q.line("FERRY-FEATURES");
            System.out.printf("virtio_net (mq) acked %s (bit 0 first)%n", features);
            assertTrue(acked(features, NET_F_MQ) && acked(features, NET_F_CTRL_VQ), "MQ and CTRL_VQ acked: " + features);
            assertEquals("tx=2 cpus=2", q.line("FERRY-NETMQ-QUEUES"), "Linux uses two queue pairs");
            for (int p = 0; p < 2; p++) {
                TrafficPeer.FlowStats f = peer.flow(mac, p);
                assertEquals(perFlow[p], f.received(), "the peer got every frame of flow " + p + ": " + peer.report());
                assertEquals(perFlow[p], f.lastSeq(), "up to the last: " + peer.report());
                assertEquals(0, f.lost(), "in order, none missing: " + f.gaps());
                assertEquals(0, f.dupsOrReorders(), "no duplicate or reordered frame of flow " + p);
                // Only the peer's replies come back, so each rx queue's count names its flow.
                assertEquals(perFlow[p], m.rxFrames(p), "flow " + p + "'s replies went to rx queue " + p + ": " + d);
                assertEquals(perFlow[p], queueStat(q, "rx_queue_" + p + "_packets"),
                        "the guest's driver took flow " + p + "'s replies from rx queue " + p);
                // The kernel sends a few frames of its own (IPv6 neighbour discovery) on either pair.
                assertTrue(m.txFrames(p) >= perFlow[p], "pair " + p + "'s tx queue carried flow " + p + ": " + d);
                assertTrue(queueStat(q, "tx_queue_" + p + "_packets") >= perFlow[p], "the driver sent on tx queue " + p);
                Map<String, String> got = flowLine(q, p);
                assertEquals("-1", got.get("other-cpu"), "flow " + p + " sent from CPU " + p + " only: " + got);
                assertEquals(Long.toString(f.repliesSent()), got.get("replies"), "flow " + p + " got every reply: " + got);
                assertEquals("0", got.get("bad"), "every reply intact: " + got);
                assertEquals("0", got.get("reorder"), "replies in order: " + got);
                assertEquals("0", got.get("gaps"), "no reply missing: " + got);
            }
            assertEquals(peer.framesReceived(), m.txFrames(0) + m.txFrames(1), "every frame sent reached the peer: " + d);
            assertEquals(0, m.rxDropped(), "no received frame dropped: " + d);
            assertTrue(b.stats().baseSet(2) >= 0 && b.stats().baseSet(3) >= 0, "QEMU set up pair 1's rings");
            assertEquals(0, b.stats().refused(), "no request refused: " + b.stats().lastRefusal());
            assertTrue(q.awaitExit(60), "the guest powered off");
        }
    }

    /**
     * Two queue pairs across a back-end restart: QEMU's chardev is a client with
     * {@code reconnect=1}, Ferry's two-pair back-end the server. The guest runs one flow per pair
     * (flow bytes 0 and 1); then the test closes that back-end and serves a new
     * {@link MultiQueueNet} on the same socket path. QEMU takes the link down when the connection
     * drops (the guest's carrier goes off: STATUS), reconnects within a second or so,
     * negotiates again, enables each pair the driver had before starting it, starts every ring at
     * its used index (it cannot ask the dead back-end for its vring bases) and takes the link up.
     * The guest waits for the carrier to go off and on again, then runs a second round on both
     * pairs with flow bytes 2 and 3. The new back-end's per-pair rx counts must be exactly the
     * second round's replies, each flow reaches the peer in order without duplicates, and each
     * gets every reply intact and in order.
     */
    @Test
    void linuxVirtioNetUsesBothQueuePairsAgainAfterTheBackEndIsReplaced() throws Exception {
        restart("netmq-restart", 200, false);
    }

    /**
     * As above, but the back-end goes while the first round runs on both pairs (once the peer has
     * a quarter of each flow). The new back-end resumes each tx ring at its used index: the peer
     * gets the first round in order and nothing twice. Frames the guest sends while the link is
     * down are lost, in one run per flow: those it kicked into the ring QEMU's own virtio-net takes
     * off and drops (the chains between the first back-end's last and the second's
     * SET_VRING_BASE, printed); the others never reach the ring (Linux's virtio_net stops its tx
     * queues when the link goes down, and the qdisc is reset while the carrier is off). Replies in
     * flight when the first back-end closes are lost with its socket. The guest gives an
     * unanswered frame up after 3 s. The second round is exact, as above.
     */
    @Test
    void linuxVirtioNetResumesBothQueuePairsWhenTheBackEndIsReplacedMidTraffic() throws Exception {
        restart("netmq-midway", 400, true);
    }

    private void restart(String name, int frames, boolean midTraffic) throws Exception {
        long[] perPair = {frames, frames * 3 / 2};
        byte[] mac = NetOptions.parseMac(MAC);
        Path sock = dir.resolve(name + ".sock");
        String[] nic = {"-chardev", "socket,id=c0,path=" + sock + ",reconnect=1",
            "-netdev", "vhost-user,id=n0,chardev=c0,queues=2",
            "-device", "virtio-net-pci,netdev=n0,mac=" + MAC + ",romfile=,vectors=0,mq=on"};
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend first = mqBackEnd(peer, sock);
             LinuxQemu q = new LinuxQemu(dir, name, kernel.image(), initrd, "ferry.mode=netmq ferry.frames="
                     + frames + " ferry.window=16 ferry.rounds=2" + (midTraffic ? " ferry.patience=3000" : ""),
                     List.of(nic), null, 2)) {
            MultiQueueNet m1 = (MultiQueueNet) first.model();
            Map<String, Object> d1 = new HashMap<>();
            try {
                if (midTraffic) {
                    await("a quarter of each flow at the peer", 240, () -> peer.flow(mac, 0).received() >= perPair[0] / 4
                            && peer.flow(mac, 1).received() >= perPair[1] / 4, () -> peer.report() + "; serial "
                            + tail(q));
                } else {
                    q.awaitSerial("FERRY-NETMQ-ROUND 1 done", 240);
                }
            } finally {
                m1.describe(d1);
                System.out.printf("%s, round 1: peer %s; back-end %s %s%n", name, peer.report(), first.stats(), d1);
            }
            assertEquals("tx=2 cpus=2", q.line("FERRY-NETMQ-QUEUES"), "Linux uses two queue pairs");
            first.close();
            long[] usedRx = {m1.rxFrames(0), m1.rxFrames(1)};
            long[] sentTx = {m1.txFrames(0), m1.txFrames(1)};
            long[] atClose = {peer.flow(mac, 0).lastSeq(), peer.flow(mac, 1).lastSeq()};
            m1.describe(d1);
            System.out.printf("%s: first back-end closed: %s; peer's last frames %d, %d%n", name, d1, atClose[0],
                    atClose[1]);
            if (midTraffic) {
                assertTrue(!q.serialText().contains("FERRY-NETMQ-ROUND 1 done"), "the first round still ran");
            } else {
                for (int p = 0; p < 2; p++) {
                    assertEquals(perPair[p], usedRx[p], "round 1: flow " + p + "'s replies on rx queue " + p + ": " + d1);
                    assertEquals(perPair[p], peer.flow(mac, p).received(), "round 1: the peer got flow " + p);
                }
            }
            try (VhostUserBackend second = mqBackEnd(peer, sock)) {
                MultiQueueNet m2 = (MultiQueueNet) second.model();
                Map<String, Object> d2 = new HashMap<>();
                try {
                    q.awaitSerial("FERRY-DONE", 240);
                } finally {
                    m2.describe(d2);
                    System.out.printf("%s, round 2: peer %s; back-end %s %s; guest: %s%n", name, peer.report(),
                            second.stats(), d2, q.serialText().lines().filter(l -> l.startsWith("FERRY-NETMQ ")
                                    || l.startsWith("FERRY-NETMQ-R")).toList());
                }
                Map<String, String> relink = fields(q.line("FERRY-NETMQ-RELINK"));
                assertTrue(relink.get("off-seen").equals("1") || Long.parseLong(relink.get("carrier-changes"))
                        >= Long.parseLong(fields(q.line("FERRY-NETMQ-ROUND 1 done")).get("base")) + 2,
                        "the guest saw its carrier go off and on: " + relink);
                assertEquals(1, second.stats().connections(), "QEMU reconnected once");
                for (int p = 0; p < 2; p++) {
                    assertEquals((int) (usedRx[p] & 0xffff), second.stats().baseSet(2 * p),
                            "QEMU resumed rx ring " + 2 * p + " at its used index (the first back-end's deliveries)");
                    // The tx chains between the first back-end's last one and where the second
                    // started: QEMU's own virtio-net took them while the link was down (a kick then
                    // reaches QEMU, which drops the frames of a link that is down) — never sent.
                    // Frames the guest sends once its driver has stopped its tx queues for the link
                    // going down do not reach the ring at all.
                    long takenByQemu = (second.stats().baseSet(2 * p + 1) - sentTx[p]) & 0xffff;
                    if (midTraffic) {
                        // Round 1 across the switch: in order, none twice; the frames missing at the
                        // peer are one run, those sent while the link was down.
                        TrafficPeer.FlowStats f = peer.flow(mac, p);
                        System.out.printf("%s: pair %d: first back-end sent %d, QEMU took %d, second started at tx %d;"
                                + " the peer had frame %d at the close; gaps %s%n", name, p, sentTx[p], takenByQemu,
                                second.stats().baseSet(2 * p + 1), atClose[p], f.gaps());
                        // The run may be the round's tail: the switch came as the guest sent its last frames.
                        long tail = perPair[p] - f.lastSeq();
                        assertTrue(tail >= 0, "round 1: no frame past the last: " + peer.report());
                        assertEquals(0, f.dupsOrReorders(), "round 1: none sent twice across the switch");
                        assertEquals(perPair[p], f.received() + f.lost() + tail, "round 1: every frame seen or counted lost");
                        assertTrue(f.gaps().size() + (tail > 0 ? 1 : 0) <= 1 && f.lost() + tail <= 64, "round 1: frames lost"
                                + " in one run around the switch, a few windows at most (QEMU dropped " + takenByQemu
                                + "): gaps " + f.gaps() + ", tail " + tail);
                        Map<String, String> got = flowLine(q, p);
                        assertEquals("0", got.get("bad"), "round 1: every reply that came is intact: " + got);
                        assertEquals("0", got.get("reorder"), "round 1: replies in order: " + got);
                        System.out.printf("%s: flow %d: %d of %d frames lost at the switch (QEMU dropped %d tx chains of"
                                + " pair %d), %s replies unanswered%n", name, p, f.lost() + tail, perPair[p], takenByQemu, p,
                                got.get("unanswered"));
                    } else {
                        System.out.printf("%s: QEMU dropped %d tx chains of pair %d while the link was down%n", name,
                                takenByQemu, p);
                    }
                    int flow = 2 + p;
                    TrafficPeer.FlowStats f = peer.flow(mac, flow);
                    assertEquals(perPair[p], f.received(), "the peer got every frame of flow " + flow + ": "
                            + peer.report());
                    assertEquals(perPair[p], f.lastSeq(), "up to the last: " + peer.report());
                    assertEquals(0, f.lost(), "in order, none missing: " + f.gaps());
                    assertEquals(0, f.dupsOrReorders(), "no duplicate or reordered frame of flow " + flow);
                    if (midTraffic) {
                        // The new back-end also delivered the first round's later replies.
                        assertTrue(m2.rxFrames(p) >= perPair[p], "round 2 on rx queue " + p + ": " + d2);
                    } else {
                        assertEquals(perPair[p], m2.rxFrames(p), "round 2: flow " + flow + "'s replies went to rx queue "
                                + p + " of the new back-end: " + d2);
                    }
                    assertEquals(perPair[p], driverRxDelta(q, p), "round 2: the driver took flow " + flow
                            + "'s replies from rx queue " + p);
                    assertTrue(m2.txFrames(p) >= perPair[p], "pair " + p + "'s tx queue carried flow " + flow + ": " + d2);
                    Map<String, String> got = flowLine(q, flow);
                    assertEquals("2", got.get("round"), "flow " + flow + " ran in round 2: " + got);
                    assertEquals("-1", got.get("other-cpu"), "flow " + flow + " sent from CPU " + p + " only: " + got);
                    assertEquals(Long.toString(f.repliesSent()), got.get("replies"), "flow " + flow + " got every reply: "
                            + got);
                    assertEquals("0", got.get("bad"), "every reply intact: " + got);
                    assertEquals("0", got.get("reorder"), "replies in order: " + got);
                    assertEquals("0", got.get("gaps"), "no reply missing: " + got);
                }
                assertEquals(0, m2.rxDropped(), "no received frame dropped: " + d2);
                assertEquals(0, second.stats().refused(), "no request refused: " + second.stats().lastRefusal());
                assertEquals(null, second.stats().lastDeviceError(), "no device error");
                assertTrue(q.awaitExit(60), "the guest powered off");
            }
        }
    }

    /** How many frames the guest's driver took from rx queue {@code p} in the last round (its counter's last step). */
    private static long driverRxDelta(LinuxQemu q, int p) throws IOException {
        List<Long> v = q.serialText().lines().filter(l -> l.startsWith("FERRY-NETMQ-STAT rx_queue_" + p + "_packets="))
                .map(l -> Long.parseLong(l.substring(l.indexOf('=') + 1).trim())).toList();
        assertEquals(2, v.size(), "the driver's counters after each round");
        return v.get(1) - v.get(0);
    }
}
