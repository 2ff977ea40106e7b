package dev.ferry.migration.transport;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;

/**
 * A source and destination connected over one socket kind, with the transports and listener
 * that made them; closing the pair closes all of it.
 */
final class ConnectedPair implements AutoCloseable {
    final NettyMigrationTransports transports;
    final MigrationListener listener;
    final NettyMigrationConnection source;
    final NettyMigrationConnection destination;

    private ConnectedPair(NettyMigrationTransports transports, MigrationListener listener,
                          NettyMigrationConnection source, NettyMigrationConnection destination) {
        this.transports = transports;
        this.listener = listener;
        this.source = source;
        this.destination = destination;
    }

    static ConnectedPair open(SocketKind kind, Path dir) throws IOException {
        NettyMigrationTransports transports = kind.transports();
        MigrationListener listener = null;
        MigrationConnection source = null;
        try {
            listener = transports.listen(kind.listenUri(dir));
            source = transports.connect(listener.boundUri());
            MigrationConnection destination = listener.accept(Duration.ofSeconds(10));
            return new ConnectedPair(transports, listener,
                    (NettyMigrationConnection) source, (NettyMigrationConnection) destination);
        } catch (IOException | RuntimeException e) {
            if (source != null) {
                source.close();
            }
            if (listener != null) {
                listener.close();
            }
            transports.close();
            throw e;
        }
    }

    @Override
    public void close() {
        source.close();
        destination.close();
        listener.close();
        transports.close();
    }
}
