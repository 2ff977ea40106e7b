package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.virtio.guest.NetTraffic;
import dev.ferry.virtio.net.peer.TrafficPeer;
import dev.ferry.vmm.run.LocalVmms.Vm;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static dev.ferry.vmm.run.LocalVmms.args;
import static dev.ferry.vmm.run.LocalVmms.capabilities;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A guest with every device kind the soft engine drives — a virtio-blk disk, a virtio-net NIC
 * talking to a traffic peer, a virtio-balloon (inflated, hinting) and two emulated SR-IOV VFs —
 * migrated through QMP three hops, A to B to C, with disk I/O, traffic and DMA running. After each
 * hop: RAM at load equals the source's at switchover, the guest continued, the disk image holds
 * every acknowledged write, the peer saw no guest frame twice and moved the MAC to the new VMM
 * after its announce, the balloon kept its size with its pages holes in the new VMM's memory, and
 * each VF arrived with its state and went on receiving. And a migration cancelled in each phase
 * leaves every device of the source working.
 */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class VmmAllDevicesTest {
    private static final long RAM = 32L << 20;
    private static final long TARGET = RAM - (4L << 20);
    private static final String MAC = "52:54:00:00:0a:11";
    private static final byte[] MAC_BYTES = NetTraffic.longToMac(0x525400000a11L);
    private static final String VF_FLAGS = "stop-copy,p2p,pre-copy,state=256K,dirty-rate=64K,pps=2000";

    @TempDir
    Path dir;
    private LocalVmms vms;
    private TrafficPeer peer;

    @BeforeEach
    void setUp() throws Exception {
        Path image = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(16L << 20);
        }
        peer = TrafficPeer.udp(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
        vms = new LocalVmms(dir);
        vms.devices = "[{\"id\": \"disk0\", \"kind\": \"virtio-blk\", \"image\": \"" + image + "\"},"
                + "{\"id\": \"net0\", \"kind\": \"virtio-net\", \"mac\": \"" + MAC + "\", \"netdev\": \"dgram:127.0.0.1:"
                + peer.port() + "\"},"
                + "{\"id\": \"balloon0\", \"kind\": \"virtio-balloon\"},"
                + "{\"id\": \"vf0\", \"kind\": \"vf\", \"flags\": \"" + VF_FLAGS + "\"},"
                + "{\"id\": \"vf1\", \"kind\": \"vf\", \"flags\": \"" + VF_FLAGS + "\"}]";
    }

    @AfterEach
    void tearDown() {
        vms.close();
        peer.close();
    }

    private static void ack(Vm vm) throws IOException {
        vm.run("migrate-set-capabilities", capabilities("return-path", true, "switchover-ack", true));
    }

    private static void await(String what, java.util.concurrent.Callable<Boolean> done) throws Exception {
        long deadline = System.nanoTime() + LocalVmms.WAIT.toNanos();
        while (!done.call()) {
            assertTrue(System.nanoTime() < deadline, what);
            Thread.sleep(10);
        }
    }

    private long frames() {
        return peer.flow(MAC_BYTES).received();
    }

    private static long diskCompleted(Vm vm) throws IOException {
        return vm.run("x-ferry-guest").path("disks").path(0).path("completed").asLong();
    }

    private static JsonNode vf(JsonNode list, String id) {
        for (JsonNode v : list) {
            if (v.path("id").asText().equals(id)) {
                return v;
            }
        }
        throw new AssertionError("no " + id + " in " + list);
    }

    /** The source runs every device: disk I/O, traffic to the peer, the balloon at its target, VFs receiving. */
    private void awaitBusy(Vm vm) throws Exception {
        long f = frames();
        long d = diskCompleted(vm);
        await(vm.name() + ": traffic does not flow", () -> frames() > f + 300);
        await(vm.name() + ": disk I/O does not progress", () -> diskCompleted(vm) > d + 300);
        await(vm.name() + ": the balloon is not at its target", () -> vm.run("query-balloon").path("actual").asLong() == TARGET);
    }

    @Test
    void everyDeviceMigratesThreeHopsAndKeepsItsPromises() throws Exception {
        Vm a = vms.source("a");
        ack(a);
        a.run("balloon", args("value", TARGET));
        awaitBusy(a);
        Vm from = a;
        for (String name : new String[] {"b", "c"}) {
            Vm to = vms.destination(name, false);
            ack(to);
            String uri = to.listen("tcp:127.0.0.1:0");
            String portBefore = peer.flow(MAC_BYTES).port();
            long rarpsBefore = peer.announces().stream().filter(x -> x.kind().equals("rarp")).count();

            from.run("migrate", args("uri", uri));
            JsonNode info = from.awaitMigrationEnd();
            String hop = from.name() + "->" + to.name();
            assertEquals("completed", info.path("status").asText(), hop + ": " + info);
            assertEquals("completed", to.awaitMigrationEnd().path("status").asText(), hop);
            assertEquals("running", to.runState(), hop);
            String sourceDigest = from.run("x-ferry-memory-digest").path("digest").asText();
            JsonNode fromVerify = from.run("x-ferry-verify");
            awaitBusy(to);
            await(hop + ": the destination did not announce itself",
                    () -> peer.announces().stream().filter(x -> x.kind().equals("rarp")).count() >= rarpsBefore + 3);
            JsonNode v = to.run("x-ferry-verify");

            assertEquals(sourceDigest, v.path("digest-at-load").asText(), hop + ": RAM at load is the source's at switchover");
            assertTrue(v.path("continuation").path("ok").asBoolean(), hop + ": " + v.path("continuation"));
            JsonNode disk = v.path("disks").path(0);
            assertTrue(disk.path("ok").asBoolean(), hop + ": disk " + disk);
            JsonNode nic = v.path("nics").path(0);
            assertTrue(nic.path("ok").asBoolean(), hop + ": nic " + nic);
            TrafficPeer.FlowStats flow = peer.flow(MAC_BYTES);
            assertEquals(0, flow.dupsOrReorders(), hop + ": the peer saw a guest frame twice or out of order: " + flow);
            assertNotEquals(portBefore, flow.port(), hop + ": the peer did not move the MAC to the destination");
            assertEquals(TARGET, to.run("query-balloon").path("actual").asLong(), hop + ": balloon size");
            JsonNode balloon = v.path("balloon");
            assertTrue(balloon.path("ok").asBoolean(), hop + ": balloon " + balloon);
            assertEquals(1024, balloon.path("given-pages-discarded").asLong(), hop + ": balloon pages are holes: " + balloon);
            JsonNode toVfs = to.run("x-ferry-vfio").path("devices");
            for (String id : new String[] {"vf0", "vf1"}) {
                JsonNode sv = vf(fromVerify.path("vfs"), id);
                JsonNode dv = vf(v.path("vfs"), id);
                assertEquals(sv.path("state-digest").asText(), dv.path("digest-at-load").asText(), hop + ": " + id + " state");
                assertTrue(dv.path("ring").path("ok").asBoolean(), hop + ": " + id + " ring " + dv);
                assertEquals("RUNNING", vf(toVfs, id).path("device-state").asText(), hop + ": " + id);
            }
            from = to;
        }
    }

    @ParameterizedTest(name = "cancel in {0}")
    @ValueSource(strings = {"setup", "active", "device"})
    void aCancelledMigrationLeavesEveryDeviceOfTheSourceWorking(String phase) throws Exception {
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        ack(src);
        ack(dst);
        src.run("balloon", args("value", TARGET));
        awaitBusy(src);
        String port = peer.flow(MAC_BYTES).port();
        String uri = dst.listen("tcp:127.0.0.1:0");
        src.run("x-ferry-hold", args("phase", phase));
        src.run("migrate", args("uri", uri));
        src.awaitHold(phase);
        src.run("migrate_cancel");
        assertEquals("cancelled", src.awaitMigrationEnd().path("status").asText());
        assertEquals("running", src.runState());

        long f = frames();
        long d = diskCompleted(src);
        await("traffic does not go on from the source", () -> frames() > f + 300);
        await("disk I/O does not go on", () -> diskCompleted(src) > d + 300);
        assertEquals(port, peer.flow(MAC_BYTES).port(), "the MAC stayed with the source");
        assertEquals(0, peer.flow(MAC_BYTES).dupsOrReorders());
        src.run("balloon", args("value", RAM));
        await("the balloon does not deflate after the cancel", () -> src.run("query-balloon").path("actual").asLong() == RAM);
        for (JsonNode vf : src.run("x-ferry-vfio").path("devices")) {
            assertEquals("RUNNING", vf.path("device-state").asText(), vf.toString());
        }
        JsonNode v = src.run("x-ferry-verify");
        assertTrue(v.path("working-set").path("intact").asBoolean(), v.toString());
        assertTrue(v.path("disks").path(0).path("ok").asBoolean(), v.path("disks").toString());
        assertTrue(v.path("nics").path(0).path("ok").asBoolean(), v.path("nics").toString());
        assertTrue(v.path("balloon").path("ok").asBoolean(), v.path("balloon").toString());
    }
}
