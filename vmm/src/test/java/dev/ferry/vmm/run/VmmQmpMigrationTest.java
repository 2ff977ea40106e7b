package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.vmm.qmp.QmpEvent;
import dev.ferry.vmm.run.LocalVmms.Vm;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Predicate;

import static dev.ferry.vmm.run.LocalVmms.RAM_BYTES;
import static dev.ferry.vmm.run.LocalVmms.args;
import static dev.ferry.vmm.run.LocalVmms.capabilities;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Migrations between two VMMs in this JVM, driven only through their QMP sockets as a management
 * tool would: the events of a whole migration and their order on both sides, query-migrate in
 * QEMU's shape, commands in the wrong state while a migration is held at a phase
 * ({@code x-ferry-hold}), QEMU's autostart semantics of {@code cont}/{@code stop} during inmigrate,
 * and {@code migrate_cancel} in every phase.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class VmmQmpMigrationTest {
    /** qapi/migration.json {@code MigrationInfo} members; Ferry adds only {@code x-ferry-} ones. */
    private static final Set<String> MIGRATION_INFO = Set.of("status", "ram", "disk", "vfio", "xbzrle-cache",
            "total-time", "expected-downtime", "downtime", "setup-time", "cpu-throttle-percentage", "error-desc",
            "blocked-reasons", "postcopy-blocktime", "postcopy-vcpu-blocktime", "compression", "socket-address",
            "dirty-limit-throttle-time-per-round", "dirty-limit-ring-full-time");
    /** qapi/migration.json {@code MigrationStats} members. */
    private static final Set<String> MIGRATION_STATS = Set.of("transferred", "remaining", "total", "duplicate",
            "skipped", "normal", "normal-bytes", "dirty-pages-rate", "mbps", "dirty-sync-count", "postcopy-requests",
            "page-size", "multifd-bytes", "pages-per-second", "precopy-bytes", "downtime-bytes", "postcopy-bytes",
            "dirty-sync-missed-zero-copy");
    private static final Set<String> RAM_REQUIRED = Set.of("transferred", "remaining", "total", "duplicate", "normal",
            "normal-bytes", "dirty-pages-rate", "mbps", "dirty-sync-count", "page-size", "pages-per-second",
            "precopy-bytes", "downtime-bytes");
    private static final Predicate<QmpEvent> MIGRATION_EVENTS = e -> e.name().startsWith("MIGRATION");
    private static final Predicate<QmpEvent> RUN_STATE_EVENTS = e -> e.name().equals("STOP")
            || e.name().equals("RESUME");

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

    @Test
    void aMigrationEmitsQemusEventsInOrderAndQueryMigrateReportsItInQemusShape() throws Exception {
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        src.enableEvents();
        dst.enableEvents();
        String uri = dst.listen("tcp:127.0.0.1:0");
        assertEquals(QapiJson.JSON.createObjectNode(), src.run("migrate", args("uri", uri)));

        List<QmpEvent> s = src.takeEventsUntil(MIGRATION_EVENTS.or(RUN_STATE_EVENTS), completed());
        List<QmpEvent> d = dst.takeEventsUntil(MIGRATION_EVENTS.or(RUN_STATE_EVENTS), completed());
        s.forEach(VmmQmpTest::assertTimestamp);
        d.forEach(VmmQmpTest::assertTimestamp);

        // Source: setup, active, device, completed; MIGRATION_PASS 1..n after active; STOP before device.
        assertEquals(List.of("setup", "active", "device", "completed"), statuses(s), names(s));
        int active = indexOf(s, "MIGRATION", "active");
        int device = indexOf(s, "MIGRATION", "device");
        List<Long> passes = new ArrayList<>();
        for (int i = 0; i < s.size(); i++) {
            QmpEvent e = s.get(i);
            if (e.name().equals("MIGRATION_PASS")) {
                assertTrue(i > active, "MIGRATION_PASS before active: " + names(s));
                passes.add(e.data().path("pass").asLong());
            }
        }
        assertFalse(passes.isEmpty(), "no MIGRATION_PASS: " + names(s));
        for (int i = 0; i < passes.size(); i++) {
            assertEquals(i + 1, passes.get(i), "passes count up from 1: " + passes);
        }
        assertEquals(List.of("STOP"), s.stream().filter(RUN_STATE_EVENTS).map(QmpEvent::name).toList());
        int stop = indexOf(s, "STOP", null);
        assertTrue(active < stop && stop < device, "STOP between active and device: " + names(s));

        // Destination: setup, active, completed, and RESUME before completed; no passes, no STOP.
        assertEquals(List.of("setup", "active", "completed"), statuses(d), names(d));
        assertEquals(List.of("RESUME"), d.stream().filter(RUN_STATE_EVENTS).map(QmpEvent::name).toList());
        int resume = indexOf(d, "RESUME", null);
        assertTrue(indexOf(d, "MIGRATION", "active") < resume && resume < indexOf(d, "MIGRATION", "completed"),
                names(d));
        assertTrue(d.stream().noneMatch(e -> e.name().equals("MIGRATION_PASS")), names(d));

        JsonNode info = src.run("query-migrate");
        assertQapiMembers(info);
        assertEquals("completed", info.path("status").asText());
        for (String member : List.of("total-time", "setup-time", "downtime")) {
            assertTrue(info.path(member).isIntegralNumber() && info.path(member).asLong() >= 0, member + ": " + info);
        }
        assertFalse(info.has("expected-downtime") || info.has("error-desc") || info.has("socket-address"),
                info.toString());
        // The switchover's phases: the source's add up to QEMU's downtime, all of them to the guest pause.
        JsonNode phases = info.path("x-ferry-downtime-breakdown");
        List<String> destinationPhases = List.of("destination-load-us", "destination-verify-us", "destination-start-us");
        List<String> all = new java.util.ArrayList<>(List.of("vcpu-stop-us", "device-stop-us", "final-sync-us",
                "final-ram-pass-us", "device-state-us", "drain-us"));
        all.addAll(destinationPhases);
        all.add("ack-us");
        assertEquals(all, iterator(phases.fieldNames()), info.toString());
        long sourceUs = 0;
        for (String p : List.of("vcpu-stop-us", "device-stop-us", "final-sync-us", "final-ram-pass-us", "device-state-us",
                "drain-us")) {
            sourceUs += phases.path(p).asLong();
        }
        assertEquals(info.path("downtime").asLong(), sourceUs / 1000.0, 1.0, info.toString());
        long destinationUs = phases.path("ack-us").asLong();
        for (String p : destinationPhases) {
            destinationUs += phases.path(p).asLong();
        }
        assertEquals(info.path("x-ferry-guest-pause").asLong(), (sourceUs + destinationUs) / 1000.0, 1.0, info.toString());
        assertTrue(phases.path("destination-start-us").asLong() > 0, "the destination reported its start: " + info);
        JsonNode ram = info.path("ram");
        assertTrue(ram.path("transferred").asLong() > 0, info.toString());
        assertEquals(0, ram.path("remaining").asLong(), info.toString());
        assertEquals(RAM_BYTES, ram.path("total").asLong());
        assertEquals(4096, ram.path("page-size").asLong());
        assertEquals(ram.path("normal").asLong() * 4096, ram.path("normal-bytes").asLong(), info.toString());
        assertTrue(ram.path("normal").asLong() >= (8 << 20) / 4096, "the working set was sent: " + info);
        assertEquals(passes.get(passes.size() - 1), ram.path("dirty-sync-count").asLong(),
                "one MIGRATION_PASS per dirty sync: " + info);
        assertTrue(ram.path("mbps").isNumber() && ram.path("mbps").asDouble() >= 0, info.toString());

        JsonNode in = dst.run("query-migrate");
        assertQapiMembers(in);
        assertEquals("completed", in.path("status").asText(), in.toString());
        assertEquals(RAM_BYTES, in.path("ram").path("total").asLong());
        assertFalse(in.has("socket-address") || in.has("error-desc"), in.toString());
        // The destination shows its own phases; the source's breakdown carries the same figures
        // unless the destination began before the source's last flush returned (then they are cut).
        JsonNode own = in.path("x-ferry-destination-phases");
        assertEquals(destinationPhases, iterator(own.fieldNames()), in.toString());
        if (phases.path("ack-us").asLong() > 0) {
            for (String p : destinationPhases) {
                assertEquals(own.path(p).asLong(), phases.path(p).asLong(), 1.0, p + ": " + in + " vs " + info);
            }
        }

        assertEquals("postmigrate", src.runState());
        assertEquals("running", dst.runState());
        assertMigratedExactly(src, dst);
    }

    @Test
    void withoutTheEventsCapabilityThereAreNoMigrationEventsOverAUnixSocket() throws Exception {
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        String uri = dst.listen("unix:" + dir.resolve("migration.sock"));
        assertTrue(uri.startsWith("unix:"), uri);
        src.run("migrate", args("uri", uri));

        // STOP comes after the source's setup and active, RESUME after the destination's: had
        // MIGRATION events been sent, they would have arrived before these.
        src.awaitEvent("STOP");
        assertThrows(TimeoutException.class, () -> src.qmp().awaitEvent(MIGRATION_EVENTS, Duration.ZERO));
        assertEquals("completed", src.awaitMigrationEnd().path("status").asText());
        dst.awaitEvent("RESUME");
        assertThrows(TimeoutException.class, () -> dst.qmp().awaitEvent(MIGRATION_EVENTS, Duration.ZERO));
        assertEquals("completed", dst.awaitMigrationEnd().path("status").asText());
        assertEquals("running", dst.runState());
        assertMigratedExactly(src, dst);
    }

    /** multifd set the QEMU way (capability and multifd-channels at both ends, before migrate-incoming). */
    @Test
    void multifdSetThroughQmpMigratesExactlyAndCountsItsBytes() throws Exception {
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        for (Vm vm : List.of(src, dst)) {
            vm.run("migrate-set-capabilities", capabilities("multifd", true));
            vm.run("migrate-set-parameters", args("multifd-channels", 3));
        }
        String uri = dst.listen("tcp:127.0.0.1:0");
        src.run("migrate", args("uri", uri));
        JsonNode end = src.awaitMigrationEnd();
        assertEquals("completed", end.path("status").asText(), end.toString());
        JsonNode ram = end.path("ram");
        assertTrue(ram.path("multifd-bytes").asLong() > 0 && ram.path("multifd-bytes").asLong() < ram.path("transferred")
                .asLong(), "multifd-bytes is the channels' share of transferred: " + ram);
        assertEquals("completed", dst.awaitMigrationEnd().path("status").asText());
        assertEquals("running", dst.runState());
        assertMigratedExactly(src, dst);
    }

    @Test
    void whileAMigrationRunsASecondOneAndCapabilityChangesAreRefused() throws Exception {
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        String uri = dst.listen("tcp:127.0.0.1:0");
        src.run("x-ferry-hold", args("phase", "active"));
        src.run("migrate", args("uri", uri));
        src.awaitHold("active");

        src.assertRefused("migrate", args("uri", uri), "There's a migration process in progress");
        src.assertRefused("migrate", args("uri", "tcp:127.0.0.1:1"), "There's a migration process in progress");
        src.assertRefused("migrate-set-capabilities", capabilities("auto-converge", true),
                "There's a migration process in progress");
        dst.assertRefused("migrate-set-capabilities", capabilities("auto-converge", true),
                "There's a migration process in progress");
        dst.assertRefused("migrate", args("uri", uri), "Guest is waiting for an incoming migration");

        JsonNode info = src.run("query-migrate");
        assertQapiMembers(info);
        assertEquals("active", info.path("status").asText(), info.toString());
        assertTrue(info.has("expected-downtime") && !info.has("downtime") && !info.has("error-desc"), info.toString());
        assertTrue(info.path("ram").path("transferred").asLong() > 0, info.toString());
        assertEquals("running", src.runState());

        // Parameters may change during a migration, as in QEMU.
        src.run("migrate-set-parameters", args("max-bandwidth", 0, "downtime-limit", 400));
        assertEquals(400, src.run("query-migrate-parameters").path("downtime-limit").asLong());

        src.run("x-ferry-release");
        assertEquals("completed", src.awaitMigrationEnd().path("status").asText());
        assertEquals("completed", dst.awaitMigrationEnd().path("status").asText());
        assertEquals("running", dst.runState());
        assertMigratedExactly(src, dst);
    }

    @Test
    void contDuringInmigrateMeansStartAfterTheMigrationAsInQemu() throws Exception {
        Vm dst = vms.destination("dst", true); // -S
        assertEquals("inmigrate", dst.runState());
        assertEquals(QapiJson.JSON.createObjectNode(), dst.run("cont"));
        assertEquals("inmigrate", dst.runState(), "cont only sets autostart during inmigrate");
        assertFalse(dst.run("query-status").path("running").asBoolean());
        String uri = dst.listen("tcp:127.0.0.1:0");
        assertEquals(QapiJson.JSON.createObjectNode(), dst.run("cont"), "also once migrate-incoming listens");

        Vm src = vms.source("src");
        src.run("migrate", args("uri", uri));
        assertEquals("completed", src.awaitMigrationEnd().path("status").asText());
        assertEquals("completed", dst.awaitMigrationEnd().path("status").asText());
        dst.awaitEvent("RESUME");
        assertEquals("running", dst.runState());
        assertMigratedExactly(src, dst);
    }

    @Test
    void stopDuringInmigrateKeepsTheGuestPausedAfterTheMigration() throws Exception {
        Vm dst = vms.destination("dst", false);
        String uri = dst.listen("tcp:127.0.0.1:0");
        assertEquals(QapiJson.JSON.createObjectNode(), dst.run("stop"));
        assertEquals("inmigrate", dst.runState());

        Vm src = vms.source("src");
        src.run("migrate", args("uri", uri));
        assertEquals("completed", src.awaitMigrationEnd().path("status").asText());
        assertEquals("completed", dst.awaitMigrationEnd().path("status").asText());
        assertEquals("paused", dst.runState());
        assertThrows(TimeoutException.class, () -> dst.qmp().awaitEvent(e -> e.name().equals("RESUME"),
                Duration.ZERO), "the guest did not run");
        assertMigratedExactly(src, dst);

        dst.run("cont");
        assertEquals("running", dst.runState());
        dst.awaitEvent("RESUME");
    }

    @ParameterizedTest(name = "cancel in {0}")
    @ValueSource(strings = {"setup", "active", "device"})
    void migrateCancelInEveryPhaseLeavesTheSourceRunningAndIntact(String phase) throws Exception {
        Vm dst = vms.destination("dst", false);
        Vm src = vms.source("src");
        src.enableEvents();
        String uri = dst.listen("tcp:127.0.0.1:0");
        src.run("x-ferry-hold", args("phase", phase));
        src.run("migrate", args("uri", uri));
        src.awaitHold(phase);

        JsonNode during = src.run("query-migrate");
        assertEquals(phase.equals("device") ? "active" : phase, during.path("status").asText(),
                "the hold at device is inside the switchover stop, before the status changes: " + during);
        if (phase.equals("device")) {
            assertEquals("finish-migrate", src.runState());
            src.assertRefused("cont", null, "The VM is stopped for migration switchover; cancel the migration instead");
        }
        assertEquals(QapiJson.JSON.createObjectNode(), src.run("migrate_cancel"));

        JsonNode info = src.awaitMigrationEnd();
        assertQapiMembers(info);
        assertEquals("cancelled", info.path("status").asText(), info.toString());
        assertEquals("running", src.runState(), "the source runs once the status is final");
        assertTrue(src.run("x-ferry-verify").path("working-set").path("intact").asBoolean());
        assertEquals(QapiJson.JSON.createObjectNode(), src.run("migrate_cancel"), "cancelling again is a no-op");

        List<QmpEvent> s = src.takeEventsUntil(MIGRATION_EVENTS.or(RUN_STATE_EVENTS), e -> e.name().equals("MIGRATION")
                && "cancelled".equals(e.dataText("status")));
        List<String> expected = new ArrayList<>(List.of("setup"));
        if (!phase.equals("setup")) {
            expected.add("active");
        }
        expected.addAll(List.of("cancelling", "cancelled"));
        assertEquals(expected, statuses(s), names(s));
        List<String> runState = s.stream().filter(RUN_STATE_EVENTS).map(QmpEvent::name).toList();
        assertEquals(phase.equals("device") ? List.of("STOP", "RESUME") : List.of(), runState, names(s));

        if (phase.equals("setup")) {
            // The source never connected: the destination still waits and takes a new migration.
            assertEquals("setup", dst.run("query-migrate").path("status").asText());
            src.run("migrate", args("uri", uri));
            assertEquals("completed", src.awaitMigrationEnd().path("status").asText());
            assertEquals("completed", dst.awaitMigrationEnd().path("status").asText());
            assertMigratedExactly(src, dst);
        } else {
            JsonNode in = dst.awaitMigrationEnd();
            assertEquals("failed", in.path("status").asText(), in.toString());
            assertFalse(in.path("error-desc").asText().isEmpty(), in.toString());
            assertEquals("inmigrate", dst.runState(), "a failed incoming migration never starts the guest");
        }
    }

    // ---- helpers ----

    /** The source's RAM at switchover is what the destination loaded, and the guest went on from there. */
    private static void assertMigratedExactly(Vm src, Vm dst) throws Exception {
        String digest = src.run("x-ferry-memory-digest").path("digest").asText();
        boolean running = dst.runState().equals("running");
        if (running) {
            awaitGuestProgress(dst);
        }
        JsonNode verified = dst.run("x-ferry-verify");
        assertEquals(digest, verified.path("digest-at-load").asText(), verified.toString());
        assertTrue(verified.path("continuation").path("ok").asBoolean(), verified.toString());
        assertTrue(!running || verified.path("continuation").path("steps-replayed").asLong() > 0,
                "the guest went on from the loaded state: " + verified);
        assertTrue(verified.path("working-set").path("intact").asBoolean(), verified.toString());
    }

    /** Waits until the guest dirtied memory after the migration (the counter is migrated vCPU state). */
    private static void awaitGuestProgress(Vm dst) throws Exception {
        long atLoad = dst.run("x-ferry-guest").path("bytes-dirtied").asLong();
        long deadline = System.nanoTime() + LocalVmms.WAIT.toNanos();
        while (dst.run("x-ferry-guest").path("bytes-dirtied").asLong() == atLoad) {
            assertTrue(System.nanoTime() < deadline, "the guest does not run on the destination");
            Thread.sleep(5);
        }
    }

    /** Every member is QEMU's (or Ferry's x-ferry- extension), and ram has what management tools read. */
    private static void assertQapiMembers(JsonNode info) {
        for (Iterator<String> it = info.fieldNames(); it.hasNext(); ) {
            String m = it.next();
            assertTrue(MIGRATION_INFO.contains(m) || m.startsWith("x-ferry-"), "not a MigrationInfo member: " + m);
        }
        JsonNode ram = info.path("ram");
        List<String> members = new ArrayList<>();
        ram.fieldNames().forEachRemaining(members::add);
        for (String m : members) {
            assertTrue(MIGRATION_STATS.contains(m), "not a MigrationStats member: " + m);
        }
        assertTrue(members.containsAll(RAM_REQUIRED), "ram lacks some of " + RAM_REQUIRED + ": " + ram);
    }

    private static Predicate<QmpEvent> completed() {
        return e -> e.name().equals("MIGRATION") && "completed".equals(e.dataText("status"));
    }

    private static List<String> statuses(List<QmpEvent> events) {
        return events.stream().filter(e -> e.name().equals("MIGRATION")).map(e -> e.dataText("status")).toList();
    }

    private static String names(List<QmpEvent> events) {
        return events.stream().map(e -> e.name() + (e.data() == null ? "" : e.data().toString())).toList().toString();
    }

    private static int indexOf(List<QmpEvent> events, String name, String status) {
        for (int i = 0; i < events.size(); i++) {
            QmpEvent e = events.get(i);
            if (e.name().equals(name) && (status == null || status.equals(e.dataText("status")))) {
                return i;
            }
        }
        throw new AssertionError("no " + name + (status == null ? "" : " " + status) + " in " + names(events));
    }

    private static List<String> iterator(java.util.Iterator<String> it) {
        List<String> l = new java.util.ArrayList<>();
        it.forEachRemaining(l::add);
        return l;
    }
}
