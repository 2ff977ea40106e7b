package dev.ferry.migration.transport;

import io.netty.buffer.ByteBuf;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code file:PATH}: write-only on the source, read-only on the destination, no return path. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class FileTransportTest {
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;

    private NettyMigrationTransports transports;
    private Path file;
    private String uri;

    @BeforeAll
    static void paranoidLeakDetection() {
        LeakRecorder.enable();
    }

    @BeforeEach
    void open() {
        transports = new NettyMigrationTransports();
        file = dir.resolve("snapshot.qevm");
        uri = "file:" + file;
    }

    @AfterEach
    void close() throws InterruptedException {
        transports.close();
        LeakRecorder.assertNoLeaks();
    }

    @Test
    void roundTripsThroughTheFile() throws IOException {
        StreamPattern pattern = new StreamPattern(77);
        try (MigrationConnection source = transports.connect(uri)) {
            pattern.send(source, 64L * MIB + 5, 256 * 1024);
        }
        assertEquals(64L * MIB + 5, Files.size(file));
        try (MigrationListener listener = transports.listen(uri);
             MigrationConnection destination = listener.accept(Duration.ZERO)) {
            assertEquals(uri, listener.boundUri());
            assertEquals(64L * MIB + 5, pattern.receiveToEnd(destination));
            assertNull(destination.read(), "end of file stays end of file");
        }
    }

    @Test
    void chunksAreDirectBuffers() throws IOException {
        Files.write(file, new byte[FileReadConnection.CHUNK_BYTES + 1]);
        try (MigrationListener listener = transports.listen(uri);
             MigrationConnection destination = listener.accept(Duration.ZERO)) {
            ByteBuf first = destination.read();
            ByteBuf second = destination.read();
            try {
                assertTrue(first.isDirect());
                assertEquals(FileReadConnection.CHUNK_BYTES, first.readableBytes());
                assertEquals(1, second.readableBytes());
            } finally {
                first.release();
                second.release();
            }
            assertNull(destination.read());
        }
    }

    @Test
    void newFileIsOwnerOnlyAndExistingFileIsTruncated() throws IOException {
        try (MigrationConnection source = transports.connect(uri)) {
            new StreamPattern(1).send(source, 10_000, 4096);
        }
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(file)));
        try (MigrationConnection source = transports.connect(uri)) {
            new StreamPattern(1).send(source, 100, 100);
        }
        assertEquals(100, Files.size(file));
    }

    @Test
    void sourceSideHasNoReturnPath() throws IOException {
        try (MigrationConnection source = transports.connect(uri)) {
            assertFalse(source.hasReturnPath());
            assertEquals(uri, source.description());
            IOException e = assertThrows(IOException.class, source::read);
            assertTrue(e.getMessage().contains("no return path"), e.getMessage());
        }
    }

    @Test
    void destinationSideIsReadOnlyAndReleasesWhatIsWritten() throws IOException {
        Files.write(file, new byte[10]);
        try (MigrationListener listener = transports.listen(uri);
             MigrationConnection destination = listener.accept(Duration.ZERO)) {
            assertFalse(destination.hasReturnPath());
            ByteBuf buf = destination.alloc().directBuffer(8).writeLong(1);
            assertThrows(IOException.class, () -> destination.write(buf));
            assertEquals(0, buf.refCnt());
            assertThrows(IOException.class, destination::flush);
            assertThrows(IOException.class, destination::drain);
            IOException again = assertThrows(IOException.class, () -> listener.accept(Duration.ZERO));
            assertTrue(again.getMessage().contains("already accepted"), again.getMessage());
        }
    }

    @Test
    void writeAfterCloseThrowsAndReleasesTheBuffer() throws IOException {
        MigrationConnection source = transports.connect(uri);
        source.close();
        source.close(); // idempotent
        ByteBuf buf = source.alloc().directBuffer(8).writeLong(1);
        assertThrows(IOException.class, () -> source.write(buf));
        assertEquals(0, buf.refCnt());
        assertThrows(IOException.class, source::flush);
    }

    @Test
    void readAfterCloseThrows() throws IOException {
        Files.write(file, new byte[10]);
        MigrationListener listener = transports.listen(uri);
        MigrationConnection destination = listener.accept(Duration.ZERO);
        listener.close(); // the accepted reader is the caller's now
        destination.close();
        assertThrows(IOException.class, destination::read);
    }

    @Test
    void listeningOnAMissingFileNamesTheUri() {
        IOException e = assertThrows(IOException.class, () -> transports.listen(uri));
        assertTrue(e.getMessage().startsWith("cannot open " + uri), e.getMessage());
    }

    @Test
    void creatingInAMissingDirectoryNamesTheUri() {
        String missing = "file:" + dir.resolve("no/such/dir/x");
        IOException e = assertThrows(IOException.class, () -> transports.connect(missing));
        assertTrue(e.getMessage().startsWith("cannot create " + missing), e.getMessage());
    }
}
