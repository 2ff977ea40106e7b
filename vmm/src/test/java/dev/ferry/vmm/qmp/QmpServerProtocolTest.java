package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The server's side of the QMP conversation, byte for byte, over a real UNIX socket: what a script
 * piping JSON through socat would see from QEMU.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class QmpServerProtocolTest {
    private static final String EXPECTING = "{\"error\": {\"class\": \"CommandNotFound\", "
            + "\"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}";

    @TempDir
    Path dir;
    private QmpServer server;
    private RawQmpPeer peer;

    @BeforeEach
    void start() throws IOException {
        AtomicReference<QmpServer> self = new AtomicReference<>();
        server = new QmpServer(dir.resolve("qmp.sock"), DummyCommands.VERSION, DummyCommands.create(self));
        self.set(server);
        peer = RawQmpPeer.connect(server.socketPath());
    }

    @AfterEach
    void stop() throws IOException {
        peer.close();
        server.close();
    }

    @Test
    void greetingIsExactlyQemus() {
        assertEquals("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
                + "\"package\": \"ferry-test\"}, \"capabilities\": []}}", peer.greeting());
    }

    @Test
    void commandsBeforeNegotiationAreRefused() throws IOException {
        assertEquals(EXPECTING, peer.call("{\"execute\": \"echo\"}"));
        assertEquals(EXPECTING, peer.call("{\"execute\": \"no-such-command\"}"));
        assertEquals("{\"id\": 1, \"error\": {\"class\": \"CommandNotFound\", "
                + "\"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}",
                peer.call("{\"execute\": \"query-version\", \"id\": 1}"));
    }

    @Test
    void negotiationHappensOnce() throws IOException {
        assertEquals("{\"return\": {}, \"id\": \"n\"}", peer.call("{\"execute\": \"qmp_capabilities\", \"id\": \"n\"}"));
        assertEquals("{\"error\": {\"class\": \"CommandNotFound\", "
                + "\"desc\": \"Capabilities negotiation is already complete, command ignored\"}}",
                peer.call("{\"execute\": \"qmp_capabilities\"}"));
        assertEquals("{\"return\": {\"x\": 1}}", peer.call("{\"execute\": \"echo\", \"arguments\": {\"x\": 1}}"));
    }

    @Test
    void unknownOrUnofferedCapabilitiesFailAndNegotiationStaysOpen() throws IOException {
        assertEquals("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'enable[0]' does not accept value 'bogus'\"}}",
                peer.call("{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"bogus\"]}}"));
        assertEquals("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Capability oob not available\"}}",
                peer.call("{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"oob\"]}}"));
        assertEquals("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'foo' is unexpected\"}}",
                peer.call("{\"execute\": \"qmp_capabilities\", \"arguments\": {\"foo\": 1}}"));
        assertEquals(EXPECTING, peer.call("{\"execute\": \"echo\"}"));
        assertEquals("{\"return\": {}}", peer.call("{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": []}}"));
    }

    @Test
    void unknownCommand() throws IOException {
        negotiate();
        assertEquals("{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nope has not been found\"}}",
                peer.call("{\"execute\": \"nope\"}"));
    }

    @Test
    void idIsEchoedWhateverItsTypeAndOmittedWhenAbsent() throws IOException {
        negotiate();
        assertEquals("{\"return\": {}, \"id\": 42}", peer.call("{\"execute\": \"echo\", \"id\": 42}"));
        assertEquals("{\"return\": {}, \"id\": -1.5}", peer.call("{\"execute\": \"echo\", \"id\": -1.5}"));
        assertEquals("{\"return\": {}, \"id\": \"libvirt-7\"}", peer.call("{\"execute\": \"echo\", \"id\": \"libvirt-7\"}"));
        assertEquals("{\"return\": {}, \"id\": {\"a\": [1, true, null]}}",
                peer.call("{\"execute\": \"echo\", \"id\": {\"a\": [1, true, null]}}"));
        assertEquals("{\"return\": {}, \"id\": null}", peer.call("{\"execute\": \"echo\", \"id\": null}"));
        assertEquals("{\"return\": {}}", peer.call("{\"execute\": \"echo\"}"));
        assertEquals("{\"id\": [1], \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nope has not been found\"}}",
                peer.call("{\"id\": [1], \"execute\": \"nope\"}"));
    }

    @Test
    void malformedJsonIsAnErrorAndTheConnectionCarriesOn() throws IOException {
        negotiate();
        String error = peer.call("{\"execute\": }");
        assertTrue(error.startsWith("{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, "), error);
        assertEquals("{\"return\": {}, \"id\": 2}", peer.call("{\"execute\": \"echo\", \"id\": 2}"));
        String duplicate = peer.call("{\"execute\": \"echo\", \"execute\": \"echo\"}");
        assertTrue(duplicate.contains("JSON parse error, Duplicate field 'execute'"), duplicate);
        String keyword = peer.call("nonsense ");
        assertTrue(keyword.startsWith("{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, "), keyword);
        assertEquals("{\"return\": {}, \"id\": 3}", peer.call("{\"execute\": \"echo\", \"id\": 3}"));
    }

    /**
     * QEMU's JSON streamer refuses more than 1024 open brackets and braces with its own words; up
     * to that depth the message is parsed (and here refused for what it is, not for its depth).
     * Never the JSON library's internals.
     */
    @Test
    void nestingDeeperThanQemuAllowsIsRefusedInQemusWords() throws IOException {
        negotiate();
        assertEquals("{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON nesting depth limit exceeded\"}}",
                peer.call("[".repeat(1025) + "]".repeat(1025)));
        assertEquals("{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON nesting depth limit exceeded\"}}",
                peer.call("{\"execute\": \"echo\", \"arguments\": {\"a\": " + "{\"b\": ".repeat(1100)
                        + "1" + "}".repeat(1100) + "}}"));
        assertEquals("{\"return\": {}, \"id\": 5}", peer.call("{\"execute\": \"echo\", \"id\": 5}"));
        String deepest = peer.call("{\"id\": 6, \"execute\": \"echo\", \"x-deep\": " + "[".repeat(1023)
                + "]".repeat(1023) + "}");
        assertTrue(deepest.contains("\"id\": 6") && !deepest.contains("nesting") && !deepest.contains("Constraints"),
                deepest);
    }

    @Test
    void controlCharacterResetsTheParserAsTheSpecSays() throws IOException {
        negotiate();
        peer.send("{\"execute\": \"echo\", \"arguments\": {\"half");
        assertEquals("{\"error\": {\"class\": \"GenericError\", "
                        + "\"desc\": \"JSON parse error, stray byte 0x1B inside a message; message discarded\"}}",
                peer.call("\u001b"));
        peer.send(new byte[] {(byte) 0xFF});
        assertEquals("{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray byte 0xFF\"}}", peer.readLine());
        assertEquals("{\"return\": {}, \"id\": 4}", peer.call("{\"execute\": \"echo\", \"id\": 4}"));
    }

    @Test
    void inputThatIsNotAnObjectIsRefused() throws IOException {
        negotiate();
        String notObject = "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input must be a JSON object\"}}";
        assertEquals(notObject, peer.call("[{\"execute\": \"echo\"}]"));
        assertEquals(notObject, peer.call("42\n"));
        assertEquals(notObject, peer.call("'single'"));
    }

    @Test
    void requestMembersAreCheckedLikeQemu() throws IOException {
        negotiate();
        assertEquals("{\"id\": 5, \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input lacks member 'execute'\"}}",
                peer.call("{\"id\": 5}"));
        assertEquals("{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input lacks member 'execute'\"}}",
                peer.call("{\"arguments\": {}}"));
        assertEquals("{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'execute' must be a string\"}}",
                peer.call("{\"execute\": [\"echo\"]}"));
        assertEquals("{\"id\": 6, \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'arguments' must be an object\"}}",
                peer.call("{\"execute\": \"echo\", \"arguments\": [1], \"id\": 6}"));
        assertEquals("{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'foo' is unexpected\"}}",
                peer.call("{\"execute\": \"echo\", \"foo\": 1}"));
        assertEquals("{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'exec-oob' is unexpected\"}}",
                peer.call("{\"exec-oob\": \"echo\"}"));
    }

    @Test
    void argumentErrorsComeFromQmpArgs() throws IOException {
        negotiate();
        assertEquals(generic("Parameter 'uri' is missing"), peer.call("{\"execute\": \"typed\"}"));
        assertEquals(generic("Invalid parameter type for 'uri', expected: string"),
                peer.call("{\"execute\": \"typed\", \"arguments\": {\"uri\": 5}}"));
        assertEquals(generic("Parameter 'foo' is unexpected"),
                peer.call("{\"execute\": \"typed\", \"arguments\": {\"uri\": \"tcp:x:1\", \"foo\": true}}"));
        assertEquals(generic("Parameter 'count' expects a value between 0 and 10"),
                peer.call("{\"execute\": \"typed\", \"arguments\": {\"uri\": \"u\", \"count\": 11}}"));
        assertEquals(generic("Parameter 'caps[0].state' is missing"),
                peer.call("{\"execute\": \"typed\", \"arguments\": {\"uri\": \"u\", \"caps\": [{\"capability\": \"x\"}]}}"));
        assertEquals(generic("Parameter 'mode' does not accept value 'warp'"),
                peer.call("{\"execute\": \"typed\", \"arguments\": {\"uri\": \"u\", \"mode\": \"warp\"}}"));
        assertEquals(generic("Parameter 'c' is unexpected"),
                peer.call("{\"execute\": \"declared\", \"arguments\": {\"a\": 1, \"c\": 2}}"));
        assertEquals("{\"return\": {\"uri\": \"u\", \"detach\": true, \"count\": 3, \"mode\": \"slow\", \"caps\": [{\"x\": false}]}}",
                peer.call("{\"execute\": \"typed\", \"arguments\": {\"uri\": \"u\", \"detach\": true, \"count\": 3, "
                        + "\"mode\": \"slow\", \"caps\": [{\"capability\": \"x\", \"state\": false}]}}"));
    }

    @Test
    void handlerErrorsBecomeErrorRepliesAndTheConnectionSurvives() throws IOException {
        negotiate();
        assertEquals("{\"id\": 1, \"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'nic9' not found\"}}",
                peer.call("{\"execute\": \"refuse\", \"id\": 1}"));
        assertEquals("{\"id\": 2, \"error\": {\"class\": \"GenericError\", \"desc\": \"boom: handler bug\"}}",
                peer.call("{\"execute\": \"crash\", \"id\": 2}"));
        assertEquals("{\"return\": {}, \"id\": 3}", peer.call("{\"execute\": \"echo\", \"id\": 3}"));
    }

    @Test
    void pipelinedAndSplitRequestsAreAnsweredInOrder() throws IOException {
        negotiate();
        StringBuilder burst = new StringBuilder();
        for (int i = 0; i < 40; i++) {
            burst.append("{\"execute\": \"echo\", \"id\": ").append(i).append('}');
        }
        peer.send(burst.toString());
        for (int i = 0; i < 40; i++) {
            assertEquals("{\"return\": {}, \"id\": " + i + "}", peer.readLine());
        }
        for (byte b : "{\"execute\": \"echo\", \"id\": \"slow\"}".getBytes(StandardCharsets.UTF_8)) {
            peer.send(new byte[] {b});
        }
        assertEquals("{\"return\": {}, \"id\": \"slow\"}", peer.readLine());
    }

    @Test
    void singleQuotesAndNonAsciiInputAreUnderstoodAndOutputIsAscii() throws IOException {
        negotiate();
        assertEquals("{\"return\": {\"s\": \"it's \\u00E9\"}}",
                peer.call("{'execute': 'echo', 'arguments': {'s': 'it\\'s é'}}"));
    }

    @Test
    void oversizedRequestIsRefusedAndTheStreamStaysInStep() throws IOException {
        negotiate();
        String huge = "{\"execute\": \"echo\", \"arguments\": {\"blob\": \"" + "z".repeat(QmpServer.MAX_REQUEST_BYTES) + "\"}}";
        assertEquals(generic("JSON parse error, message longer than " + QmpServer.MAX_REQUEST_BYTES
                + " bytes; message discarded"), peer.call(huge));
        assertEquals("{\"return\": {}, \"id\": 9}", peer.call("{\"execute\": \"echo\", \"id\": 9}"));
    }

    @Test
    void queryVersionAndQueryCommandsComeFromTheServer() throws IOException {
        negotiate();
        assertEquals("{\"return\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"ferry-test\"}}",
                peer.call("{\"execute\": \"query-version\"}"));
        JsonNode commands = QmpWire.JSON.readTree(peer.call("{\"execute\": \"query-commands\"}")).get("return");
        assertEquals(QmpWire.JSON.readTree("[{\"name\": \"crash\"}, {\"name\": \"declared\"}, {\"name\": \"echo\"}, "
                + "{\"name\": \"emit-then-return\"}, {\"name\": \"qmp_capabilities\"}, {\"name\": \"query-commands\"}, "
                + "{\"name\": \"query-version\"}, {\"name\": \"quit\"}, {\"name\": \"refuse\"}, {\"name\": \"typed\"}]"), commands);
        assertEquals(generic("Parameter 'x' is unexpected"),
                peer.call("{\"execute\": \"query-version\", \"arguments\": {\"x\": 1}}"));
    }

    private void negotiate() throws IOException {
        assertEquals("{\"return\": {}}", peer.call("{\"execute\": \"qmp_capabilities\"}"));
    }

    private static String generic(String desc) {
        return "{\"error\": {\"class\": \"GenericError\", \"desc\": \"" + desc + "\"}}";
    }
}
