package dev.ferry.vmm.qmp;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

import java.io.EOFException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Fuzz target: the QMP server — framer, JSON parser, negotiation, dispatcher and argument checks —
 * over a real UNIX socket. Each input is one client session: optionally negotiated, then the
 * fuzzed bytes, then end of input. Every line the server writes must be CRLF-terminated JSON in
 * QMP's shapes ({@code return}, {@code error} with class and a printable desc, {@code event});
 * the session must end within 5 s; and afterwards a fresh client must still be served. One
 * server for the whole run, with the test registry minus the commands that end it.
 */
class QmpFuzzTest {
    static {
        // The registry's "crash" handler logs a stack trace per call; keep the build log readable.
        System.setProperty("org.slf4j.simpleLogger.log.dev.ferry.vmm.qmp", "off");
    }

    private static Path dir;
    private static QmpServer server;
    private static final ScheduledExecutorService WATCHDOG = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "qmp-fuzz-watchdog");
        t.setDaemon(true);
        return t;
    });

    @BeforeAll
    static void start() throws IOException {
        dir = Files.createTempDirectory("qmp-fuzz");
        QmpCommands commands = new QmpCommands()
                .register("echo", QmpArgs::json)
                .register("typed", DummyCommands::typed)
                .register("declared", Set.of("a", "b"), args -> null)
                .register("refuse", args -> {
                    throw QmpError.deviceNotFound("Device 'nic9' not found");
                })
                .register("crash", args -> {
                    throw new IllegalStateException("boom: handler bug");
                });
        server = new QmpServer(dir.resolve("qmp.sock"), DummyCommands.VERSION, commands);
    }

    @AfterAll
    static void stop() throws IOException {
        server.close();
        Files.deleteIfExists(dir.resolve("qmp.sock"));
        Files.deleteIfExists(dir);
    }

    @FuzzTest(maxDuration = "30s")
    void serverAnswersEverySession(FuzzedDataProvider data) throws IOException {
        boolean negotiate = data.consumeBoolean();
        byte[] input = data.consumeRemainingAsBytes();
        RawQmpPeer peer = negotiate ? RawQmpPeer.negotiated(dir.resolve("qmp.sock")) : RawQmpPeer.connect(dir.resolve("qmp.sock"));
        ScheduledFuture<?> hang = WATCHDOG.schedule(() -> {
            try {
                peer.close();
            } catch (IOException e) {
                // the read below fails either way
            }
        }, 5, TimeUnit.SECONDS);
        long start = System.nanoTime();
        try (peer) {
            peer.send(input);
            peer.shutdownOutput();
            while (true) {
                String line;
                try {
                    line = peer.readLine();
                } catch (EOFException e) {
                    break;
                } catch (IOException e) {
                    fail("the session did not end within 5 s of its last byte (" + e + ")");
                    return;
                }
                assertQmpShape(line);
            }
        } finally {
            hang.cancel(false);
        }
        assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(5), "the session took over 5 s");
        try (RawQmpPeer after = RawQmpPeer.negotiated(dir.resolve("qmp.sock"))) {
            assertEquals("{\"return\": {\"x\": 1}}", after.call("{\"execute\": \"echo\", \"arguments\": {\"x\": 1}}"),
                    "the server serves a fresh client after the session");
        }
    }

    private static void assertQmpShape(String line) throws IOException {
        for (int i = 0; i < line.length(); i++) {
            char c = line.charAt(i);
            assertTrue(c >= 0x20 && c < 0x7f, () -> "a non-printable or non-ASCII byte in QMP output: " + line);
        }
        JsonNode n = QmpWire.JSON.readTree(line);
        assertTrue(n.isObject(), line);
        if (n.has("error")) {
            JsonNode e = n.get("error");
            assertTrue(e.path("class").isTextual() && e.path("desc").isTextual() && !e.path("desc").asText().isBlank(),
                    () -> "an error without class and desc: " + line);
        } else {
            assertTrue(n.has("return") || n.has("event"), () -> "neither return, error nor event: " + line);
        }
    }
}
