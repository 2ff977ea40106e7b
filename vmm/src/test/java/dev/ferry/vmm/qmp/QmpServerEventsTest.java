package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.EOFException;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Events: format, who receives them, and their order relative to each other and to replies. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class QmpServerEventsTest {
    private static final Clock CLOCK = Clock.fixed(Instant.ofEpochSecond(1_700_000_000L, 987_654_321), ZoneOffset.UTC);
    private static final String STAMP = "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 987654}, ";

    @TempDir
    Path dir;
    private QmpServer server;
    private final CountDownLatch handlerEntered = new CountDownLatch(1);
    private final CountDownLatch handlerMayReturn = new CountDownLatch(1);

    @BeforeEach
    void start() throws IOException {
        AtomicReference<QmpServer> self = new AtomicReference<>();
        QmpCommands commands = DummyCommands.create(self).register("wait-for-test", args -> {
            handlerEntered.countDown();
            try {
                handlerMayReturn.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return null;
        });
        server = new QmpServer(dir.resolve("qmp.sock"), DummyCommands.VERSION, commands, CLOCK);
        self.set(server);
    }

    @AfterEach
    void stop() {
        server.close();
    }

    @Test
    void eventHasQemuShapeWithAndWithoutData() throws IOException {
        try (RawQmpPeer peer = RawQmpPeer.negotiated(server.socketPath())) {
            server.emit("STOP", null);
            assertEquals(STAMP + "\"event\": \"STOP\"}", peer.readLine());
            server.emit("MIGRATION", QmpWire.NODES.objectNode().put("status", "active"));
            assertEquals(STAMP + "\"event\": \"MIGRATION\", \"data\": {\"status\": \"active\"}}", peer.readLine());
        }
    }

    @Test
    void eventsFromOneThreadArriveInOrder() throws IOException {
        try (RawQmpPeer peer = RawQmpPeer.negotiated(server.socketPath())) {
            for (int i = 0; i < 500; i++) {
                server.emit("SEQ", QmpWire.NODES.objectNode().put("n", i));
            }
            for (int i = 0; i < 500; i++) {
                assertEquals(STAMP + "\"event\": \"SEQ\", \"data\": {\"n\": " + i + "}}", peer.readLine());
            }
        }
    }

    @Test
    void noEventBeforeNegotiation() throws IOException {
        try (RawQmpPeer peer = RawQmpPeer.connect(server.socketPath())) {
            server.emit("EARLY", null);
            assertEquals("{\"return\": {}}", peer.call("{\"execute\": \"qmp_capabilities\"}"));
            server.emit("LATE", null);
            assertEquals(STAMP + "\"event\": \"LATE\"}", peer.readLine());
        }
    }

    @Test
    void noEventOvertakesTheNegotiationReply() throws Exception {
        AtomicBoolean emitting = new AtomicBoolean(true);
        CompletableFuture<Void> emitter = CompletableFuture.runAsync(() -> {
            while (emitting.get()) {
                server.emit("NOISE", null);
            }
        });
        try {
            for (int round = 0; round < 20; round++) {
                try (RawQmpPeer peer = RawQmpPeer.connect(server.socketPath())) {
                    assertEquals("{\"return\": {}}", peer.call("{\"execute\": \"qmp_capabilities\"}"));
                    assertEquals(STAMP + "\"event\": \"NOISE\"}", peer.readLine());
                }
            }
        } finally {
            emitting.set(false);
            emitter.get(30, TimeUnit.SECONDS);
        }
    }

    @Test
    void everyNegotiatedClientGetsEachEvent() throws IOException {
        try (RawQmpPeer a = RawQmpPeer.negotiated(server.socketPath());
             RawQmpPeer b = RawQmpPeer.negotiated(server.socketPath());
             RawQmpPeer notNegotiated = RawQmpPeer.connect(server.socketPath())) {
            server.emit("RESUME", null);
            assertEquals(STAMP + "\"event\": \"RESUME\"}", a.readLine());
            assertEquals(STAMP + "\"event\": \"RESUME\"}", b.readLine());
            assertEquals("{\"return\": {}}", notNegotiated.call("{\"execute\": \"qmp_capabilities\"}"));
        }
    }

    @Test
    void eventEmittedByAHandlerPrecedesItsReply() throws IOException {
        try (RawQmpPeer peer = RawQmpPeer.negotiated(server.socketPath())) {
            peer.send("{\"execute\": \"emit-then-return\", \"id\": 1}");
            assertEquals(STAMP + "\"event\": \"DURING\"}", peer.readLine());
            assertEquals("{\"return\": {\"done\": true}, \"id\": 1}", peer.readLine());
        }
    }

    @Test
    void eventEmittedElsewhereWhileACommandRunsPrecedesItsReply() throws Exception {
        try (RawQmpPeer peer = RawQmpPeer.negotiated(server.socketPath())) {
            peer.send("{\"execute\": \"wait-for-test\", \"id\": 1}");
            handlerEntered.await();
            server.emit("MEANWHILE", null);
            handlerMayReturn.countDown();
            assertEquals(STAMP + "\"event\": \"MEANWHILE\"}", peer.readLine());
            assertEquals("{\"return\": {}, \"id\": 1}", peer.readLine());
            server.emit("AFTER", null);
            assertEquals(STAMP + "\"event\": \"AFTER\"}", peer.readLine());
        }
    }

    @Test
    void aClientThatStopsReadingIsDisconnectedInsteadOfBuffered() throws IOException, InterruptedException {
        try (RawQmpPeer stuck = RawQmpPeer.negotiated(server.socketPath());
             RawQmpPeer other = RawQmpPeer.connect(server.socketPath())) {
            ObjectNode bulky = QmpWire.NODES.objectNode().put("pad", "p".repeat(4096));
            for (int i = 0; i < 8192 && server.connectionCount() == 2; i++) { // 32 MiB, four times the cap
                server.emit("BULK", bulky);
            }
            while (server.connectionCount() != 1) {
                Thread.sleep(1);
            }
            assertEquals("{\"return\": {}}", other.call("{\"execute\": \"qmp_capabilities\"}"));
            assertThrows(EOFException.class, () -> {
                while (true) { // what was sent before the cut, then the end
                    String line = stuck.readLine();
                    assertTrue(line.contains("\"event\": \"BULK\""), line);
                }
            });
        }
    }
}
