package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.vmm.qmp.QmpError;
import dev.ferry.vmm.run.LocalVmms.Vm;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static dev.ferry.vmm.run.LocalVmms.args;
import static dev.ferry.vmm.run.LocalVmms.capabilities;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * VMMs with emulated SR-IOV NIC VFs in their config, migrated through QMP: the VFs are brought up
 * by the VMM, DMA into guest RAM while pre-copy runs, and arrive with their internal state and the
 * RX rings their DMA wrote; a VF that fails an arc leaves the source running with its VF back in
 * RUNNING and the reason in query-migrate; VFs without P2P block a migration of two.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class VmmVfioMigrationTest {
    @TempDir
    Path dir;
    private LocalVmms vms;

    @BeforeEach
    void setUp() {
        vms = new LocalVmms(dir);
    }

    @AfterEach
    void tearDown() {
        vms.close();
    }

    private static String vfs(int n, String flags) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < n; i++) {
            b.append(i == 0 ? "" : ",").append("{\"id\": \"vf").append(i).append("\", \"kind\": \"vf\", \"flags\": \"")
                    .append(flags).append("\"}");
        }
        return b.append("]").toString();
    }

    private static void ackCapabilities(Vm vm) throws IOException {
        vm.run("migrate-set-capabilities", capabilities("return-path", true, "switchover-ack", true));
    }

    private static JsonNode vf(JsonNode list, String id) {
        for (JsonNode v : list) {
            if (v.path("id").asText().equals(id)) {
                return v;
            }
        }
        throw new AssertionError("no " + id + " in " + list);
    }

    @Test
    void twoBusyVfsArriveWithTheirStateAndTheMemoryTheirDmaWrote() throws Exception {
        vms.devices = vfs(2, "stop-copy,p2p,pre-copy,state=1M,dirty-rate=256K,pps=4000");
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        ackCapabilities(src);
        ackCapabilities(dst);
        String uri = dst.listen("tcp:127.0.0.1:0");
        Thread.sleep(200); // the VFs receive and DMA before the migration starts
        JsonNode before = src.run("x-ferry-vfio").path("devices");
        assertTrue(vf(before, "vf0").path("dma-bytes").asLong() > 0, "the VF DMAs into guest RAM: " + before);

        src.run("migrate", args("uri", uri));
        JsonNode info = src.awaitMigrationEnd();
        assertEquals("completed", info.path("status").asText(), info.toString());
        assertEquals("completed", dst.awaitMigrationEnd().path("status").asText());

        JsonNode srcVerify = src.run("x-ferry-verify");
        JsonNode srcVfs = src.run("x-ferry-vfio").path("devices");
        Thread.sleep(200); // the destination's VFs go on receiving
        JsonNode dstVerify = dst.run("x-ferry-verify");
        JsonNode dstVfs = dst.run("x-ferry-vfio").path("devices");
        for (String id : new String[] {"vf0", "vf1"}) {
            JsonNode s = vf(srcVfs, id);
            JsonNode d = vf(dstVfs, id);
            assertEquals("STOP", s.path("device-state").asText(), "QEMU leaves the source's device in STOP: " + s);
            assertEquals("RUNNING", d.path("device-state").asText(), d.toString());
            assertTrue(s.path("stats").path("precopy-bytes").asLong() >= 1L << 20,
                    "the 1 MiB state went out in pre-copy: " + s);
            assertEquals(s.path("stats").path("precopy-bytes").asLong() + s.path("stats").path("stop-copy-bytes").asLong(),
                    d.path("stats").path("loaded-bytes").asLong(), "every byte read was written into the destination");
            JsonNode sv = vf(srcVerify.path("vfs"), id);
            JsonNode dv = vf(dstVerify.path("vfs"), id);
            assertEquals(sv.path("state-digest").asText(), dv.path("digest-at-load").asText(),
                    "the destination VF's internal state at load is the source VF's at stop");
            assertTrue(sv.path("ring").path("ok").asBoolean(), sv.toString());
            assertTrue(dv.path("ring").path("ok").asBoolean(), "the RX ring its DMA wrote arrived intact: " + dv);
            assertTrue(dv.path("ring").path("deliveries").asLong() > sv.path("ring").path("deliveries").asLong(),
                    "the destination VF continued receiving where the source stopped: " + sv + " / " + dv);
        }
        assertTrue(dstVerify.path("continuation").path("ok").asBoolean(), dstVerify.toString());
        JsonNode devices = info.path("x-ferry-devices");
        assertTrue(devices.toString().contains("\"vf0/vfio\"") && devices.toString().contains("\"vf1/vfio\""),
                "query-migrate breaks the VFs out: " + devices);
    }

    @Test
    void aVfFailingStopCopyLeavesTheSourceRunningWithItsVfRunning() throws Exception {
        vms.devices = vfs(1, "stop-copy,p2p,pre-copy,state=256K,fault=fail-set:STOP_COPY");
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        String uri = dst.listen("tcp:127.0.0.1:0");
        src.run("migrate", args("uri", uri));
        JsonNode info = src.awaitMigrationEnd();
        assertEquals("failed", info.path("status").asText(), info.toString());
        String why = info.path("error-desc").asText();
        assertTrue(why.contains("vf0") && why.contains("STOP_COPY") && why.contains("EIO"), why);
        assertEquals("running", src.runState());
        JsonNode v = vf(src.run("x-ferry-vfio").path("devices"), "vf0");
        assertEquals("RUNNING", v.path("device-state").asText(), v.toString());
        // QEMU's VM-change-state handler asks for STOP_COPY with "reset on failure": the device is
        // reset (guest-visible; the guest's driver brings it up again), not merely recovered
        assertEquals(1, v.path("stats").path("resets").asInt(), v.toString());
        assertTrue(v.path("stats").path("errors").toString().contains("vf0 reset, now RUNNING"), v.toString());
        assertEquals(1, v.path("driver-restarts").asInt(), "the guest's driver brought the reset VF up again: " + v);
        Thread.sleep(100); // the VF receives again
        JsonNode verify = src.run("x-ferry-verify");
        assertTrue(verify.path("working-set").path("intact").asBoolean(), verify.toString());
        JsonNode ring = vf(verify.path("vfs"), "vf0").path("ring");
        assertTrue(ring.path("ok").asBoolean() && ring.path("deliveries").asLong() > 0, verify.toString());
    }

    /**
     * A destination VF that refuses the state it was given (fault reject-load): the destination
     * validates it when the stream is loaded, before it answers — so a paused ({@code -S})
     * destination fails just as a running one would, and the source keeps its guest running.
     */
    @Test
    void aPausedDestinationRefusesAVfStateBeforeItAnswersAndTheSourceRuns() throws Exception {
        vms.devices = vfs(1, "stop-copy,p2p,pre-copy,state=256K,fault=reject-load");
        Vm dst = vms.destination("dst", true);
        Vm src = vms.source("src");
        ackCapabilities(src);
        ackCapabilities(dst);
        String uri = dst.listen("tcp:127.0.0.1:0");
        src.run("migrate", args("uri", uri));
        JsonNode info = src.awaitMigrationEnd();
        assertEquals("failed", info.path("status").asText(), info.toString());
        assertTrue(info.path("error-desc").asText().contains("the destination failed to load"), info.toString());
        assertEquals("running", src.runState());
        JsonNode in = dst.awaitMigrationEnd();
        assertEquals("failed", in.path("status").asText(), in.toString());
        String why = in.path("error-desc").asText();
        assertTrue(why.contains("vf0: SET MIG_DEVICE_STATE RESUMING->STOP: EINVAL") && why.contains("reject-load"), why);
        assertEquals("inmigrate", dst.runState());
        assertEquals("RUNNING", vf(src.run("x-ferry-vfio").path("devices"), "vf0").path("device-state").asText());
    }

    @Test
    void aLargeStopCopyVfConvergesOnlyWithAvailSwitchoverBandwidth() throws Exception {
        // 8 MiB of device state that only stop-copy can send, behind a link limited to 20 MB/s:
        // 300 ms of downtime moves 6 MB, so the migration cannot converge (QEMU's behaviour) ...
        vms.devices = vfs(1, "stop-copy,p2p,state=8M");
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        String uri = dst.listen("tcp:127.0.0.1:0");
        src.run("migrate-set-parameters", args("max-bandwidth", 20_000_000));
        src.run("migrate", args("uri", uri));
        Thread.sleep(1500);
        JsonNode stuck = src.run("query-migrate");
        assertEquals("active", stuck.path("status").asText(), stuck.toString());
        src.run("migrate_cancel");
        assertEquals("cancelled", src.awaitMigrationEnd().path("status").asText());
        assertEquals("RUNNING", vf(src.run("x-ferry-vfio").path("devices"), "vf0").path("device-state").asText());

        // ... until the operator says what the link gives the switchover (QEMU 8.2's parameter)
        Vm dst2 = vms.destination("dst2", false);
        String uri2 = dst2.listen("tcp:127.0.0.1:0");
        src.run("migrate-set-parameters", args("avail-switchover-bandwidth", 1L << 30));
        src.run("migrate", args("uri", uri2));
        JsonNode done = src.awaitMigrationEnd();
        assertEquals("completed", done.path("status").asText(), done.toString());
        JsonNode d = vf(dst2.run("x-ferry-vfio").path("devices"), "vf0");
        assertEquals("RUNNING", d.path("device-state").asText(), d.toString());
        assertTrue(d.path("stats").path("loaded-bytes").asLong() >= 8L << 20, d.toString());
    }

    @Test
    void twoVfsWithoutP2pBlockTheMigration() throws Exception {
        vms.devices = vfs(2, "stop-copy,pre-copy,state=64K");
        Vm src = vms.source("src");
        JsonNode v = src.run("x-ferry-vfio").path("devices");
        assertEquals(2, v.size());
        String reason;
        try {
            src.run("migrate", args("uri", "tcp:127.0.0.1:1"));
            JsonNode info = src.awaitMigrationEnd();
            assertEquals("failed", info.path("status").asText(), info.toString());
            reason = info.path("error-desc").asText();
        } catch (QmpError e) {
            reason = e.desc();
        }
        assertTrue(reason.contains("P2P"), reason);
        assertEquals("running", src.runState());
        assertFalse(src.run("x-ferry-vfio").toString().contains("STOP\""), "nothing moved the VFs");
    }
}
