package dev.ferry.vmm.qmp;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Framing of QMP input, through Netty's EmbeddedChannel: frames come out as text, errors as "!desc". */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class QmpJsonFramerTest {
    private final EmbeddedChannel channel = new EmbeddedChannel(new QmpJsonFramer(64));

    @AfterEach
    void finish() {
        assertFalse(channel.finish(), "no frame may be left over");
    }

    @Test
    void concatenatedObjectsWithoutSeparatorsAreSeparateFrames() {
        assertEquals(List.of("{\"execute\":\"a\"}", "{\"execute\":\"b\"}", "[1,2]"),
                feed("{\"execute\":\"a\"}{\"execute\":\"b\"}\r\n  [1,2]\n"));
    }

    @Test
    void aFrameSplitAcrossWritesComesOutWhole() {
        String request = "{\"execute\": \"x\", \"arguments\": {\"a\": [1, {\"b\": 2}]}}";
        List<String> frames = new ArrayList<>();
        for (char c : request.toCharArray()) {
            frames.addAll(feed(String.valueOf(c)));
        }
        assertEquals(List.of(request), frames);
    }

    @Test
    void bracketsAndQuotesInsideStringsDoNotCount() {
        String tricky = "{\"s\": \"}]{[\\\"'\", 't': 'x\\'}\"'}";
        assertEquals(List.of(tricky), feed(tricky));
    }

    @Test
    void bareValuesAreFramesOfTheirOwn() {
        assertEquals(List.of("42", "\"a b\"", "true", "}", ":", "{}"), feed("42 \"a b\" true } :{}"));
    }

    @Test
    void controlCharacterDropsTheMessageInProgressAndFramingResumes() {
        List<String> out = feed("{\"execute\": \"a\u0001{\"execute\": \"b\"}");
        assertEquals(List.of("!JSON parse error, stray byte 0x01 inside a message; message discarded",
                "{\"execute\": \"b\"}"), out);
    }

    @Test
    void byte0xFFBetweenMessagesIsAnErrorOfItsOwn() {
        List<String> out = feed(new byte[] {(byte) 0xFF, '{', '}'});
        assertEquals(List.of("!JSON parse error, stray byte 0xFF", "{}"), out);
    }

    @Test
    void tabsAndLineEndsInsideAMessageAreNotResets() {
        assertEquals(List.of("{\t\"a\":\r\n1}"), feed("{\t\"a\":\r\n1}"));
    }

    @Test
    void overlongMessageIsRefusedOnceAndSkippedToItsEnd() {
        String big = "{\"a\": \"" + "x".repeat(100) + "}{[\"\"]}\"}";
        List<String> out = feed(big + "{\"next\": 1}");
        assertEquals(List.of("!JSON parse error, message longer than 64 bytes; message discarded", "{\"next\": 1}"), out);
    }

    @Test
    void overlongBareTokenIsRefusedAndSkipped() {
        List<String> out = feed("y".repeat(200) + " {}");
        assertEquals(List.of("!JSON parse error, message longer than 64 bytes; message discarded", "{}"), out);
    }

    @Test
    void incompleteMessageWaitsForMoreInput() {
        assertTrue(feed("{\"execute\": \"a\"").isEmpty());
        assertEquals(List.of("{\"execute\": \"a\"}"), feed("}"));
    }

    private List<String> feed(String text) {
        return feed(text.getBytes(StandardCharsets.UTF_8));
    }

    private List<String> feed(byte[] bytes) {
        channel.writeInbound(Unpooled.wrappedBuffer(bytes));
        List<String> out = new ArrayList<>();
        for (Object frame; (frame = channel.readInbound()) != null; ) {
            if (frame instanceof ByteBuf buf) {
                out.add(buf.toString(StandardCharsets.UTF_8));
                buf.release();
            } else {
                out.add("!" + ((QmpJsonFramer.InputError) frame).desc());
            }
        }
        return out;
    }
}
