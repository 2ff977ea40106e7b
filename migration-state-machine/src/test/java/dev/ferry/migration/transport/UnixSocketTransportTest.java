package dev.ferry.migration.transport;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The socket file of a UNIX listener: who may connect, what it replaces, and cleanup. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class UnixSocketTransportTest {
    @TempDir
    Path dir;

    private Path socket;
    private String uri;

    @BeforeEach
    void paths() {
        socket = dir.resolve("incoming.sock");
        uri = "unix:" + socket;
    }

    @Test
    void socketFileIsOwnerOnlyAndRemovedOnClose() throws IOException {
        try (NettyMigrationTransports transports = SocketKind.UNIX.transports()) {
            MigrationListener listener = transports.listen(uri);
            assertTrue(UnixSocketFile.isSocket(socket));
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(socket)));
            assertEquals(uri, listener.boundUri());
            listener.close();
            assertFalse(Files.exists(socket, LinkOption.NOFOLLOW_LINKS), "socket file removed on close");
        }
    }

    @Test
    void socketFileIsRemovedEvenAfterAConnectionWasAccepted() throws IOException {
        try (NettyMigrationTransports transports = SocketKind.UNIX.transports()) {
            MigrationListener listener = transports.listen(uri);
            try (MigrationConnection source = transports.connect(uri);
                 MigrationConnection destination = listener.accept(Duration.ofSeconds(10))) {
                listener.close();
                assertFalse(Files.exists(socket, LinkOption.NOFOLLOW_LINKS));
                new StreamPattern(1).send(source, 10_000, 4096); // the accepted connection lives on
                new StreamPattern(1).receive(destination, 10_000);
            }
        }
    }

    @Test
    void refusesToReplaceARegularFile() throws IOException {
        Files.writeString(socket, "precious");
        try (NettyMigrationTransports transports = SocketKind.UNIX.transports()) {
            IOException e = assertThrows(IOException.class, () -> transports.listen(uri));
            assertTrue(e.getMessage().contains(uri) && e.getMessage().contains("not a socket"), e.getMessage());
        }
        assertEquals("precious", Files.readString(socket));
    }

    @Test
    void refusesToReplaceASymlink() throws IOException {
        Path target = dir.resolve("target");
        Files.writeString(target, "precious");
        Files.createSymbolicLink(socket, target);
        try (NettyMigrationTransports transports = SocketKind.UNIX.transports()) {
            assertThrows(IOException.class, () -> transports.listen(uri));
        }
        assertTrue(Files.isSymbolicLink(socket));
        assertEquals("precious", Files.readString(target));
    }

    @Test
    void replacesAStaleSocketButNotALiveOne() throws IOException {
        try (NettyMigrationTransports transports = SocketKind.UNIX.transports()) {
            try (ServerSocketChannel live = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
                live.bind(UnixDomainSocketAddress.of(socket));
                IOException e = assertThrows(IOException.class, () -> transports.listen(uri));
                assertTrue(e.getMessage().contains("another process is listening"), e.getMessage());
            } // closing a JDK UNIX server channel leaves its file behind: a stale socket
            assertTrue(Files.exists(socket, LinkOption.NOFOLLOW_LINKS));
            try (MigrationListener listener = transports.listen(uri);
                 MigrationConnection source = transports.connect(uri);
                 MigrationConnection destination = listener.accept(Duration.ofSeconds(10))) {
                new StreamPattern(2).send(source, 4096, 4096);
                new StreamPattern(2).receive(destination, 4096);
            }
        }
    }
}
