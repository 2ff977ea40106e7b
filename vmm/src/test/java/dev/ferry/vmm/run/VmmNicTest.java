package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.virtio.guest.NetTraffic;
import dev.ferry.virtio.net.peer.TrafficPeer;
import dev.ferry.vmm.qmp.QmpError;
import dev.ferry.vmm.run.LocalVmms.Vm;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static dev.ferry.vmm.run.LocalVmms.args;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A VM with a virtio-net NIC in the VMM, driven through QMP: the soft guest's NIC driver exchanges
 * sequence-numbered frames with a traffic peer over the dgram back-end, the VM migrates between
 * two VMMs, the destination announces itself and the peer moves the guest's MAC to it, the
 * guest's frames arrive without duplicates, and QMP's set_link takes the link down and up.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class VmmNicTest {
    private static final String MAC = "52:54:00:ab:cd:ef";
    private static final byte[] MAC_BYTES = NetTraffic.longToMac(0x525400abcdefL);

    @TempDir
    Path dir;
    private LocalVmms vms;
    private TrafficPeer peer;

    @BeforeEach
    void setUp() throws Exception {
        peer = TrafficPeer.udp(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
        vms = new LocalVmms(dir);
        vms.devices = "[{\"id\": \"net0\", \"kind\": \"virtio-net\", \"mac\": \"" + MAC + "\", \"netdev\": \"dgram:127.0.0.1:"
                + peer.port() + "\"}]";
    }

    @AfterEach
    void tearDown() {
        vms.close();
        peer.close();
    }

    private long guestFrames() {
        return peer.flow(MAC_BYTES).received();
    }

    private void awaitFrames(long atLeast, String what) throws InterruptedException {
        long deadline = System.nanoTime() + LocalVmms.WAIT.toNanos();
        while (guestFrames() < atLeast) {
            assertTrue(System.nanoTime() < deadline, what + ": the peer has " + guestFrames() + " frames");
            Thread.sleep(10);
        }
    }

    @Test
    void aGuestExchangingFramesMigratesAndAnnouncesItself() throws Exception {
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        String uri = dst.listen("tcp:127.0.0.1:0");
        awaitFrames(500, "the guest's traffic does not start");
        String sourcePort = peer.flow(MAC_BYTES).port();
        JsonNode nic = src.run("x-ferry-devices").path("devices").path(0);
        assertEquals("virtio-net", nic.path("kind").asText(), nic.toString());

        src.run("migrate", args("uri", uri));
        JsonNode info = src.awaitMigrationEnd();
        assertEquals("completed", info.path("status").asText(), info.toString());
        assertEquals("completed", dst.awaitMigrationEnd().path("status").asText());
        long atSwitch = guestFrames();
        awaitFrames(atSwitch + 500, "the guest's traffic does not continue from the destination");
        long deadline = System.nanoTime() + LocalVmms.WAIT.toNanos();
        while (peer.announces().stream().filter(a -> a.kind().equals("rarp")).count() < 5) {
            assertTrue(System.nanoTime() < deadline, "five RARP rounds: " + peer.announces());
            Thread.sleep(20);
        }

        TrafficPeer.FlowStats f = peer.flow(MAC_BYTES);
        assertEquals(0, f.dupsOrReorders(), "no guest frame twice or out of order: " + f);
        assertFalse(f.port().equals(sourcePort), "the peer moved the MAC to the destination: " + f);
        assertTrue(peer.moves().stream().anyMatch(m -> m.from().equals(sourcePort)), peer.moves().toString());
        JsonNode v = dst.run("x-ferry-verify").path("nics").path(0);
        assertTrue(v.path("ok").asBoolean(), v.toString());
        assertEquals(0, v.path("peer-dups").asLong(), v.toString());
        assertTrue(v.path("announce-acks").asLong() >= 1, "the driver acked VIRTIO_NET_S_ANNOUNCE: " + v);
    }

    @Test
    void setLinkTakesTheLinkDownAndUp() throws Exception {
        Vm src = vms.source("src");
        awaitFrames(200, "the guest's traffic does not start");
        src.run("set_link", args("name", "net0", "up", false));
        Thread.sleep(200);
        long down = guestFrames();
        Thread.sleep(300);
        assertTrue(guestFrames() - down < 50, "frames kept flowing with the link down: " + (guestFrames() - down));
        src.run("set_link", args("name", "net0", "up", true));
        awaitFrames(down + 200, "the link came back up but the traffic did not");
        QmpError e = src.refused("set_link", args("name", "net9", "up", true));
        assertEquals("DeviceNotFound", e.errorClass(), e.toString());
    }
}
