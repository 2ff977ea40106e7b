package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.time.Instant;
import java.util.Objects;

/**
 * An asynchronous QMP event as a client received it.
 *
 * @param name the {@code "event"} member, e.g. {@code "MIGRATION"}
 * @param data the {@code "data"} member; null when the event has none
 * @param seconds {@code "timestamp"."seconds"} since the Unix epoch (-1 if the server had no clock)
 * @param microseconds {@code "timestamp"."microseconds"}
 */
public record QmpEvent(String name, ObjectNode data, long seconds, long microseconds) {
    public QmpEvent {
        Objects.requireNonNull(name, "name");
    }

    /** When the server says the event happened. */
    public Instant timestamp() {
        return Instant.ofEpochSecond(seconds, microseconds * 1000);
    }

    /** {@code data.member} as a string, or null; for filters like {@code e.dataText("status")}. */
    public String dataText(String member) {
        JsonNode value = data == null ? null : data.get(member);
        return value == null || !value.isValueNode() ? null : value.asText();
    }

    /** Reads an event message ({@code {"event": ..., "data": ..., "timestamp": ...}}). */
    static QmpEvent fromJson(JsonNode message) {
        JsonNode data = message.get("data");
        JsonNode timestamp = message.path("timestamp");
        return new QmpEvent(message.get("event").asText(),
                data instanceof ObjectNode object ? object : null,
                timestamp.path("seconds").asLong(-1), timestamp.path("microseconds").asLong(-1));
    }
}
