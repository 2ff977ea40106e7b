package dev.ferry.migration.transport;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What users see when a URI is wrong or the other side is not there: the URI and the reason. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class TransportErrorsTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(strings = {"tcp:nohost", "foo:bar", "tcp:127.0.0.1:", "tcp:127.0.0.1:70000", "tcp:host:port",
            "nocolon", ":4444", "unix:", "file:", "tcp:::1:4444", "tcp:[::1]4444", "tcp:127.0.0.1:-1"})
    void malformedUrisAreRejectedNamingTheUri(String uri) {
        try (NettyMigrationTransports transports = new NettyMigrationTransports()) {
            IllegalArgumentException connect = assertThrows(IllegalArgumentException.class, () -> transports.connect(uri));
            assertTrue(connect.getMessage().contains("'" + uri + "'"), connect.getMessage());
            IllegalArgumentException listen = assertThrows(IllegalArgumentException.class, () -> transports.listen(uri));
            assertTrue(listen.getMessage().contains("'" + uri + "'"), listen.getMessage());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tcp::4444", "tcp:127.0.0.1:0"})
    void connectNeedsAHostAndAPort(String uri) {
        try (NettyMigrationTransports transports = new NettyMigrationTransports()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> transports.connect(uri));
            assertTrue(e.getMessage().contains(uri), e.getMessage());
        }
    }

    @Test
    void parsesQemuStyleUris() {
        TransportUri v6 = TransportUri.parse("tcp:[::1]:4444");
        assertEquals("::1", v6.host());
        assertEquals(4444, v6.port());
        TransportUri any = TransportUri.parse("tcp::0");
        assertEquals("", any.host());
        assertEquals(Path.of("/run/x.sock"), TransportUri.parse("unix:/run/x.sock").path());
        assertEquals(TransportUri.Scheme.FILE, TransportUri.parse("FILE:/tmp/a").scheme());
    }

    @Test
    void connectionRefusedNamesTheUri() throws IOException {
        try (NettyMigrationTransports transports = new NettyMigrationTransports()) {
            String uri;
            try (MigrationListener listener = transports.listen("tcp:127.0.0.1:0")) {
                uri = listener.boundUri(); // a port that was free a moment ago and is closed now
            }
            IOException e = assertThrows(IOException.class, () -> transports.connect(uri));
            assertTrue(e.getMessage().contains(uri), e.getMessage());
            assertTrue(e.getMessage().toLowerCase(Locale.ROOT).contains("refused"), e.getMessage());
        }
    }

    @Test
    void unixSocketThatDoesNotExistNamesTheUri() {
        try (NettyMigrationTransports transports = SocketKind.UNIX.transports()) {
            String uri = "unix:" + dir.resolve("nobody-listens.sock");
            IOException e = assertThrows(IOException.class, () -> transports.connect(uri));
            assertTrue(e.getMessage().startsWith("cannot connect to " + uri), e.getMessage());
        }
    }

    @Test
    void unresolvableHostNamesTheUri() {
        try (NettyMigrationTransports transports = new NettyMigrationTransports()) {
            String uri = "tcp:no-such-host.invalid:4444";
            IOException e = assertThrows(IOException.class, () -> transports.connect(uri));
            assertTrue(e.getMessage().contains(uri) && e.getMessage().contains("unknown host"), e.getMessage());
        }
    }

    @Test
    void portInUseNamesTheUri() throws IOException {
        try (NettyMigrationTransports transports = new NettyMigrationTransports();
             MigrationListener first = transports.listen("tcp:127.0.0.1:0")) {
            String uri = first.boundUri();
            IOException e = assertThrows(IOException.class, () -> transports.listen(uri));
            assertTrue(e.getMessage().startsWith("cannot listen on " + uri), e.getMessage());
        }
    }

    @Test
    void unixSocketsWithoutEpollSayWhy() {
        try (NettyMigrationTransports nio = SocketKind.TCP_NIO.transports()) {
            String uri = "unix:" + dir.resolve("s.sock");
            IOException e = assertThrows(IOException.class, () -> nio.listen(uri));
            assertTrue(e.getMessage().contains(uri) && e.getMessage().contains("epoll"), e.getMessage());
        }
    }

    @Test
    void closedTransportsRefuseNewChannels() {
        NettyMigrationTransports transports = new NettyMigrationTransports();
        transports.close();
        transports.close(); // idempotent
        assertThrows(IllegalStateException.class, () -> transports.listen("tcp:127.0.0.1:0"));
        assertThrows(IllegalStateException.class, () -> transports.connect("file:" + dir.resolve("f")));
    }
}
