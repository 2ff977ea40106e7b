package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** QmpClient against a real QmpServer (and two fake servers that misbehave). */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class QmpClientTest {
    private static final Duration WAIT = Duration.ofSeconds(10);

    @TempDir
    Path dir;
    private QmpServer server;

    @BeforeEach
    void start() throws IOException {
        AtomicReference<QmpServer> self = new AtomicReference<>();
        server = new QmpServer(dir.resolve("qmp.sock"), DummyCommands.VERSION, DummyCommands.create(self));
        self.set(server);
    }

    @AfterEach
    void stop() {
        server.close();
    }

    @Test
    void greetingIsExposed() throws IOException {
        try (QmpClient client = QmpClient.connect(server.socketPath(), WAIT)) {
            assertEquals(DummyCommands.VERSION, client.serverVersion());
            assertTrue(client.greeting().path("QMP").path("capabilities").isArray());
        }
    }

    @Test
    void executeReturnsTheReturnValue() throws IOException {
        try (QmpClient client = negotiated()) {
            JsonNode value = client.execute("echo", QmpWire.NODES.objectNode().put("a", 1));
            assertEquals(QmpWire.NODES.objectNode().put("a", 1), value);
            assertEquals(QmpWire.NODES.objectNode(), client.execute("declared"));
        }
    }

    @Test
    void errorsArriveAsQmpErrorWithClassAndDescription() throws IOException {
        try (QmpClient client = QmpClient.connect(server.socketPath(), WAIT)) {
            QmpError early = assertThrows(QmpError.class, () -> client.execute("echo"));
            assertEquals(QmpError.COMMAND_NOT_FOUND, early.errorClass());
            assertEquals("Expecting capabilities negotiation with 'qmp_capabilities'", early.desc());
            client.negotiate();
            QmpError refused = assertThrows(QmpError.class, () -> client.execute("refuse"));
            assertEquals(QmpError.DEVICE_NOT_FOUND, refused.errorClass());
            assertEquals("Device 'nic9' not found", refused.desc());
            QmpError again = assertThrows(QmpError.class, client::negotiate);
            assertEquals("Capabilities negotiation is already complete, command ignored", again.desc());
            assertTrue(client.isConnected());
        }
    }

    @Test
    void concurrentCallersGetTheirOwnReplies() throws Exception {
        try (QmpClient client = negotiated()) {
            List<CompletableFuture<Boolean>> calls = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                int thread = t;
                calls.add(CompletableFuture.supplyAsync(() -> {
                    try {
                        for (int i = 0; i < 50; i++) {
                            JsonNode back = client.execute("echo", QmpWire.NODES.objectNode().put("t", thread).put("i", i));
                            if (back.get("t").intValue() != thread || back.get("i").intValue() != i) {
                                return false;
                            }
                        }
                        return true;
                    } catch (IOException e) {
                        throw new RuntimeException(e);
                    }
                }));
            }
            for (CompletableFuture<Boolean> call : calls) {
                assertTrue(call.get());
            }
        }
    }

    @Test
    void serverDyingMidCallFailsEveryWaitingCallWithIOException() throws Exception {
        Path dying = dir.resolve("dying.sock");
        try (ServerSocketChannel listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            listener.bind(UnixDomainSocketAddress.of(dying));
            CompletableFuture<Void> fakeServer = CompletableFuture.runAsync(() -> {
                try (SocketChannel peer = listener.accept()) {
                    peer.write(ByteBuffer.wrap(QmpWire.encode(QmpWire.greeting(DummyCommands.VERSION))));
                    ByteBuffer requests = ByteBuffer.allocate(4096);
                    while (countOf('}', requests) < 2 && peer.read(requests) >= 0) {
                        // until both calls are in; then die without answering
                    }
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
            try (QmpClient client = QmpClient.connect(dying, WAIT)) {
                CompletableFuture<Throwable> other = CompletableFuture.supplyAsync(() -> {
                    try {
                        client.execute("migrate");
                        return null;
                    } catch (IOException | RuntimeException e) {
                        return e;
                    }
                });
                IOException e = assertThrows(IOException.class, () -> client.execute("query-status"));
                assertTrue(e.getMessage().contains(dying.toString()), e.getMessage());
                assertInstanceOf(IOException.class, other.get());
                assertFalse(client.isConnected());
                assertThrows(IOException.class, () -> client.execute("query-status"));
                assertThrows(IOException.class, () -> client.awaitEvent(ev -> true, WAIT));
            }
            fakeServer.get();
        }
    }

    @Test
    void awaitEventFindsAnEventThatArrivedEarlierAndConsumesIt() throws Exception {
        try (QmpClient client = negotiated()) {
            server.emit("EARLY", QmpWire.NODES.objectNode().put("status", "setup"));
            client.execute("echo"); // its reply follows the event, so the event is in by now
            QmpEvent event = client.awaitEvent(e -> e.name().equals("EARLY"), WAIT);
            assertEquals("setup", event.dataText("status"));
            assertTrue(event.seconds() > 1_600_000_000L);
            assertTrue(event.microseconds() >= 0 && event.microseconds() < 1_000_000);
            assertThrows(TimeoutException.class, () -> client.awaitEvent(e -> e.name().equals("EARLY"), Duration.ofMillis(50)));
        }
    }

    @Test
    void awaitEventWaitsForALaterEventAndSkipsOthers() throws Exception {
        try (QmpClient client = negotiated()) {
            Future<QmpEvent> waiting = CompletableFuture.supplyAsync(() -> {
                try {
                    return client.awaitEvent(e -> "completed".equals(e.dataText("status")), WAIT);
                } catch (IOException | TimeoutException e) {
                    throw new RuntimeException(e);
                }
            });
            server.emit("MIGRATION", QmpWire.NODES.objectNode().put("status", "active"));
            server.emit("MIGRATION", QmpWire.NODES.objectNode().put("status", "completed"));
            assertEquals("completed", waiting.get().dataText("status"));
            assertEquals("active", client.awaitEvent(e -> e.name().equals("MIGRATION"), WAIT).dataText("status"));
        }
    }

    @Test
    void listenersSeeEveryEventAndMayNotExecute() throws Exception {
        try (QmpClient client = negotiated()) {
            BlockingQueue<Object> seen = new LinkedBlockingQueue<>();
            client.onEvent(e -> {
                seen.add(e);
                try {
                    client.execute("echo");
                } catch (IOException | RuntimeException x) {
                    seen.add(x);
                }
            });
            server.emit("STOP", null);
            QmpEvent stop = (QmpEvent) seen.poll(10, TimeUnit.SECONDS);
            assertEquals("STOP", stop.name());
            assertNull(stop.data());
            assertInstanceOf(IllegalStateException.class, seen.poll(10, TimeUnit.SECONDS));
            assertEquals(QmpWire.NODES.objectNode(), client.execute("echo"));
        }
    }

    @Test
    void connectingWhereNothingListensFails() {
        assertThrows(IOException.class, () -> QmpClient.connect(dir.resolve("nobody.sock"), WAIT));
    }

    @Test
    void aServerThatNeverGreetsTimesOut() throws IOException {
        Path mute = dir.resolve("mute.sock");
        try (ServerSocketChannel listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            listener.bind(UnixDomainSocketAddress.of(mute));
            IOException e = assertThrows(IOException.class, () -> QmpClient.connect(mute, Duration.ofMillis(200)));
            assertTrue(e.getMessage().contains("no greeting"), e.getMessage());
        }
    }

    @Test
    void aPeerThatIsNotQmpIsRejected() throws Exception {
        Path other = dir.resolve("other.sock");
        try (ServerSocketChannel listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            listener.bind(UnixDomainSocketAddress.of(other));
            CompletableFuture<Void> talker = CompletableFuture.runAsync(() -> {
                try (SocketChannel peer = listener.accept()) {
                    peer.write(ByteBuffer.wrap("{\"hello\": 1}\r\n".getBytes(StandardCharsets.US_ASCII)));
                    peer.read(ByteBuffer.allocate(1));
                } catch (IOException ignored) {
                    // the client hangs up
                }
            });
            IOException e = assertThrows(IOException.class, () -> QmpClient.connect(other, WAIT));
            assertTrue(e.getMessage().contains("not a QMP server"), e.getMessage());
            talker.get(10, TimeUnit.SECONDS);
        }
    }

    private static int countOf(char c, ByteBuffer buffer) {
        int count = 0;
        for (int i = 0; i < buffer.position(); i++) {
            count += buffer.get(i) == c ? 1 : 0;
        }
        return count;
    }

    private QmpClient negotiated() throws IOException {
        QmpClient client = QmpClient.connect(server.socketPath(), WAIT);
        client.negotiate();
        return client;
    }
}
