package dev.ferry.vmm.run;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.ferry.vmm.qmp.QmpClient;
import dev.ferry.vmm.qmp.QmpError;
import dev.ferry.vmm.qmp.QmpEvent;
import dev.ferry.vmm.run.LocalVmms.Vm;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static dev.ferry.vmm.run.LocalVmms.WAIT;
import static dev.ferry.vmm.run.LocalVmms.args;
import static dev.ferry.vmm.run.LocalVmms.capabilities;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The VMM's QMP interface over its real UNIX socket, one VMM at a time: the greeting and
 * negotiation, each command's reply in QEMU's shape ({@code qapi/migration.json} member names),
 * QEMU's error messages for wrong arguments and for commands in the wrong state, STOP/RESUME
 * events, quit, and the socket's permissions. Migrations between two VMMs are in
 * {@link VmmQmpMigrationTest}.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class VmmQmpTest {
    private static final List<String> PARAMETERS = List.of("downtime-limit", "max-bandwidth", "cpu-throttle-initial",
            "cpu-throttle-increment", "max-cpu-throttle", "throttle-trigger-threshold", "avail-switchover-bandwidth",
            "x-heartbeat-timeout", "multifd-channels", "tls-creds", "tls-hostname", "tls-authz");
    private static final JsonMapper SINGLE_QUOTES = JsonMapper.builder()
            .enable(JsonReadFeature.ALLOW_SINGLE_QUOTES).build();
    private static final List<String> CAPABILITIES = List.of("events", "auto-converge", "return-path", "switchover-ack",
            "multifd");

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

    // ---- protocol ----

    @Test
    void greetsWithFerrysVersionAndNoCapabilitiesThenNeedsNegotiation() throws Exception {
        Vm vm = vms.source("vm");
        try (QmpClient raw = QmpClient.connect(vm.instance().qmpSocket(), WAIT)) {
            JsonNode qmp = raw.greeting().path("QMP");
            assertEquals("ferry 0.1.0", qmp.path("version").path("package").asText(), raw.greeting().toString());
            JsonNode qemu = qmp.path("version").path("qemu");
            for (String part : List.of("major", "minor", "micro")) {
                assertTrue(qemu.path(part).isInt() && qemu.path(part).asInt() >= 0, "version.qemu." + part + ": " + qmp);
            }
            assertTrue(qmp.path("capabilities").isArray() && qmp.path("capabilities").isEmpty(), qmp.toString());

            QmpError early = assertThrows(QmpError.class, () -> raw.execute("query-status"));
            assertEquals(QmpError.COMMAND_NOT_FOUND, early.errorClass());
            assertEquals("Expecting capabilities negotiation with 'qmp_capabilities'", early.desc());

            assertEquals(QapiJson.JSON.createObjectNode(), raw.execute("qmp_capabilities"));
            QmpError again = assertThrows(QmpError.class, () -> raw.execute("qmp_capabilities"));
            assertEquals(QmpError.COMMAND_NOT_FOUND, again.errorClass());
            assertEquals("running", raw.execute("query-status").path("status").asText());

            QmpError unknown = assertThrows(QmpError.class, () -> raw.execute("migrate-start-postcopy-now"));
            assertEquals(QmpError.COMMAND_NOT_FOUND, unknown.errorClass());
            assertEquals("The command migrate-start-postcopy-now has not been found", unknown.desc());
        }
    }

    @Test
    void onTheWireRepliesAndErrorsHaveQmpsShape() throws Exception {
        Vm vm = vms.source("vm");
        try (SocketChannel channel = SocketChannel.open(UnixDomainSocketAddress.of(vm.instance().qmpSocket()))) {
            BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(channel),
                    StandardCharsets.UTF_8));
            assertTrue(QapiJson.JSON.readTree(in.readLine()).has("QMP"));
            assertEquals(wire("{'return': {}}"), exchange(channel, in, "{'execute': 'qmp_capabilities'}"));
            assertEquals(wire("{'return': {'status': 'running', 'singlestep': false, 'running': true}, 'id': 7}"),
                    exchange(channel, in, "{'execute': 'query-status', 'id': 7}"));
            assertEquals(wire("{'error': {'class': 'GenericError', 'desc': \"Parameter 'downtime_limit' expects an "
                            + "integer in the range of 0 to 2000000 milliseconds\"}, 'id': 'set-1'}"),
                    exchange(channel, in, "{'execute': 'migrate-set-parameters', 'arguments': "
                            + "{'downtime-limit': 3000000}, 'id': 'set-1'}"));
            assertEquals(wire("{'error': {'class': 'GenericError', 'desc': \"Parameter 'uri' is missing\"}}"),
                    exchange(channel, in, "{'execute': 'migrate'}"));
            assertEquals(wire("{'error': {'class': 'CommandNotFound', 'desc': 'The command frobnicate has not been "
                    + "found'}, 'id': [1]}"), exchange(channel, in, "{'execute': 'frobnicate', 'id': [1]}"));
        }
    }

    @Test
    void socketIsOwnerOnly() throws Exception {
        Vm vm = vms.source("vm");
        Path socket = vm.instance().qmpSocket();
        assertEquals(dir.resolve("vm.qmp").toAbsolutePath(), socket);
        int mode = (Integer) Files.getAttribute(socket, "unix:mode", LinkOption.NOFOLLOW_LINKS);
        assertEquals(0140000, mode & 0170000, "not a socket: mode " + Integer.toOctalString(mode));
        assertEquals("rw-------", PosixFilePermissions.toString(
                Files.getPosixFilePermissions(socket, LinkOption.NOFOLLOW_LINKS)));
        assertEquals(Files.getOwner(dir), Files.getOwner(socket, LinkOption.NOFOLLOW_LINKS));
    }

    // ---- run state ----

    @Test
    void stopAndContChangeTheStatusAndEmitStopAndResumeWithTimestamps() throws Exception {
        Vm vm = vms.source("vm");
        assertEquals(status("running", true), vm.run("query-status"));

        assertEquals(QapiJson.JSON.createObjectNode(), vm.run("stop"));
        assertEquals(status("paused", false), vm.run("query-status"));
        assertEquals(QapiJson.JSON.createObjectNode(), vm.run("stop"), "stop on a paused VM is a no-op, as in QEMU");
        assertEquals(QapiJson.JSON.createObjectNode(), vm.run("cont"));
        assertEquals(status("running", true), vm.run("query-status"));

        List<QmpEvent> events = vm.takeEventsUntil(e -> e.name().equals("STOP"), e -> e.name().equals("RESUME"));
        assertEquals(List.of("STOP", "RESUME"), events.stream().map(QmpEvent::name).toList());
        for (QmpEvent e : events) {
            assertTrue(e.data() == null, e.name() + " carries no data in QEMU: " + e.data());
            assertTimestamp(e);
        }
        QmpError wrong = vm.refused("query-status", args("verbose", true));
        assertEquals("Parameter 'verbose' is unexpected", wrong.desc());
    }

    @Test
    void startedPausedItIsInPrelaunchUntilCont() throws Exception {
        Vm vm = vms.start("vm", null, true, false);
        assertEquals(status("prelaunch", false), vm.run("query-status"));
        vm.run("cont");
        assertEquals(status("running", true), vm.run("query-status"));
        assertTimestamp(vm.awaitEvent("RESUME"));
    }

    // ---- query-migrate before any migration ----

    @Test
    void queryMigrateIsEmptyBeforeAnyMigrationAndShowsTheListenerOnADestination() throws Exception {
        Vm src = vms.source("src");
        assertEquals(QapiJson.JSON.createObjectNode(), src.run("query-migrate"));
        Vm dst = vms.destination("dst", false);
        assertEquals(QapiJson.JSON.createObjectNode(), dst.run("query-migrate"));
        assertEquals(status("inmigrate", false), dst.run("query-status"));

        assertEquals(QapiJson.JSON.createObjectNode(), dst.run("migrate-incoming", args("uri", "tcp:127.0.0.1:0")));
        JsonNode info = dst.run("query-migrate");
        assertEquals("setup", info.path("status").asText(), info.toString());
        JsonNode address = info.path("socket-address").path(0);
        assertEquals("inet", address.path("type").asText(), info.toString());
        assertEquals("127.0.0.1", address.path("host").asText());
        assertTrue(address.path("port").isTextual(), "qapi InetSocketAddress.port is a string: " + address);
        assertTrue(Integer.parseInt(address.path("port").asText()) > 0, "the bound port, not 0: " + address);

        Path unixSocket = dir.resolve("in.sock");
        Vm dst2 = vms.destination("dst2", false);
        dst2.run("migrate-incoming", args("uri", "unix:" + unixSocket));
        JsonNode unix = dst2.run("query-migrate").path("socket-address").path(0);
        assertEquals("unix", unix.path("type").asText(), unix.toString());
        assertEquals(unixSocket.toString(), unix.path("path").asText());
    }

    // ---- migration parameters ----

    @Test
    void parametersHaveQemusDefaultsAndRoundTrip() throws Exception {
        Vm vm = vms.source("vm");
        JsonNode defaults = vm.run("query-migrate-parameters");
        assertEquals(PARAMETERS, names(defaults));
        assertEquals(parameters(300, 128L << 20, 20, 10, 99, 50), defaults);

        assertEquals(QapiJson.JSON.createObjectNode(), vm.run("migrate-set-parameters", args("downtime-limit", 500,
                "max-bandwidth", 1_000_000_000L, "cpu-throttle-initial", 30, "cpu-throttle-increment", 5,
                "max-cpu-throttle", 80)));
        assertEquals(parameters(500, 1_000_000_000L, 30, 5, 80, 50), vm.run("query-migrate-parameters"));

        vm.run("migrate-set-parameters", args("downtime-limit", 0));
        assertEquals(parameters(0, 1_000_000_000L, 30, 5, 80, 50), vm.run("query-migrate-parameters"),
                "parameters not named keep their values");
        vm.run("migrate-set-parameters", args("downtime-limit", 2_000_000, "max-cpu-throttle", 99,
                "cpu-throttle-initial", 1, "max-bandwidth", 0));
        assertEquals(parameters(2_000_000, 0, 1, 5, 99, 50), vm.run("query-migrate-parameters"));
        vm.run("migrate-set-parameters", QapiJson.JSON.createObjectNode());
        assertEquals(parameters(2_000_000, 0, 1, 5, 99, 50), vm.run("query-migrate-parameters"));
        vm.run("migrate-set-parameters", args("avail-switchover-bandwidth", 2L << 30));
        assertEquals(parameters(2_000_000, 0, 1, 5, 99, 50, 2L << 30), vm.run("query-migrate-parameters"));
        vm.assertRefused("migrate-set-parameters", args("avail-switchover-bandwidth", -1), "Parameter "
                + "'avail_switchover_bandwidth' expects an integer in the range of 0 to 18446744073709551615 bytes/second");
        vm.run("migrate-set-parameters", args("multifd-channels", 8));
        assertEquals(parameters(2_000_000, 0, 1, 5, 99, 50, 2L << 30, 8), vm.run("query-migrate-parameters"));
        vm.assertRefused("migrate-set-parameters", args("multifd-channels", 0),
                "Parameter 'multifd_channels' expects an integer in the range of 1 to 255");
        vm.assertRefused("migrate-set-parameters", args("multifd-channels", 256),
                "Parameter 'multifd_channels' expects an integer in the range of 1 to 255");
    }

    @Test
    void parametersOutOfRangeOrOfTheWrongTypeAreRefusedWithQemusMessagesAndChangeNothing() throws Exception {
        Vm vm = vms.source("vm");
        JsonNode before = vm.run("query-migrate-parameters");
        vm.assertRefused("migrate-set-parameters", args("downtime-limit", 3_000_000),
                "Parameter 'downtime_limit' expects an integer in the range of 0 to 2000000 milliseconds");
        vm.assertRefused("migrate-set-parameters", args("downtime-limit", -1),
                "Parameter 'downtime_limit' expects an integer in the range of 0 to 2000000 milliseconds");
        vm.assertRefused("migrate-set-parameters", args("max-cpu-throttle", 0),
                "Parameter 'max_cpu_throttle' expects an integer in the range of 1 to 99");
        vm.assertRefused("migrate-set-parameters", args("max-cpu-throttle", 100),
                "Parameter 'max_cpu_throttle' expects an integer in the range of 1 to 99");
        vm.assertRefused("migrate-set-parameters", args("cpu-throttle-initial", 0),
                "Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99");
        vm.assertRefused("migrate-set-parameters", args("cpu-throttle-increment", 100),
                "Parameter 'cpu_throttle_increment' expects an integer in the range of 1 to 99");
        vm.assertRefused("migrate-set-parameters", args("max-bandwidth", -1),
                "Parameter 'max_bandwidth' expects an integer in the range of 0 to 18446744073709551615 bytes/second");
        vm.assertRefused("migrate-set-parameters", args("downtime-limit", "fast"),
                "Invalid parameter type for 'downtime-limit', expected: integer");
        vm.assertRefused("migrate-set-parameters", args("max-bandwidth", 1.5),
                "Invalid parameter type for 'max-bandwidth', expected: integer");
        vm.assertRefused("migrate-set-parameters", args("downtime-limit", 100, "max-cpu-throttle", 0),
                "Parameter 'max_cpu_throttle' expects an integer in the range of 1 to 99");
        vm.assertRefused("migrate-set-parameters", args("compress-level", 1),
                "Parameter 'compress-level' is unexpected");
        assertEquals(before, vm.run("query-migrate-parameters"), "a refused set changes nothing");
    }

    // ---- migration capabilities ----

    @Test
    void capabilitiesHaveFerrysDefaultsAndRoundTrip() throws Exception {
        Vm vm = vms.source("vm");
        assertEquals(capabilityList(false, false, true, false, false), vm.run("query-migrate-capabilities"));

        assertEquals(QapiJson.JSON.createObjectNode(), vm.run("migrate-set-capabilities",
                capabilities("events", true, "auto-converge", true, "switchover-ack", true)));
        assertEquals(capabilityList(true, true, true, true, false), vm.run("query-migrate-capabilities"));

        vm.run("migrate-set-capabilities", capabilities("switchover-ack", false, "return-path", false));
        assertEquals(capabilityList(true, true, false, false, false), vm.run("query-migrate-capabilities"));
        vm.run("migrate-set-capabilities", capabilities("events", false));
        assertEquals(capabilityList(false, true, false, false, false), vm.run("query-migrate-capabilities"),
                "capabilities not named keep their state");
        vm.run("migrate-set-capabilities", capabilities("multifd", true));
        assertEquals(capabilityList(false, true, false, false, true), vm.run("query-migrate-capabilities"));
    }

    @Test
    void unknownUnsupportedAndMalformedCapabilitiesAreRefused() throws Exception {
        Vm vm = vms.source("vm");
        JsonNode before = vm.run("query-migrate-capabilities");
        QmpError unknown = vm.refused("migrate-set-capabilities", capabilities("warp-drive", true));
        assertEquals(QmpError.GENERIC_ERROR, unknown.errorClass());
        assertTrue(unknown.desc().matches("Parameter '(capabilities\\[0]\\.)?capability' does not accept value "
                + "'warp-drive'"), unknown.desc());

        vm.assertRefused("migrate-set-capabilities", capabilities("xbzrle", true),
                "Capability 'xbzrle' is not supported by Ferry");
        vm.assertRefused("migrate-set-capabilities", capabilities("events", true, "postcopy-ram", true),
                "Capability 'postcopy-ram' is not supported by Ferry");
        assertEquals(before, vm.run("query-migrate-capabilities"), "a refused set changes nothing");
        assertEquals(QapiJson.JSON.createObjectNode(), vm.run("migrate-set-capabilities",
                capabilities("xbzrle", false, "postcopy-ram", false)), "turning off what Ferry lacks is fine");
        assertEquals(before, vm.run("query-migrate-capabilities"));

        vm.assertRefused("migrate-set-capabilities", capabilities("return-path", false, "switchover-ack", true),
                "Capability 'switchover-ack' requires capability 'return-path'");
        vm.assertRefused("migrate-set-capabilities", QapiJson.JSON.createObjectNode(),
                "Parameter 'capabilities' is missing");
        vm.assertRefused("migrate-set-capabilities", args("capabilities", List.of(Map.of(
                "capability", "events"))), "Parameter 'capabilities[0].state' is missing");
        vm.assertRefused("migrate-set-capabilities", args("capabilities", List.of(Map.of(
                "capability", "events", "state", "yes"))),
                "Invalid parameter type for 'capabilities[0].state', expected: boolean");
        vm.assertRefused("migrate-set-capabilities", args("capabilities", List.of(Map.of(
                "capability", "events", "state", true, "extra", 1))),
                "Parameter 'capabilities[0].extra' is unexpected");
        vm.assertRefused("migrate-set-capabilities", args("capabilities", "events"),
                "Invalid parameter type for 'capabilities', expected: array");
        assertEquals(before, vm.run("query-migrate-capabilities"));
    }

    // ---- wrong arguments and wrong states for migrate and migrate-incoming ----

    @Test
    void migrateAndMigrateIncomingCheckTheirArguments() throws Exception {
        Vm src = vms.source("src");
        src.assertRefused("migrate", QapiJson.JSON.createObjectNode(), "Parameter 'uri' is missing");
        src.assertRefused("migrate", args("uri", 4444), "Invalid parameter type for 'uri', expected: string");
        src.assertRefused("migrate", args("uri", "tcp:127.0.0.1:1", "speed", 9),
                "Parameter 'speed' is unexpected");
        src.assertRefused("migrate", args("uri", "tcp:127.0.0.1:1", "blk", true),
                "Block migration is not supported by Ferry; use shared storage");
        src.assertRefused("migrate", args("uri", "tcp:127.0.0.1:1", "resume", true),
                "Postcopy recovery is not supported by Ferry");
        src.assertRefused("migrate", args("uri", "carrier-pigeon:coop"),
                "unknown migration protocol: carrier-pigeon:coop");
        assertEquals(QapiJson.JSON.createObjectNode(), src.run("query-migrate"), "nothing was started");

        Vm dst = vms.destination("dst", false);
        dst.assertRefused("migrate-incoming", QapiJson.JSON.createObjectNode(), "Parameter 'uri' is missing");
        dst.assertRefused("migrate-incoming", args("uri", "tcp:127.0.0.1:0", "channels", List.of()),
                "Parameter 'channels' is unexpected");
        QmpError badUri = dst.refused("migrate-incoming", args("uri", "carrier-pigeon:coop"));
        assertTrue(badUri.desc().startsWith("Failed to listen on 'carrier-pigeon:coop': "), badUri.desc());
        assertEquals(QapiJson.JSON.createObjectNode(), dst.run("query-migrate"), "nothing was started");
        assertEquals("tcp:", dst.listen("tcp:127.0.0.1:0").substring(0, 4), "a refused URI does not use it up");
    }

    @Test
    void incomingCommandsNeedAnIncomingVmmAndOnlyOneIncomingMigration() throws Exception {
        Vm src = vms.source("src");
        src.assertRefused("migrate-incoming", args("uri", "tcp:127.0.0.1:0"),
                "'-incoming' was not specified on the command line");

        Vm dst = vms.destination("dst", false);
        dst.assertRefused("migrate", args("uri", "tcp:127.0.0.1:1"), "Guest is waiting for an incoming migration");
        dst.listen("tcp:127.0.0.1:0");
        dst.assertRefused("migrate-incoming", args("uri", "tcp:127.0.0.1:0"),
                "The incoming migration has already been started");
        dst.assertRefused("migrate", args("uri", "tcp:127.0.0.1:1"), "Guest is waiting for an incoming migration");
        dst.assertRefused("migrate-set-capabilities", capabilities("events", true),
                "There's a migration process in progress");

        Vm listening = vms.start("listening", "tcp:127.0.0.1:0", false, false);
        assertEquals("setup", listening.run("query-migrate").path("status").asText());
        listening.assertRefused("migrate-incoming", args("uri", "tcp:127.0.0.1:0"),
                "The incoming migration has already been started");
    }

    @Test
    void migrateCancelWithoutAMigrationIsANoOp() throws Exception {
        Vm src = vms.source("src");
        assertEquals(QapiJson.JSON.createObjectNode(), src.run("migrate_cancel"));
        assertEquals(QapiJson.JSON.createObjectNode(), src.run("query-migrate"));
        assertEquals("running", src.runState());
        src.assertRefused("migrate_cancel", args("uri", "x"), "Parameter 'uri' is unexpected");
    }

    // ---- quit ----

    @Test
    void quitRepliesThenEndsTheInstance() throws Exception {
        Vm vm = vms.source("vm");
        assertFalse(vm.instance().awaitQuit(0, TimeUnit.SECONDS));
        assertEquals(QapiJson.JSON.createObjectNode(), vm.run("quit"));
        assertTrue(vm.instance().awaitQuit(WAIT.toSeconds(), TimeUnit.SECONDS), "awaitQuit did not return");
        Path socket = vm.instance().qmpSocket();
        vm.instance().close(); // what ferry run does once awaitQuit returns
        assertThrows(IOException.class, () -> vm.qmp().execute("query-status", null, Duration.ofSeconds(30)));
        assertFalse(Files.exists(socket, LinkOption.NOFOLLOW_LINKS), "the socket file is removed");
    }

    // ---- helpers ----

    /** Sends one request (QEMU accepts single quotes too) and reads the one line that answers it. */
    private static JsonNode exchange(SocketChannel channel, BufferedReader in, String request) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(request.getBytes(StandardCharsets.UTF_8));
        while (bytes.hasRemaining()) {
            channel.write(bytes);
        }
        return QapiJson.JSON.readTree(in.readLine());
    }

    /** JSON written with QEMU's single-quoted strings, for readability. */
    private static JsonNode wire(String json) throws IOException {
        return SINGLE_QUOTES.readTree(json);
    }

    static void assertTimestamp(QmpEvent e) {
        assertTrue(e.seconds() > 0, e.toString());
        assertTrue(e.microseconds() >= 0 && e.microseconds() < 1_000_000, e.toString());
        Duration off = Duration.between(e.timestamp(), Instant.now()).abs();
        assertTrue(off.compareTo(Duration.ofDays(1)) < 0, "timestamp is not the time of day: " + e);
    }

    private static JsonNode status(String status, boolean running) {
        return QapiJson.JSON.createObjectNode().put("status", status).put("singlestep", false).put("running", running);
    }

    /** As it reads off the wire (Jackson's node equality tells an int from a long of the same value). */
    private static JsonNode parameters(long downtime, long bandwidth, int initial, int increment, int max, int trigger)
            throws IOException {
        return parameters(downtime, bandwidth, initial, increment, max, trigger, 0);
    }

    private static JsonNode parameters(long downtime, long bandwidth, int initial, int increment, int max, int trigger,
                                       long avail) throws IOException {
        return parameters(downtime, bandwidth, initial, increment, max, trigger, avail, 2);
    }

    private static JsonNode parameters(long downtime, long bandwidth, int initial, int increment, int max, int trigger,
                                       long avail, int multifdChannels) throws IOException {
        return QapiJson.JSON.readTree(QapiJson.JSON.createObjectNode().put("downtime-limit", downtime)
                .put("max-bandwidth", bandwidth).put("cpu-throttle-initial", initial)
                .put("cpu-throttle-increment", increment).put("max-cpu-throttle", max)
                .put("throttle-trigger-threshold", trigger).put("avail-switchover-bandwidth", avail)
                .put("x-heartbeat-timeout", 5000).put("multifd-channels", multifdChannels).put("tls-creds", "").put("tls-hostname", "").put("tls-authz", "")
                .toString());
    }

    private static JsonNode capabilityList(boolean... states) {
        var list = QapiJson.JSON.createArrayNode();
        for (int i = 0; i < states.length; i++) {
            list.addObject().put("capability", CAPABILITIES.get(i)).put("state", states[i]);
        }
        return list;
    }

    private static List<String> names(JsonNode object) {
        List<String> names = new ArrayList<>();
        for (Iterator<String> it = object.fieldNames(); it.hasNext(); ) {
            names.add(it.next());
        }
        return names;
    }
}
