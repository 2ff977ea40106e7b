package dev.ferry.migration;

import dev.ferry.core.migration.MigrationException;
import dev.ferry.migration.ram.MultifdReceive;
import dev.ferry.migration.ram.RamMigration;
import dev.ferry.migration.stream.ChannelLoadStream;
import dev.ferry.migration.stream.Qevm;
import dev.ferry.migration.transport.MigrationConnection;
import dev.ferry.migration.transport.MigrationListener;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * The destination's connections: the listener, the main channel it accepts (checked for QEVM's
 * magic) and, with multifd, the RAM channels told apart from it by their first bytes and handed
 * to {@link RamMigration#prepareMultifd}. It owns the listener and the main connection: it closes
 * them on abort and at the end of the load, and a multifd channel's failure closes the main
 * connection so that the incoming thread, blocked reading it, wakes and reports that cause.
 *
 * <p>Threads: the incoming thread accepts; {@link #closeListener} and {@link #closeConnection}
 * may come from any thread (abort, the machine closing); a multifd channel thread calls
 * {@link #multifdFailed}.
 */
final class IncomingChannels {
    /** How long, once the first connection is in, the multifd channels may take to connect. */
    static final long MULTIFD_CONNECT_MS = 10_000;
    private final MigrationListener listener;
    private final RamMigration ram;
    private final boolean multifd;
    private final int multifdChannels;
    private volatile MigrationConnection connection;
    private volatile long startNanos;
    /** The first multifd channel error (it closes the main connection to wake the incoming thread). */
    private volatile String multifdFailure;

    IncomingChannels(MigrationListener listener, RamMigration ram, boolean multifd, int multifdChannels) {
        this.listener = listener;
        this.ram = ram;
        this.multifd = multifd;
        this.multifdChannels = multifdChannels;
    }

    /**
     * Waits for the source and returns the main stream, its magic read and checked. Without
     * multifd the listener stays open (closing whatever else connects) until the load ends, so
     * that a source with multifd on meets a refusal this side can count and explain.
     */
    ChannelLoadStream accept() throws IOException, MigrationException {
        if (multifd) {
            try {
                return acceptWithMultifd();
            } finally {
                listener.close();
            }
        }
        return acceptOne();
    }

    /** The main connection once accepted (null before). */
    MigrationConnection connection() {
        return connection;
    }

    /** When the first connection came in (0 before): the migration's start on this side. */
    long startNanos() {
        return startNanos;
    }

    /** The first multifd channel's error, or null. */
    String multifdFailure() {
        return multifdFailure;
    }

    /** Connections the listener refused: more than one without multifd hints at a multifd source. */
    int refusedConnections() {
        return listener.refusedConnections();
    }

    void closeListener() {
        listener.close();
    }

    void closeConnection() {
        MigrationConnection c = connection;
        if (c != null) {
            c.close();
        }
    }

    private ChannelLoadStream acceptOne() throws IOException, MigrationException {
        MigrationConnection conn = listener.accept(Duration.ofDays(365));
        connection = conn;
        startNanos = System.nanoTime();
        ChannelLoadStream in = new ChannelLoadStream(conn);
        try {
            checkMagic(in.getBe32());
        } catch (IOException | MigrationException | RuntimeException e) {
            in.close();
            throw e;
        }
        return in;
    }

    /**
     * With multifd: accepts the main channel and {@code multifd-channels} RAM channels, told apart
     * by their first bytes (QEVM's magic or a multifd opening), in whatever order they come; the
     * RAM channels start with the RAM handler's load setup.
     */
    private ChannelLoadStream acceptWithMultifd() throws IOException, MigrationException {
        List<MultifdReceive.Incoming> channels = new ArrayList<>();
        ChannelLoadStream main = null;
        long deadline = 0;
        boolean handedOver = false;
        try {
            while (main == null || channels.size() < multifdChannels) {
                Duration wait = deadline == 0 ? Duration.ofDays(365)
                        : Duration.ofNanos(Math.max(1, deadline - System.nanoTime()));
                MigrationConnection c;
                try {
                    c = listener.accept(wait);
                } catch (java.net.SocketTimeoutException e) {
                    throw new MigrationException("multifd: " + channels.size() + " of " + multifdChannels
                            + " RAM channels and " + (main == null ? "no" : "the") + " main channel connected within "
                            + MULTIFD_CONNECT_MS + " ms; the multifd capability and multifd-channels must be the same"
                            + " at both ends");
                }
                if (deadline == 0) {
                    deadline = System.nanoTime() + MULTIFD_CONNECT_MS * 1_000_000;
                    startNanos = System.nanoTime();
                }
                ChannelLoadStream in = new ChannelLoadStream(c);
                int magic;
                try {
                    magic = in.getBe32();
                    if (MultifdReceive.isChannelMagic(magic)) {
                        var next = MultifdReceive.readOpening(c, in);
                        channels.add(next);
                        MultifdReceive.checkSet(channels.subList(0, channels.size() - 1), next, multifdChannels);
                        continue;
                    }
                    if (main != null) {
                        throw new MigrationException(String.format("a second main channel (magic 0x%08x) connected", magic));
                    }
                    checkMagic(magic);
                } catch (IOException | MigrationException | RuntimeException e) {
                    if (!channels.isEmpty() && channels.get(channels.size() - 1).connection() == c) {
                        channels.remove(channels.size() - 1).close();
                    } else {
                        in.close();
                        c.close();
                    }
                    throw e;
                }
                main = in;
                connection = c;
            }
            ram.prepareMultifd(channels, this::multifdFailed);
            handedOver = true;
            return main;
        } finally {
            if (!handedOver) {
                channels.forEach(MultifdReceive.Incoming::close);
                if (main != null) {
                    main.close();
                }
            }
        }
    }

    /** A channel thread: the first multifd error; the incoming thread wakes from its read and reports it. */
    private void multifdFailed(String why) {
        multifdFailure = why;
        MigrationConnection c = connection;
        if (c != null) {
            c.close();
        }
    }

    private static void checkMagic(int magic) throws MigrationException {
        if (magic != Qevm.FILE_MAGIC) {
            throw new MigrationException(String.format("not a migration stream: magic 0x%08x, expected 0x%08x (QEVM)",
                    magic, Qevm.FILE_MAGIC));
        }
    }
}
