package dev.ferry.migration.transport;

import java.io.IOException;
import java.time.Duration;

/**
 * A bound destination endpoint that accepts the incoming migration connections: one, or with
 * multifd the main channel and the RAM channels ({@link #expectConnections}).
 */
public interface MigrationListener extends AutoCloseable {
    /** Blocks until the source connects, or throws on timeout or {@link #close()}. */
    MigrationConnection accept(Duration timeout) throws IOException;

    /**
     * How many connections this listener hands out in all (1 unless raised, before the source
     * connects); any beyond are closed as they arrive. Transports with a single stream (files)
     * refuse more than one.
     */
    default void expectConnections(int n) throws IOException {
        if (n != 1) {
            throw new IOException(boundUri() + ": this transport carries one stream; multifd needs a socket (tcp: or unix:)");
        }
    }

    /** Connections closed on arrival because more came than {@link #expectConnections} allows. */
    default int refusedConnections() {
        return 0;
    }

    /** The concrete address bound, e.g. {@code "tcp:127.0.0.1:43817"} when port 0 was asked. */
    String boundUri();

    @Override
    void close();
}
