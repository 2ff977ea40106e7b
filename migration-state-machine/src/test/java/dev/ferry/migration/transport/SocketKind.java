package dev.ferry.migration.transport;

import io.netty.channel.epoll.Epoll;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The socket transports the shared suite runs against. */
enum SocketKind {
    TCP_EPOLL, TCP_NIO, UNIX;

    /** A fresh transports instance for this kind; skips the test where epoll is needed but missing. */
    NettyMigrationTransports transports() {
        boolean epoll = this != TCP_NIO;
        assumeTrue(!epoll || Epoll.isAvailable(), () -> "epoll unavailable: " + Epoll.unavailabilityCause());
        return new NettyMigrationTransports(2, epoll);
    }

    /** Where to listen: loopback with a free port, or a socket in {@code dir}. */
    String listenUri(Path dir) {
        return this == UNIX ? "unix:" + dir.resolve("migration.sock") : "tcp:127.0.0.1:0";
    }
}
