package dev.ferry.virtio.e2e;

import dev.ferry.core.machine.RunState;
import dev.ferry.virtio.guest.NetDriverArea;
import dev.ferry.virtio.net.peer.TrafficPeer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.net.InetSocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The stream back-end (QEMU's {@code -netdev stream} framing, be32 length + frame) over TCP and
 * over a UNIX socket: a soft guest's traffic with the peer flows with nothing lost, duplicated
 * or reordered either way.
 */
@Timeout(60)
class SoftNetStreamTest {
    @TempDir
    Path dir;

    @Test
    void tcp() throws Exception {
        try (TrafficPeer peer = TrafficPeer.stream(new InetSocketAddress("127.0.0.1", 0))) {
            exchange(peer, "stream:127.0.0.1:" + peer.port());
        }
    }

    @Test
    void unix() throws Exception {
        Path sock = dir.resolve("peer.sock");
        try (TrafficPeer peer = TrafficPeer.stream(UnixDomainSocketAddress.of(sock))) {
            exchange(peer, "unix:" + sock);
        }
    }

    private static void exchange(TrafficPeer peer, String netdev) throws Exception {
        try (SoftNetVm vm = new SoftNetVm("stream", netdev, false, false, 16, 600)) {
            vm.machine.vmStart();
            vm.runFor(2000);
            vm.machine.vmStop(RunState.PAUSED);
            NetDriverArea.Progress p = vm.progress();
            TrafficPeer.FlowStats f = peer.flow(SoftNetVm.MAC);
            assertEquals(0, p.errors(), p.toString());
            assertEquals(0, p.peerLost(), p.toString());
            assertEquals(0, p.peerDups(), p.toString());
            assertEquals(0, f.lost(), f.toString());
            assertEquals(0, f.dupsOrReorders(), f.toString());
            assertTrue(f.received() >= 2000, f.toString());
            assertTrue(f.port().startsWith("stream#"), f.port());
        }
    }
}
