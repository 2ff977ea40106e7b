package dev.ferry.migration.testing;

import dev.ferry.migration.transport.MigrationConnection;
import dev.ferry.migration.transport.MigrationListener;
import dev.ferry.migration.transport.MigrationTransports;

import java.io.IOException;
import java.nio.file.NoSuchFileException;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Supplier;

/**
 * {@link MigrationTransports} over {@link MemoryConnection}s, with the rules of the {@code file:}
 * transport: {@link #connect} creates (or replaces) an in-memory file that the source writes,
 * {@link #listen} opens a file to read and its listener accepts at once. So the real
 * {@code SourceMigration} and {@code DestinationMigration} run end to end without a socket: save
 * first, then load what was saved. {@link #serve} puts crafted bytes in a file for hostile-input
 * tests.
 *
 * <p>Connections the source opens never have a return path (a file). Connections the destination
 * accepts have one only when {@link #incomingReturnPath(boolean)} asked for it: then the
 * destination behaves as on a socket (it reads the trailing vmdesc and answers on the return path,
 * which {@link MemoryConnection#writtenBytes()} collects).
 *
 * <p>Thread-safe.
 */
public final class MemoryTransports implements MigrationTransports {
    /** The URI tests use when they need just one. */
    public static final String FILE_URI = "file:/memory/migration.qevm";

    private final Map<String, Supplier<byte[]>> files = new ConcurrentHashMap<>();
    private final List<MemoryConnection> connected = new CopyOnWriteArrayList<>();
    private final List<MemoryConnection> accepted = new CopyOnWriteArrayList<>();
    private volatile int chunkSize = 64 * 1024;
    private volatile boolean incomingReturnPath;

    /** Bytes per chunk the destination reads (default 64 KiB). */
    public MemoryTransports chunkSize(int bytes) {
        if (bytes < 1) {
            throw new IllegalArgumentException("chunk size must be at least 1, got " + bytes);
        }
        this.chunkSize = bytes;
        return this;
    }

    /** Whether accepted connections have a return path, like a socket (default false, like a file). */
    public MemoryTransports incomingReturnPath(boolean v) {
        this.incomingReturnPath = v;
        return this;
    }

    /** Puts {@code stream} into the file {@code uri}, replacing what was there. */
    public MemoryTransports serve(String uri, byte[] stream) {
        byte[] copy = stream.clone();
        files.put(uri, () -> copy);
        return this;
    }

    /** What the file {@code uri} holds now. */
    public byte[] contents(String uri) throws NoSuchFileException {
        Supplier<byte[]> f = files.get(uri);
        if (f == null) {
            throw new NoSuchFileException(uri);
        }
        return f.get();
    }

    @Override
    public void checkUri(String uri) {
        if (uri == null || uri.isEmpty()) {
            throw new IllegalArgumentException("empty migration URI");
        }
    }

    @Override
    public MigrationConnection connect(String uri) {
        MemoryConnection c = new MemoryConnection("memory-out:" + uri, new byte[0], chunkSize, false);
        files.put(uri, c::writtenBytes);
        connected.add(c);
        return c;
    }

    @Override
    public MigrationListener listen(String uri) throws IOException {
        Supplier<byte[]> f = files.get(uri);
        if (f == null) {
            throw new NoSuchFileException(uri, null, "no such in-memory migration file");
        }
        return new FileListener(uri, f);
    }

    /** Connections the source opened, oldest first. */
    public List<MemoryConnection> connected() {
        return List.copyOf(connected);
    }

    /** Connections the destination accepted, oldest first. */
    public List<MemoryConnection> accepted() {
        return List.copyOf(accepted);
    }

    public MemoryConnection lastAccepted() {
        if (accepted.isEmpty()) {
            throw new IllegalStateException("no connection was accepted");
        }
        return accepted.get(accepted.size() - 1);
    }

    /** A file opened for reading: accepts exactly once, at once. */
    private final class FileListener implements MigrationListener {
        private final String uri;
        private final Supplier<byte[]> file;
        private boolean acceptedOnce;
        private boolean closed;

        FileListener(String uri, Supplier<byte[]> file) {
            this.uri = uri;
            this.file = file;
        }

        @Override
        public synchronized MigrationConnection accept(Duration timeout) throws IOException {
            if (closed) {
                throw new IOException(uri + ": listener closed");
            }
            if (acceptedOnce) {
                throw new IOException(uri + ": a file is accepted once");
            }
            acceptedOnce = true;
            MemoryConnection c = new MemoryConnection("memory-in:" + uri, file.get(), chunkSize, incomingReturnPath);
            accepted.add(c);
            return c;
        }

        @Override
        public String boundUri() {
            return uri;
        }

        @Override
        public synchronized void close() {
            closed = true;
        }
    }
}
