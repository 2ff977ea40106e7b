package dev.ferry.migration.transport;

import java.io.IOException;
import java.time.Duration;

/** A bound destination endpoint that accepts the one incoming migration connection. */
public interface MigrationListener extends AutoCloseable {
    /** Blocks until the source connects, or throws on timeout or {@link #close()}. */
    MigrationConnection accept(Duration timeout) throws IOException;

    /** The concrete address bound, e.g. {@code "tcp:127.0.0.1:43817"} when port 0 was asked. */
    String boundUri();

    @Override
    void close();
}
