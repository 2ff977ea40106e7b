package dev.ferry.migration.transport;

import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelInitializer;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * A bound Netty server channel (TCP or UNIX) that hands out the first accepted connections, as
 * many as {@link #expectConnections} asked for (one by default; the main channel and the multifd
 * channels with multifd). Later connections are closed as soon as they arrive.
 *
 * <p>An accepted channel starts reading at once (bounded by its {@link ReceiveQueue}) and is held
 * as pending until {@link #accept} takes it; until then the listener owns it and closes it on
 * {@link #close()}. After {@link #accept} the caller owns the connection; closing the listener
 * then only closes the server channel.
 *
 * <p>Threads: the child initializer runs on the event loop; {@link #accept} blocks the destination's
 * incoming thread; {@link #close()} may be called from any thread. The monitor guards the
 * pending/accepted/closed state and is never held while waiting on Netty.
 */
final class NettyMigrationListener implements MigrationListener {
    private static final long CLOSE_WAIT_SECONDS = 10;

    private final Function<Channel, NettyMigrationConnection> attach;
    private final Runnable afterClose;
    private final dev.ferry.migration.tls.MigrationTls tls;
    private volatile Channel serverChannel;
    private volatile String boundUri;

    private final java.util.ArrayDeque<NettyMigrationConnection> pending = new java.util.ArrayDeque<>(); // guarded by this
    private int accepted; // guarded by this
    private int expected = 1; // guarded by this
    private int refused; // guarded by this
    private boolean closed; // guarded by this

    /**
     * @param requestedUri the URI as asked, reported until {@link #bound} gives the real one
     * @param attach       event loop: configures an accepted channel and wraps it as a connection
     * @param afterClose   runs once after the server channel closed (e.g. removes the socket file)
     * @param tls          when not null, {@link #accept} returns a connection only after its TLS
     *                     handshake and authz check passed
     */
    NettyMigrationListener(String requestedUri, Function<Channel, NettyMigrationConnection> attach, Runnable afterClose,
                           dev.ferry.migration.tls.MigrationTls tls) {
        this.boundUri = requestedUri;
        this.attach = attach;
        this.afterClose = afterClose;
        this.tls = tls;
    }

    /** The handler to install as the server bootstrap's child handler. */
    ChannelHandler childInitializer() {
        return new ChannelInitializer<>() {
            @Override
            protected void initChannel(Channel child) {
                offer(child);
            }
        };
    }

    /** Caller thread, once the server channel is bound. */
    void bound(Channel server, String actualUri) {
        this.serverChannel = server;
        this.boundUri = actualUri;
    }

    /** Event loop: keeps the first {@code expected} connections, closes every later one. */
    private void offer(Channel child) {
        synchronized (this) {
            if (!closed && accepted + pending.size() < expected) {
                pending.add(attach.apply(child));
                notifyAll();
                return;
            }
            refused++;
        }
        child.close();
    }

    @Override
    public synchronized int refusedConnections() {
        return refused;
    }

    @Override
    public synchronized void expectConnections(int n) {
        if (n < 1) {
            throw new IllegalArgumentException("expected connections must be at least 1, was " + n);
        }
        expected = n;
    }

    @Override
    public MigrationConnection accept(Duration timeout) throws IOException {
        NettyMigrationConnection c = acceptStream(timeout);
        if (tls != null) {
            try {
                tls.awaitHandshake(c.channel(), c.toString());
            } catch (IOException e) {
                c.close();
                throw e;
            }
        }
        return c;
    }

    private NettyMigrationConnection acceptStream(Duration timeout) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (this) {
            for (;;) {
                if (closed) {
                    throw new IOException(boundUri + ": listener closed while waiting for the migration connection");
                }
                if (!pending.isEmpty()) {
                    accepted++;
                    return pending.poll();
                }
                if (accepted >= expected) {
                    throw new IOException(boundUri + ": the migration connection was already accepted");
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new SocketTimeoutException("no migration connection on " + boundUri
                            + " within " + timeout.toMillis() + " ms; is the source migrating to this address?");
                }
                try {
                    TimeUnit.NANOSECONDS.timedWait(this, left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new InterruptedIOException(boundUri + ": interrupted while waiting for the migration connection");
                }
            }
        }
    }

    @Override
    public String boundUri() {
        return boundUri;
    }

    /** Any thread: closes the server channel and a connection nobody accepted; idempotent. */
    @Override
    public void close() {
        java.util.List<NettyMigrationConnection> orphans;
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            orphans = new java.util.ArrayList<>(pending);
            pending.clear();
            notifyAll();
        }
        orphans.forEach(NettyMigrationConnection::close);
        Channel server = serverChannel;
        if (server != null) {
            var closing = server.close();
            if (!server.eventLoop().inEventLoop()) {
                closing.awaitUninterruptibly(CLOSE_WAIT_SECONDS, TimeUnit.SECONDS);
            }
        }
        afterClose.run();
    }

    @Override
    public String toString() {
        return "NettyMigrationListener[" + boundUri + "]";
    }
}
