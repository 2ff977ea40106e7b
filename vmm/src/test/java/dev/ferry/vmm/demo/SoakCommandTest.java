package dev.ferry.vmm.demo;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.vmm.run.QapiJson;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The short soak CI runs (the documented one is {@code ferry soak --migrations 100}): a guest with
 * every device kind migrated back and forth, every hop verified, and from the warm-up hop on no
 * fd, thread, heap or direct-memory growth; and the verdict logic catching growth and divergence.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class SoakCommandTest {
    @Test
    void sixHopsVerifyAndNothingGrows() throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream old = System.out;
        int exit;
        try {
            System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
            exit = new CommandLine(new SoakCommand()).execute("--migrations", "6", "--json");
        } finally {
            System.setOut(old);
        }
        String out = buf.toString(StandardCharsets.UTF_8);
        JsonNode r = QapiJson.JSON.readTree(out.substring(out.indexOf('{')));
        assertEquals(6, r.path("hops").asInt(), out);
        for (JsonNode s : r.path("samples")) {
            assertTrue(s.path("divergence").isNull(), s.toString());
        }
        assertTrue(r.path("passed").asBoolean(), r.path("summary").asText());
        assertEquals(0, exit);
    }

    @Test
    void theVerdictCatchesGrowthAndDivergence() {
        List<SoakCommand.Sample> flat = List.of(sample(1, 40, 20), sample(2, 41, 25), sample(3, 41, 25),
                sample(4, 41, 25));
        assertTrue(SoakCommand.judge(flat, 4).passed(), SoakCommand.judge(flat, 4).summary());
        List<SoakCommand.Sample> leaking = List.of(sample(1, 40, 20), sample(2, 41, 25), sample(3, 42, 25),
                sample(4, 43, 25));
        SoakCommand.Verdict v = SoakCommand.judge(leaking, 4);
        assertFalse(v.passed());
        assertTrue(v.summary().contains("fds 41 -> 43"), v.summary());
        List<SoakCommand.Sample> diverged = List.of(sample(1, 40, 20), new SoakCommand.Sample(2, 40, 20, 0, 0, 1,
                "RAM at load differs"));
        assertFalse(SoakCommand.judge(diverged, 2).passed());
        assertFalse(SoakCommand.judge(flat.subList(0, 2), 4).passed(), "fewer hops than asked");
    }

    /** Netty's pool swings by whole chunks from hop to hop; only a rising ceiling is a leak. */
    @Test
    void directMemoryThatSwingsPassesAndDirectMemoryThatClimbsFails() {
        List<SoakCommand.Sample> swinging = new java.util.ArrayList<>();
        List<SoakCommand.Sample> climbing = new java.util.ArrayList<>();
        for (int hop = 1; hop <= 100; hop++) {
            long swing = (20L + 4 * ((hop * 7) % 5)) << 20; // 20..36 MiB in 4 MiB steps, no trend
            swinging.add(new SoakCommand.Sample(hop, 40, 25, 10L << 20, swing, 100, null));
            climbing.add(new SoakCommand.Sample(hop, 40, 25, 10L << 20, (20L << 20) + hop * (400L << 10), 100, null));
        }
        assertTrue(SoakCommand.judge(swinging, 100).passed(), SoakCommand.judge(swinging, 100).summary());
        SoakCommand.Verdict v = SoakCommand.judge(climbing, 100);
        assertFalse(v.passed(), "400 KiB more per hop is a leak: " + v.summary());
        assertTrue(v.summary().contains("direct"), v.summary());
    }

    private static SoakCommand.Sample sample(int hop, long fds, long threads) {
        return new SoakCommand.Sample(hop, fds, threads, 10L << 20, 20L << 20, 100, null);
    }
}
