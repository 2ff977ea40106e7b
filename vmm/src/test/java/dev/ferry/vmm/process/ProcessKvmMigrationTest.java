package dev.ferry.vmm.process;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.core.cpu.guest.GuestProgram;
import dev.ferry.core.cpu.kvm.ioctls.Kvm;
import dev.ferry.vmm.qmp.QmpClient;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A running KVM guest (Ferry's built-in program on a real vCPU) migrates between Ferry VMM
 * processes three times, each time to a fresh destination process, driven through QMP: RAM at
 * switchover equals the source's, the guest runs on, and its counter and hash chain continue
 * exactly.
 */
@Timeout(180)
class ProcessKvmMigrationTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    @BeforeAll
    static void needKvmAndTheGuest() {
        assumeTrue(Kvm.available().isEmpty(), () -> "no usable /dev/kvm: " + Kvm.available().orElse(""));
        assumeTrue(GuestProgram.load().isPresent(), GuestProgram.NOT_BUILT);
    }

    private static ObjectNode args() {
        return JSON.createObjectNode();
    }

    @Test
    void kvmGuestMigratesBetweenProcessesThreeTimes() throws Exception {
        Path config = dir.resolve("vm.json");
        Files.writeString(config, """
                {"memory": {"size": "128M"}, "vcpus": 1, "engine": "kvm",
                 "workload": {"working-set": "32M", "dirty-rate": "40M", "seed": 5}}""");
        FerryRunProcess source = FerryRunProcess.start("vm0", dir, config, List.of());
        try {
            assertEquals("kvm", source.qmp().execute("x-ferry-guest", null).path("engine").asText());
            for (int hop = 1; hop <= 3; hop++) {
                Thread.sleep(200); // the guest runs for a while
                long before = source.qmp().execute("x-ferry-guest", null).path("counter").asLong();
                assertTrue(before > 0, "the guest runs on the source before hop " + hop);

                FerryRunProcess dest = FerryRunProcess.start("vm" + hop, dir, config,
                        List.of("--incoming", "defer", "--x-verify-at-load"));
                QmpClient d = dest.qmp();
                QmpClient s = source.qmp();
                d.execute("migrate-incoming", args().put("uri", "tcp:127.0.0.1:0"));
                JsonNode addr = d.execute("query-migrate", null).path("socket-address").get(0);
                s.execute("migrate-set-parameters", args().put("max-bandwidth", 0));
                s.execute("migrate", args().put("uri", "tcp:" + addr.path("host").asText() + ":"
                        + addr.path("port").asText()));
                JsonNode info;
                long deadline = System.nanoTime() + 60_000_000_000L;
                do {
                    Thread.sleep(50);
                    info = s.execute("query-migrate", null);
                } while (!List.of("completed", "failed", "cancelled").contains(info.path("status").asText())
                        && System.nanoTime() < deadline);
                JsonNode finalInfo = info;
                assertEquals("completed", info.path("status").asText(), () -> "hop: " + finalInfo + "\n"
                        + dest.output());
                assertEquals("postmigrate", s.execute("query-status", null).path("status").asText());

                String sourceDigest = s.execute("x-ferry-memory-digest", null).path("digest").asText();
                Thread.sleep(200); // the guest runs on the destination
                JsonNode v = d.execute("x-ferry-verify", null);
                assertEquals(sourceDigest, v.path("digest-at-load").asText(), "RAM at switchover, hop " + hop);
                assertTrue(v.path("continuation").path("ok").asBoolean(), "hop " + hop + ": " + v);
                assertTrue(v.path("continuation").path("steps-replayed").asLong() > 0, "the guest ran on: " + v);
                assertEquals("running", d.execute("query-status", null).path("status").asText());
                JsonNode g = d.execute("x-ferry-guest", null);
                assertTrue(g.path("heartbeats").asLong() > 0, "heartbeats resumed on the destination: " + g);
                assertTrue(g.path("counter").asLong() > before, "the counter went on: " + g);

                source.close();
                source = dest;
            }
        } finally {
            source.close();
        }
    }
}
