package dev.ferry.migration.transport;

import java.io.IOException;

/**
 * Opens migration channels from QEMU-style URIs: {@code tcp:HOST:PORT}, {@code unix:PATH},
 * {@code file:PATH}. Implemented over Netty (epoll) for sockets and a FileChannel for files.
 */
public interface MigrationTransports {
    /**
     * Checks that {@code uri} is one this transport understands, without opening anything, so a
     * malformed URI is refused when the migration is asked for, not later on its thread.
     *
     * @throws IllegalArgumentException naming the URI and what is wrong with it
     */
    void checkUri(String uri);

    /** Source side: connects to a listening destination (or creates the file to write). */
    MigrationConnection connect(String uri) throws IOException;

    /** Destination side: binds the endpoint (or opens the file to read, accepted at once). */
    MigrationListener listen(String uri) throws IOException;
}
