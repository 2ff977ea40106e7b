package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Output bytes exactly as QEMU 7.2 writes them. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class QmpWireTest {
    @Test
    void greetingHasQemuLayoutAndMemberOrder() {
        assertEquals("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 3, \"minor\": 2, \"major\": 7}, "
                        + "\"package\": \"ferry 0.1.0\"}, \"capabilities\": []}}\r\n",
                text(QmpWire.greeting(new QmpVersion(7, 2, 3, "ferry 0.1.0"))));
    }

    @Test
    void successPutsReturnBeforeIdAndErrorPutsIdFirst() {
        ObjectNode value = QmpWire.NODES.objectNode().put("status", "running");
        value.putArray("list").add(1).add(2);
        assertEquals("{\"return\": {\"status\": \"running\", \"list\": [1, 2]}, \"id\": \"a\"}\r\n",
                text(QmpWire.success(value, QmpWire.NODES.textNode("a"))));
        assertEquals("{\"id\": 7, \"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\r\n",
                text(QmpWire.failure(QmpError.generic("no"), QmpWire.NODES.numberNode(7))));
        assertEquals("{\"return\": {}}\r\n", text(QmpWire.success(null, null)));
    }

    @Test
    void eventHasTimestampFirstInSecondsAndMicroseconds() {
        Instant when = Instant.ofEpochSecond(1_700_000_000L, 123_456_789);
        assertEquals("{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 123456}, \"event\": \"STOP\"}\r\n",
                text(QmpWire.event("STOP", null, when)));
        assertEquals("{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 123456}, \"event\": \"MIGRATION\", "
                        + "\"data\": {\"status\": \"setup\"}}\r\n",
                text(QmpWire.event("MIGRATION", QmpWire.NODES.objectNode().put("status", "setup"), when)));
    }

    @Test
    void outputIsAsciiWithQemuEscapes() {
        ObjectNode value = QmpWire.NODES.objectNode().put("s", "é\u007f\u0001\n\t\"\\/€\uD83D\uDE00");
        assertEquals("{\"return\": {\"s\": \"\\u00E9\\u007F\\u0001\\n\\t\\\"\\\\/\\u20AC\\uD83D\\uDE00\"}}\r\n",
                text(QmpWire.success(value, null)));
    }

    private static String text(ObjectNode message) {
        return new String(QmpWire.encode(message), StandardCharsets.US_ASCII);
    }
}
