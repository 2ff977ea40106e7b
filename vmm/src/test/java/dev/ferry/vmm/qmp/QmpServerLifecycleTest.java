package dev.ferry.vmm.qmp;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The socket file, closing, and what a server leaves behind (nothing). */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class QmpServerLifecycleTest {
    private static final Duration THREAD_EXIT_WAIT = Duration.ofSeconds(30);

    @TempDir
    Path dir;

    @Test
    void socketIsOwnerOnlyAndRemovedOnClose() throws IOException {
        Path socket = dir.resolve("qmp.sock");
        try (QmpServer server = server(socket)) {
            assertEquals(socket, server.socketPath());
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(socket, LinkOption.NOFOLLOW_LINKS)));
            assertEquals(0140000, (Integer) Files.getAttribute(socket, "unix:mode", LinkOption.NOFOLLOW_LINKS) & 0170000);
            try (Stream<Path> files = Files.list(dir)) {
                assertEquals(Set.of(socket), files.collect(Collectors.toSet()), "no private bind directory left");
            }
        }
        assertFalse(Files.exists(socket, LinkOption.NOFOLLOW_LINKS));
    }

    @Test
    void socketPathTooLongForPrivateBindingIsBoundInPlaceStillOwnerOnly() throws IOException {
        int room = 100 - dir.toAbsolutePath().toString().length() - "/x.sock".length();
        Path deep = Files.createDirectory(dir.resolve("d".repeat(Math.max(1, room))));
        Path socket = deep.resolve("x.sock");
        try (QmpServer server = server(socket); RawQmpPeer peer = RawQmpPeer.negotiated(socket)) {
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(socket)));
            assertEquals("{\"return\": {}}", peer.call("{\"execute\": \"echo\"}"));
        }
        assertFalse(Files.exists(socket, LinkOption.NOFOLLOW_LINKS));
    }

    @Test
    void staleSocketIsReplaced() throws IOException {
        Path socket = dir.resolve("qmp.sock");
        try (ServerSocketChannel dead = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            dead.bind(UnixDomainSocketAddress.of(socket));
        }
        assertTrue(Files.exists(socket), "the JDK leaves the socket file behind, like a crashed VMM");
        try (QmpServer server = server(socket); RawQmpPeer peer = RawQmpPeer.negotiated(socket)) {
            assertEquals("{\"return\": {}}", peer.call("{\"execute\": \"echo\"}"));
        }
    }

    @Test
    void regularFileDirectoryAndSymlinkAreNeverReplaced() throws IOException {
        Path file = Files.writeString(dir.resolve("notes.txt"), "keep me");
        assertThrows(FileAlreadyExistsException.class, () -> server(file));
        assertEquals("keep me", Files.readString(file));
        Path directory = Files.createDirectory(dir.resolve("adir"));
        assertThrows(FileAlreadyExistsException.class, () -> server(directory));
        assertTrue(Files.isDirectory(directory));
        Path link = Files.createSymbolicLink(dir.resolve("link"), file);
        assertThrows(FileAlreadyExistsException.class, () -> server(link));
        assertTrue(Files.isSymbolicLink(link));
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(3, files.count(), "no private bind directory left after refusals");
        }
    }

    @Test
    void socketOfARunningServerIsNotTakenOver() throws IOException {
        Path socket = dir.resolve("qmp.sock");
        try (QmpServer first = server(socket)) {
            FileAlreadyExistsException e = assertThrows(FileAlreadyExistsException.class, () -> server(socket));
            assertTrue(e.getMessage().contains("running process"), e.getMessage());
            try (RawQmpPeer peer = RawQmpPeer.negotiated(socket)) {
                assertEquals("{\"return\": {}}", peer.call("{\"execute\": \"echo\"}"));
            }
        }
    }

    @Test
    void closeDisconnectsClientsAndIsIdempotent() throws IOException {
        QmpServer server = server(dir.resolve("qmp.sock"));
        try (RawQmpPeer negotiated = RawQmpPeer.negotiated(server.socketPath());
             RawQmpPeer fresh = RawQmpPeer.connect(server.socketPath())) {
            server.close();
            server.close();
            assertTrue(negotiated.readsEof());
            assertTrue(fresh.readsEof());
            server.emit("IGNORED", null);
        }
    }

    @Test
    void handlerClosingTheServerStillGetsItsReplyOut() throws Exception {
        Set<Thread> before = ThreadsAndFds.qmpThreads();
        Path socket = dir.resolve("qmp.sock");
        QmpServer server = server(socket);
        try (RawQmpPeer peer = RawQmpPeer.negotiated(socket)) {
            assertEquals("{\"return\": {}, \"id\": \"bye\"}", peer.call("{\"execute\": \"quit\", \"id\": \"bye\"}"));
            assertTrue(peer.readsEof());
        }
        assertEquals(Set.of(), ThreadsAndFds.qmpThreadsLeftExcept(before, THREAD_EXIT_WAIT));
        assertFalse(Files.exists(socket, LinkOption.NOFOLLOW_LINKS));
        server.close();
    }

    @Test
    void closeLetsTheRunningCommandAnswerDropsQueuedOnesThenDisconnects() throws Exception {
        CountDownLatch running = new CountDownLatch(1);
        QmpCommands commands = new QmpCommands().register("block", args -> {
            running.countDown();
            try {
                new CountDownLatch(1).await();
                return null;
            } catch (InterruptedException e) {
                throw QmpError.generic("interrupted: the VMM is shutting down");
            }
        });
        QmpServer server = new QmpServer(dir.resolve("qmp.sock"), DummyCommands.VERSION, commands);
        try (RawQmpPeer first = RawQmpPeer.negotiated(server.socketPath());
             RawQmpPeer second = RawQmpPeer.negotiated(server.socketPath())) {
            first.send("{\"execute\": \"block\", \"id\": 1}");
            running.await();
            second.send("{\"execute\": \"block\", \"id\": 2}");
            while (server.dispatcher().queuedRequests() == 0) {
                Thread.sleep(1);
            }
            server.close();
            assertEquals("{\"id\": 1, \"error\": {\"class\": \"GenericError\", "
                    + "\"desc\": \"interrupted: the VMM is shutting down\"}}", first.readLine());
            assertTrue(first.readsEof());
            assertTrue(second.readsEof(), "a request that never started gets no reply");
        }
    }

    @Test
    void quitSignalledToTheMainThreadWhichClosesTheServerIsStillAnswered() throws Exception {
        for (int round = 0; round < 20; round++) {
            CountDownLatch quitRequested = new CountDownLatch(1);
            QmpCommands commands = new QmpCommands().register("quit", args -> {
                quitRequested.countDown();
                return null;
            });
            QmpServer server = new QmpServer(dir.resolve("qmp.sock"), DummyCommands.VERSION, commands);
            try (RawQmpPeer peer = RawQmpPeer.negotiated(server.socketPath())) {
                peer.send("{\"execute\": \"quit\"}");
                quitRequested.await();
                server.close(); // the "main thread", racing the dispatcher's reply
                assertEquals("{\"return\": {}}", peer.readLine());
                assertTrue(peer.readsEof());
            }
        }
    }

    @Test
    void noDescriptorOrThreadOutlivesServerAndClients() throws Exception {
        Path socket = dir.resolve("qmp.sock");
        Set<Thread> before = ThreadsAndFds.qmpThreads();
        round(socket);
        assertEquals(Set.of(), ThreadsAndFds.qmpThreadsLeftExcept(before, THREAD_EXIT_WAIT));
        long fds = ThreadsAndFds.openFds();
        round(socket);
        assertEquals(Set.of(), ThreadsAndFds.qmpThreadsLeftExcept(before, THREAD_EXIT_WAIT));
        assertEquals(fds, ThreadsAndFds.openFds(), "descriptors after a server with 20 clients came and went");
    }

    /** A server, 20 clients that each run commands and get an event, some closed before the server. */
    private static void round(Path socket) throws Exception {
        QmpClient[] clients = new QmpClient[20];
        try (QmpServer server = server(socket)) {
            for (int i = 0; i < clients.length; i++) {
                clients[i] = QmpClient.connect(socket, Duration.ofSeconds(10));
                clients[i].negotiate();
                clients[i].execute("echo", QmpWire.NODES.objectNode().put("i", i));
            }
            server.emit("PING", null);
            for (int i = 0; i < clients.length; i++) {
                clients[i].awaitEvent(e -> e.name().equals("PING"), Duration.ofSeconds(10));
                if (i % 2 == 0) {
                    clients[i].close();
                }
            }
        } finally {
            for (QmpClient client : clients) {
                if (client != null) {
                    client.close();
                }
            }
        }
    }

    private static QmpServer server(Path socket) throws IOException {
        AtomicReference<QmpServer> self = new AtomicReference<>();
        QmpServer server = new QmpServer(socket, DummyCommands.VERSION, DummyCommands.create(self));
        self.set(server);
        return server;
    }
}
