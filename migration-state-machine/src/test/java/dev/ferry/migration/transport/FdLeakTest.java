package dev.ferry.migration.transport;

import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Every descriptor a connection or listener opens is closed with it. The transports instance and
 * one warm-up round come first, so the event loops' own descriptors (epoll, eventfd, timerfd) and
 * lazily opened JDK files are already counted.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class FdLeakTest {
    private static final Path FDS = Path.of("/proc/self/fd");
    private static final int ROUNDS = 20;

    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(SocketKind.class)
    void socketConnectionsAndListenersCloseTheirDescriptors(SocketKind kind) throws Exception {
        assumeTrue(Files.isDirectory(FDS), "needs /proc/self/fd");
        try (NettyMigrationTransports transports = kind.transports()) {
            socketRound(transports, kind);
            long before = openFds();
            for (int i = 0; i < ROUNDS; i++) {
                socketRound(transports, kind);
            }
            assertFdsBackTo(before);
        }
    }

    @ParameterizedTest
    @ValueSource(booleans = {true})
    void fileConnectionsCloseTheirDescriptors(boolean unused) throws Exception {
        assumeTrue(Files.isDirectory(FDS), "needs /proc/self/fd");
        try (NettyMigrationTransports transports = new NettyMigrationTransports()) {
            String uri = "file:" + dir.resolve("stream");
            fileRound(transports, uri);
            long before = openFds();
            for (int i = 0; i < ROUNDS; i++) {
                fileRound(transports, uri);
            }
            assertFdsBackTo(before);
        }
    }

    private void socketRound(NettyMigrationTransports transports, SocketKind kind) throws IOException {
        try (MigrationListener listener = transports.listen(kind.listenUri(dir))) {
            MigrationConnection source = transports.connect(listener.boundUri());
            try (MigrationConnection destination = listener.accept(Duration.ofSeconds(10))) {
                StreamPattern pattern = new StreamPattern(3);
                try {
                    pattern.send(source, 64 * 1024, 16 * 1024);
                } finally {
                    source.close();
                }
                assertEquals(64 * 1024, pattern.receiveToEnd(destination));
            }
        }
    }

    private static void fileRound(NettyMigrationTransports transports, String uri) throws IOException {
        StreamPattern pattern = new StreamPattern(4);
        try (MigrationConnection source = transports.connect(uri)) {
            pattern.send(source, 64 * 1024, 16 * 1024);
        }
        try (MigrationListener listener = transports.listen(uri);
             MigrationConnection destination = listener.accept(Duration.ZERO)) {
            assertEquals(64 * 1024, pattern.receiveToEnd(destination));
        }
        transports.listen(uri).close(); // a listener nobody accepted from closes its file too
    }

    /** Closing is synchronous, but allow the event loop a moment for anything it closes on its own. */
    private static void assertFdsBackTo(long before) throws Exception {
        long after = openFds();
        for (int wait = 0; wait < 100 && after > before; wait++) {
            Thread.sleep(20);
            after = openFds();
        }
        assertTrue(after <= before, "descriptors leaked: " + before + " open before, " + after + " after");
    }

    private static long openFds() throws IOException {
        try (Stream<Path> fds = Files.list(FDS)) {
            return fds.count();
        }
    }
}
