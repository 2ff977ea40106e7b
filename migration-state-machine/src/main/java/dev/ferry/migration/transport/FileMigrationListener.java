package dev.ferry.migration.transport;

import io.netty.buffer.ByteBufAllocator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.StandardOpenOption;
import java.time.Duration;

/**
 * The destination side of {@code file:PATH}: the file is opened when listening (so a missing or
 * unreadable file fails early) and {@link #accept} returns its reader at once, exactly once.
 *
 * <p>Threads: the destination's incoming thread; {@link #close} from any thread. The file belongs
 * to the listener until accepted, to the connection afterwards.
 */
final class FileMigrationListener implements MigrationListener {
    private static final Logger LOG = LoggerFactory.getLogger(FileMigrationListener.class);

    private final String uri;
    private FileReadConnection connection; // guarded by this; null once accepted or closed
    private boolean accepted; // guarded by this

    private FileMigrationListener(String uri, FileReadConnection connection) {
        this.uri = uri;
        this.connection = connection;
    }

    /** Caller thread: opens the existing file named by {@code target} for reading. */
    static FileMigrationListener open(TransportUri target, ByteBufAllocator alloc) throws IOException {
        FileChannel file;
        try {
            file = FileChannel.open(target.path(), StandardOpenOption.READ);
        } catch (IOException e) {
            throw new IOException("cannot open " + target.text() + " for reading: " + reason(e), e);
        }
        return new FileMigrationListener(target.text(), new FileReadConnection(file, target.text(), alloc));
    }

    /** Returns the reader at once; the timeout is irrelevant for a file. */
    @Override
    public synchronized MigrationConnection accept(Duration timeout) throws IOException {
        if (accepted) {
            throw new IOException(uri + ": the migration stream was already accepted");
        }
        if (connection == null) {
            throw new IOException(uri + ": listener closed");
        }
        accepted = true;
        FileReadConnection reader = connection;
        connection = null;
        return reader;
    }

    @Override
    public String boundUri() {
        return uri;
    }

    /** Closes the file unless it was accepted; idempotent. */
    @Override
    public void close() {
        FileReadConnection orphan;
        synchronized (this) {
            orphan = connection;
            connection = null;
        }
        if (orphan != null) {
            orphan.close();
        }
    }

    /** Shared by the file connections: the errno-like reason of a file error, for messages. */
    static String reason(IOException e) {
        if (e instanceof NoSuchFileException) {
            return "no such file or directory";
        }
        if (e instanceof AccessDeniedException) {
            return "permission denied";
        }
        if (e instanceof FileSystemException fse && fse.getReason() != null) {
            return fse.getReason();
        }
        return e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
    }

    /** Shared by the file connections: closes the file, logging (not throwing) a failure. */
    static void closeQuietly(FileChannel file, String description) {
        try {
            file.close();
        } catch (IOException e) {
            LOG.warn("{}: closing the file failed: {}", description, e.toString());
        }
    }
}
