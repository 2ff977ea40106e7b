package dev.ferry.virtio.e2e;

import dev.ferry.core.machine.RunState;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.MemoryTransports;
import dev.ferry.virtio.guest.NetDriverArea;
import dev.ferry.virtio.net.AnnounceTimer;
import dev.ferry.virtio.net.peer.TrafficPeer;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.net.InetSocketAddress;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A soft guest exchanging sequence-numbered frames with a traffic peer migrates three hops through
 * the real engine while the traffic runs. After each hop: the destination's rings continue from
 * the source's indices; the peer saw no duplicate, no reordering and lost nothing the guest sent;
 * the guest lost only peer frames the peer sent while the guest was down (between the source's
 * stop and the moment the destination's frames moved the guest's MAC in the peer's switch) —
 * their number is reported; the destination announced itself with five RARPs on QEMU's schedule,
 * and with GUEST_ANNOUNCE the guest announced itself and acked each round; the source announced
 * nothing.
 */
@Timeout(120)
class SoftNetMigrationTest {
    @ParameterizedTest(name = "guest-announce {0}")
    @ValueSource(booleans = {true, false})
    void threeHopsWithTrafficRunning(boolean guestAnnounce) throws Exception {
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0))) {
            SoftNetVm src = new SoftNetVm("hop0", peer.port(), false, guestAnnounce);
            try {
                src.machine.vmStart();
                src.runFor(300);
                for (int hop = 1; hop <= 3; hop++) {
                    String srcPort = src.peerPortName();
                    assertEquals(srcPort, peer.portOf(SoftNetVm.MAC), "the peer sends to the source");
                    long tStop = System.nanoTime();
                    byte[] stream = InMemoryMigration.save(src.machine);
                    assertEquals(RunState.POSTMIGRATE, src.machine.runState());
                    Map<String, Object> srcDev = src.describe();
                    NetDriverArea.Progress atSwitchover = src.progress();
                    int announcesBefore = peer.announces().size();
                    Object srcRarps = src.net().get("rarps-sent");

                    SoftNetVm dst = new SoftNetVm("hop" + hop, peer.port(), true, guestAnnounce);
                    try {
                        load(dst, stream);
                        assertEquals(RunState.PAUSED, dst.machine.runState());
                        assertEquals(srcDev.get("queues"), dst.describe().get("queues"),
                                "ring indices on the destination equal the source's at switchover");
                        assertEquals(atSwitchover, dst.progress(), "the driver's state arrived with RAM");
                        dst.machine.vmStart();
                        Map<Long, Long> sendTimes = sendTimesAroundTheMove(peer, dst, atSwitchover.lastPeerSeq());
                        dst.runFor(500);
                        awaitAnnounces(peer, dst, announcesBefore, guestAnnounce);
                        dst.machine.vmStop(RunState.PAUSED);
                        check(hop, peer, dst, srcPort, tStop, atSwitchover, announcesBefore, guestAnnounce,
                                sendTimes);
                        assertEquals(srcRarps, src.net().get("rarps-sent"), "the stopped source sent no RARP");
                        dst.machine.vmStart();
                    } catch (Throwable t) {
                        dst.close();
                        throw t;
                    }
                    src.close();
                    src = dst;
                }
            } finally {
                src.close();
            }
        }
    }

    /** Loads {@code stream} into {@code dst} and leaves it paused (no autostart), as {@code -S} would. */
    static void load(SoftNetVm dst, byte[] stream) throws Exception {
        MemoryTransports t = new MemoryTransports();
        t.serve(MemoryTransports.FILE_URI, stream);
        DestinationMigration d = new DestinationMigration(dst.machine, t, MigrationCapabilities.defaults(),
                MigrationEventSink.NONE, false);
        d.listen(MemoryTransports.FILE_URI);
        MigrationStatus st = d.await(InMemoryMigration.WAIT);
        assertEquals(MigrationStatus.COMPLETED, st, () -> "incoming: " + d.errorDesc());
    }

    /**
     * The send times of the replies the peer sent after the guest's last one received on the source,
     * read as soon as the peer's switch moved the MAC: the peer keeps only its last
     * {@link TrafficPeer#SENT_AT_WINDOW} send times, and a fast guest outruns that window while the
     * announce rounds are awaited.
     */
    private static Map<Long, Long> sendTimesAroundTheMove(TrafficPeer peer, SoftNetVm dst, long lastReceived)
            throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!dst.peerPortName().equals(peer.portOf(SoftNetVm.MAC))) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("the peer's switch never moved the MAC to " + dst.peerPortName());
            }
            Thread.sleep(1);
        }
        Map<Long, Long> times = new java.util.HashMap<>();
        long sent = peer.flow(SoftNetVm.MAC).repliesSent();
        for (long s = lastReceived + 1; s <= sent; s++) {
            long at = peer.sentAt(SoftNetVm.MAC, s);
            assertTrue(at >= 0, "reply " + s + " of " + sent + " fell out of the peer's send-time window");
            times.put(s, at);
        }
        return times;
    }

    private static void awaitAnnounces(TrafficPeer peer, SoftNetVm dst, int before, boolean guestAnnounce)
            throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        int want = AnnounceTimer.ROUNDS * (guestAnnounce ? 2 : 1);
        while (peer.announces().size() - before < want || (guestAnnounce
                && dst.progress().announceAcks() < AnnounceTimer.ROUNDS * (long) hopsAcked(dst))) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("announces after the hop: " + peer.announces().subList(before,
                        peer.announces().size()) + "; driver " + dst.progress() + "; device " + dst.net());
            }
            Thread.sleep(5);
        }
        Thread.sleep(100); // an announce too many would come now
    }

    /** Acks accumulate in the guest's record across hops: the hop number's worth by now. */
    private static int hopsAcked(SoftNetVm dst) {
        return Integer.parseInt(dst.machine.name().substring(3));
    }

    private static void check(int hop, TrafficPeer peer, SoftNetVm dst, String srcPort, long tStop,
                              NetDriverArea.Progress atSwitchover, int announcesBefore, boolean guestAnnounce,
                              Map<Long, Long> sendTimes) {
        String dstPort = dst.peerPortName();
        assertEquals(dstPort, peer.portOf(SoftNetVm.MAC), "hop " + hop + ": the peer's switch moved the MAC");
        TrafficPeer.FlowStats flow = peer.flow(SoftNetVm.MAC);
        NetDriverArea.Progress now = dst.progress();

        // guest -> peer: nothing lost, duplicated or reordered
        assertEquals(0, flow.dupsOrReorders(), "hop " + hop + ": duplicates/reorders at the peer: " + flow);
        assertEquals(0, flow.lost(), "hop " + hop + ": guest frames lost: " + flow.gaps());
        assertTrue(flow.lastSeq() <= now.lastSentSeq() && flow.lastSeq() >= now.lastSentSeq() - 16,
                "the peer saw the guest's frames up to its window: " + flow.lastSeq() + " of " + now.lastSentSeq());
        assertTrue(flow.lastSeq() > atSwitchover.lastSentSeq(), "traffic went on after the hop");

        // peer -> guest: no duplicate, no reordering; losses only while the guest was down
        assertEquals(0, now.errors(), () -> "driver errors: " + now);
        assertEquals(0, now.peerDups(), () -> "duplicate/reordered replies: " + now);
        long moved = peer.moves().stream().filter(m -> m.to().equals(dstPort)).mapToLong(TrafficPeer.Move::nanos)
                .max().orElseThrow();
        long lostThisHop = 0;
        for (NetDriverArea.Gap g : now.gaps()) {
            if (g.expected() <= atSwitchover.lastPeerSeq()) {
                continue; // an earlier hop's
            }
            for (long s = g.expected(); s < g.got(); s++) {
                Long sent = sendTimes.get(s);
                assertTrue(sent != null, "hop " + hop + ": reply " + s + " was lost but sent after the MAC moved");
                assertTrue(sent >= tStop && sent <= moved, "hop " + hop + ": reply " + s + " was lost but sent "
                        + (sent - tStop) / 1000 + " us after the source began to stop, before the MAC moved at "
                        + (moved - tStop) / 1000 + " us");
                lostThisHop++;
            }
        }
        System.out.printf("hop %d: guest->peer lost 0 of %d; peer->guest lost %d (sent while the guest was down, "
                        + "%.1f ms from the migration's start to the MAC's move)%n", hop, flow.lastSeq(), lostThisHop,
                (moved - tStop) / 1e6);

        // the announce: 5 RARPs from the destination on QEMU's schedule, none from the source
        List<TrafficPeer.Announce> after = peer.announces().subList(announcesBefore, peer.announces().size());
        List<TrafficPeer.Announce> rarps = after.stream().filter(a -> a.kind().equals("rarp")).toList();
        assertTrue(after.stream().noneMatch(a -> a.port().equals(srcPort)), "the source announced: " + after);
        assertEquals(AnnounceTimer.ROUNDS, rarps.size(), "RARP rounds: " + after);
        long t0 = rarps.get(0).nanos();
        StringBuilder times = new StringBuilder();
        for (int k = 0; k < rarps.size(); k++) {
            TrafficPeer.Announce a = rarps.get(k);
            assertEquals(dstPort, a.port());
            assertEquals("52:54:00:12:34:56", a.mac());
            long offMs = TimeUnit.NANOSECONDS.toMillis(a.nanos() - t0);
            times.append(k == 0 ? "" : ", ").append(offMs);
        }
        // Seen by the peer, each reception carries the peer thread's scheduling delay on a busy
        // host: the rounds are spread over the schedule (the device's own send times below are
        // checked gap by gap).
        long spanMs = TimeUnit.NANOSECONDS.toMillis(rarps.get(rarps.size() - 1).nanos() - t0);
        assertTrue(spanMs >= AnnounceTimer.offsetMillis(AnnounceTimer.ROUNDS - 1) / 2, "the peer saw the five "
                + "rounds within " + spanMs + " ms: " + times);
        // as the device sent them: its timer never fires early
        @SuppressWarnings("unchecked")
        List<Long> sentUs = (List<Long>) dst.net().get("last-announce-us");
        assertEquals(AnnounceTimer.ROUNDS, sentUs.size(), "rounds the device sent: " + sentUs);
        for (int k = 1; k < sentUs.size(); k++) {
            long gapUs = sentUs.get(k) - sentUs.get(k - 1);
            assertTrue(gapUs >= AnnounceTimer.gapMillis(k - 1) * 1000 - 1000, "the device sent round " + k + " "
                    + gapUs + " us after round " + (k - 1));
        }
        System.out.printf("hop %d: RARPs seen at %s ms, sent at %s us (QEMU: 0, 50, 200, 450, 800 ms)%n", hop, times,
                sentUs);
        long arps = after.stream().filter(a -> a.kind().equals("arp")).count();
        if (guestAnnounce) {
            assertEquals(AnnounceTimer.ROUNDS, arps, "the guest's own announce per round: " + after);
            assertEquals(atSwitchover.announceAcks() + AnnounceTimer.ROUNDS, now.announceAcks(),
                    "the driver acked every round");
            assertEquals((long) AnnounceTimer.ROUNDS, dst.net().get("announce-acks"));
        } else {
            assertEquals(0, arps);
            assertEquals(0L, dst.net().get("guest-announces"));
        }
        assertEquals(0, now.ctrlErrors(), () -> "control requests refused: " + now);
    }
}
