package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.io.CharacterEscapes;
import com.fasterxml.jackson.core.io.SerializedString;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.core.json.JsonWriteFeature;
import com.fasterxml.jackson.core.util.MinimalPrettyPrinter;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectWriter;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Instant;
import java.util.Arrays;

/**
 * The QMP message shapes and their byte form, shared by {@link QmpServer} and {@link QmpClient}.
 *
 * <p>Output is byte-for-byte what QEMU 7.2 writes, so transcripts diff cleanly and scripts that
 * grep QEMU's output keep working: compact JSON with {@code ": "} and {@code ", "} separators,
 * ASCII only (control characters and everything from U+007F up as {@code &#92;uXXXX} escapes),
 * each message followed by CRLF. The envelope members come in the order QEMU's QDict hash buckets put them
 * ({@code "return"} before {@code "id"}, but {@code "id"} before {@code "error"};
 * {@code "timestamp", "event", "data"}; {@code "micro", "minor", "major"}). Member order carries no
 * meaning in QMP; matching it only keeps diffs quiet. Values a handler returns keep their own order.
 *
 * <p>Input accepts QEMU's extensions: single-quoted strings and the {@code \'} escape. A repeated
 * key is an error (QEMU: "duplicate key"), as is anything after the one value in a frame.
 *
 * <p>Thread-safe: the mapper and writer are immutable once built.
 */
final class QmpWire {
    /** Parses input and builds trees; configured for QEMU's input dialect. */
    static final JsonMapper JSON = JsonMapper.builder(JsonFactory.builder()
                    // the framer refuses deeper input in QEMU's words first (QmpJsonFramer.MAX_NESTING)
                    .streamReadConstraints(StreamReadConstraints.builder()
                            .maxNestingDepth(QmpJsonFramer.MAX_NESTING).build())
                    .build())
            .enable(JsonReadFeature.ALLOW_SINGLE_QUOTES)
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(JsonWriteFeature.ESCAPE_NON_ASCII)
            .build();
    static final JsonNodeFactory NODES = JSON.getNodeFactory();

    private static final byte[] CRLF = {'\r', '\n'};
    private static final ObjectWriter WRITER = JSON.writer(new QemuLayout()).with(new QemuEscapes());

    private QmpWire() {
    }

    /** {@code message} as QEMU writes it, CRLF included. */
    static byte[] encode(JsonNode message) {
        try {
            byte[] json = WRITER.writeValueAsBytes(message);
            byte[] line = Arrays.copyOf(json, json.length + CRLF.length);
            System.arraycopy(CRLF, 0, line, json.length, CRLF.length);
            return line;
        } catch (JsonProcessingException e) {
            // A tree of JsonNodes always serializes; this would be a Jackson bug.
            throw new UncheckedIOException(e);
        }
    }

    /** {@code {"return": value, "id": id}}; {@code id} omitted when the request had none. */
    static ObjectNode success(JsonNode value, JsonNode id) {
        ObjectNode reply = NODES.objectNode();
        reply.set("return", value == null ? NODES.objectNode() : value);
        if (id != null) {
            reply.set("id", id);
        }
        return reply;
    }

    /** {@code {"id": id, "error": {"class": ..., "desc": ...}}}; {@code id} omitted when absent. */
    static ObjectNode failure(QmpError error, JsonNode id) {
        ObjectNode reply = NODES.objectNode();
        if (id != null) {
            reply.set("id", id);
        }
        reply.putObject("error").put("class", error.errorClass()).put("desc", error.desc());
        return reply;
    }

    /** An event message; {@code data} omitted when null. Timestamp in QEMU's seconds + microseconds. */
    static ObjectNode event(String name, ObjectNode data, Instant when) {
        ObjectNode event = NODES.objectNode();
        event.putObject("timestamp")
                .put("seconds", when.getEpochSecond())
                .put("microseconds", when.getNano() / 1000);
        event.put("event", name);
        if (data != null) {
            event.set("data", data);
        }
        return event;
    }

    /** The greeting: {@code {"QMP": {"version": ..., "capabilities": []}}} (no capability offered). */
    static ObjectNode greeting(QmpVersion version) {
        ObjectNode greeting = NODES.objectNode();
        ObjectNode qmp = greeting.putObject("QMP");
        qmp.set("version", version.toJson());
        qmp.putArray("capabilities");
        return greeting;
    }

    /** Jackson's message without its source-location suffix, for "JSON parse error, ..." replies. */
    static String parseProblem(JsonProcessingException e) {
        String message = e.getOriginalMessage();
        return message == null ? e.getClass().getSimpleName() : message.replace('\n', ' ');
    }

    /** Separators as QEMU's JSON writer: {@code {"a": 1, "b": [1, 2]}}, empty containers bare. */
    private static final class QemuLayout extends MinimalPrettyPrinter {
        private static final long serialVersionUID = 1L;

        @Override
        public void writeObjectFieldValueSeparator(JsonGenerator g) throws IOException {
            g.writeRaw(": ");
        }

        @Override
        public void writeObjectEntrySeparator(JsonGenerator g) throws IOException {
            g.writeRaw(", ");
        }

        @Override
        public void writeArrayValueSeparator(JsonGenerator g) throws IOException {
            g.writeRaw(", ");
        }
    }

    /** Jackson's standard escapes plus DEL (U+007F), which QEMU escapes as well. */
    private static final class QemuEscapes extends CharacterEscapes {
        private static final long serialVersionUID = 1L;
        private static final int[] ASCII = standardAsciiEscapesForJSON();

        static {
            ASCII[0x7F] = ESCAPE_CUSTOM;
        }

        @Override
        public int[] getEscapeCodesForAscii() {
            return ASCII;
        }

        @Override
        public SerializedString getEscapeSequence(int ch) {
            return ch == 0x7F ? new SerializedString("\\u007F") : null;
        }
    }
}
