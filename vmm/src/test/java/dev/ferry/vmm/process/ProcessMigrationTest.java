package dev.ferry.vmm.process;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.vmm.qmp.QmpClient;
import dev.ferry.vmm.run.QapiJson;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import static dev.ferry.vmm.process.FerryRunProcess.WAIT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Live migration between two {@code ferry run} processes — separate JVMs, as in production —
 * driven only through their QMP sockets: over TCP and over a UNIX socket, with the destination
 * killed mid-migration, and with {@code migrate_cancel} in each phase. Each test starts one pair
 * of small guests (64 MiB, a 16 MiB working set); a failed assertion shows both VMMs' output.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class ProcessMigrationTest {
    @TempDir
    Path dir;
    private final List<FerryRunProcess> children = new ArrayList<>();
    private FerryRunProcess source;
    private FerryRunProcess destination;

    @AfterEach
    void stopChildren() {
        for (FerryRunProcess p : children) {
            p.close();
        }
    }

    @Test
    void migratesOverTcp() throws Exception {
        migratesAndVerifies("tcp:127.0.0.1:0");
    }

    @Test
    void migratesOverAUnixSocket() throws Exception {
        migratesAndVerifies("unix:" + dir.resolve("migration.sock"));
    }

    private void migratesAndVerifies(String listen) throws Exception {
        startPair();
        QmpClient s = source.qmp();
        QmpClient d = destination.qmp();
        enableEvents(s);
        enableEvents(d);
        String uri = listen(d, listen);
        assertEquals(listen.substring(0, 4), uri.substring(0, 4));
        s.execute("migrate", args("uri", uri));

        awaitMigrationEvent(s, "completed");
        awaitMigrationEvent(d, "completed");
        JsonNode info = s.execute("query-migrate");
        assertEquals("completed", info.path("status").asText(), info.toString());
        assertEquals(64L << 20, info.path("ram").path("total").asLong(), info.toString());
        assertEquals("postmigrate", status(s));
        assertEquals("running", status(d));

        String digest = s.execute("x-ferry-memory-digest").path("digest").asText();
        awaitGuestProgress(d);
        JsonNode verified = d.execute("x-ferry-verify");
        assertEquals(digest, verified.path("digest-at-load").asText(),
                () -> "destination RAM at load differs from the source's at switchover: " + verified + logs());
        assertTrue(verified.path("continuation").path("ok").asBoolean(), () -> verified + logs());
        assertTrue(verified.path("continuation").path("steps-replayed").asLong() > 0, verified::toString);
        assertTrue(verified.path("working-set").path("intact").asBoolean(), () -> verified + logs());
        assertEquals("running", status(d), "x-ferry-verify resumes the guest it paused");
    }

    @Test
    void killingTheDestinationMidMigrationLeavesTheSourceRunningWithTheReason() throws Exception {
        startPair();
        QmpClient s = source.qmp();
        QmpClient d = destination.qmp();
        enableEvents(s);
        String uri = listen(d, "tcp:127.0.0.1:0");
        s.execute("x-ferry-hold", args("phase", "active"));
        s.execute("migrate", args("uri", uri));
        s.awaitEvent(e -> e.name().equals("X-FERRY-HOLD") && "active".equals(e.dataText("phase")), WAIT);

        destination.kill();
        s.execute("x-ferry-release");

        awaitMigrationEvent(s, "failed");
        JsonNode info = s.execute("query-migrate");
        assertEquals("failed", info.path("status").asText(), info.toString());
        // The failed write or read says which, e.g. "migration stream to tcp:127.0.0.1:41207 failed:
        // tcp:127.0.0.1:41207: connection closed by peer" (or reset by peer, or a broken pipe). On a
        // loaded machine the source may have sent everything before it notices, and then it is the
        // wait for the destination's confirmation that fails on the same connection.
        String reason = info.path("error-desc").asText();
        assertTrue((reason.startsWith("migration stream to " + uri + " failed: ")
                        || reason.startsWith("the destination did not confirm it runs: "))
                        && reason.matches("(?is).*(closed by peer|reset by peer|broken pipe).*"),
                () -> "error-desc does not name the connection problem: " + info + logs());
        assertEquals("running", status(s), () -> "source VM after the destination died" + logs());
        assertTrue(s.execute("x-ferry-verify").path("working-set").path("intact").asBoolean(), this::logs);
        assertEquals("running", status(s));
        assertTrue(source.isAlive());
    }

    @ParameterizedTest(name = "cancel in {0}")
    @ValueSource(strings = {"setup", "active", "device"})
    void migrateCancelInEveryPhaseLeavesTheSourceRunningAndIntact(String phase) throws Exception {
        startPair();
        QmpClient s = source.qmp();
        QmpClient d = destination.qmp();
        enableEvents(s);
        String uri = listen(d, "tcp:127.0.0.1:0");
        s.execute("x-ferry-hold", args("phase", phase));
        s.execute("migrate", args("uri", uri));
        s.awaitEvent(e -> e.name().equals("X-FERRY-HOLD") && phase.equals(e.dataText("phase")), WAIT);

        assertEquals(QapiJson.JSON.createObjectNode(), s.execute("migrate_cancel"));
        awaitMigrationEvent(s, "cancelled");
        JsonNode info = s.execute("query-migrate");
        assertEquals("cancelled", info.path("status").asText(), info.toString());
        assertEquals("running", status(s), () -> "source VM after migrate_cancel in " + phase + logs());
        assertTrue(s.execute("x-ferry-verify").path("working-set").path("intact").asBoolean(), this::logs);

        JsonNode in = d.execute("query-migrate");
        if (phase.equals("setup")) {
            assertEquals("setup", in.path("status").asText(), "the source never connected: " + in);
        } else {
            in = awaitIncomingEnd(d);
            assertEquals("failed", in.path("status").asText(), in.toString());
        }
        assertEquals("inmigrate", status(d), "the destination never starts the guest");
    }

    // ---- helpers ----

    /** A destination ({@code --incoming defer --x-verify-at-load}) and a source, started together. */
    private void startPair() throws IOException {
        Path dstConfig = write("destination", 0.0);
        Path srcConfig = write("source", 1.0);
        destination = FerryRunProcess.start("destination", dir, dstConfig, List.of("--incoming", "defer",
                "--x-verify-at-load"));
        children.add(destination);
        source = FerryRunProcess.start("source", dir, srcConfig, List.of());
        children.add(source);
    }

    private Path write(String name, double populate) throws IOException {
        return Files.writeString(dir.resolve(name + ".json"), """
                {
                  "name": "%s",
                  "memory": { "size": "64M" },
                  "vcpus": 2,
                  "engine": "soft",
                  "workload": { "dirty-rate": "8M", "working-set": "16M", "seed": 42, "populate": %s }
                }
                """.formatted(name, populate));
    }

    private static void enableEvents(QmpClient c) throws IOException {
        ObjectNode caps = QapiJson.JSON.createObjectNode();
        caps.putArray("capabilities").addObject().put("capability", "events").put("state", true);
        c.execute("migrate-set-capabilities", caps);
    }

    /** migrate-incoming, then the URI actually bound, from query-migrate's socket-address. */
    private static String listen(QmpClient d, String uri) throws IOException {
        d.execute("migrate-incoming", args("uri", uri));
        JsonNode a = d.execute("query-migrate").path("socket-address").path(0);
        return switch (a.path("type").asText()) {
            case "inet" -> "tcp:" + a.path("host").asText() + ":" + a.path("port").asText();
            case "unix" -> "unix:" + a.path("path").asText();
            default -> throw new AssertionError("no socket-address in the destination's query-migrate: " + a);
        };
    }

    private void awaitMigrationEvent(QmpClient c, String status) throws IOException {
        try {
            c.awaitEvent(e -> e.name().equals("MIGRATION") && status.equals(e.dataText("status")), WAIT);
        } catch (TimeoutException e) {
            throw new AssertionError("no MIGRATION " + status + " event within " + WAIT + "; query-migrate: "
                    + c.execute("query-migrate") + logs(), e);
        }
    }

    /** The destination's MIGRATION events are off; its query-migrate shows the end. */
    private JsonNode awaitIncomingEnd(QmpClient d) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (true) {
            JsonNode in = d.execute("query-migrate");
            String st = in.path("status").asText();
            if (st.equals("completed") || st.equals("failed")) {
                return in;
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("the incoming migration did not end: " + in + logs());
            }
            Thread.sleep(10);
        }
    }

    /** Waits until the migrated guest has dirtied memory on the destination (its counter is migrated state). */
    private void awaitGuestProgress(QmpClient d) throws IOException, InterruptedException {
        long atLoad = d.execute("x-ferry-guest").path("bytes-dirtied").asLong();
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (d.execute("x-ferry-guest").path("bytes-dirtied").asLong() == atLoad) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("the guest does not run on the destination" + logs());
            }
            Thread.sleep(10);
        }
    }

    private static String status(QmpClient c) throws IOException {
        return c.execute("query-status").path("status").asText();
    }

    private static ObjectNode args(String name, String value) {
        return QapiJson.JSON.createObjectNode().put(name, value);
    }

    private String logs() {
        return "\n" + (source == null ? "" : source.output()) + "\n"
                + (destination == null ? "" : destination.output());
    }

}
