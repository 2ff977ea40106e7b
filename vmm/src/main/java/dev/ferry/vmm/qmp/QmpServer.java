package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollEventLoopGroup;
import io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.netty.channel.unix.DomainSocketAddress;
import io.netty.util.concurrent.DefaultThreadFactory;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A QMP server on a UNIX socket, speaking QEMU's QMP (docs/interop/qmp-spec.txt) closely enough
 * that QEMU's own clients and users' scripts work unchanged: greeting, capabilities negotiation,
 * {@code execute}/{@code arguments}/{@code id} requests, replies and events byte-for-byte in QEMU's
 * format, QEMU's error classes and messages. Commands come from a {@link QmpCommands} registry;
 * the server itself implements {@code qmp_capabilities} and, unless registered,
 * {@code query-version} and {@code query-commands}. No capability (such as {@code oob}) is offered.
 *
 * <p>Several clients may be connected at once, each negotiating on its own; events go to every
 * client that has completed negotiation.
 *
 * <p>Threads:
 * <ul>
 *   <li>one Netty epoll event loop, daemon thread {@code ferry-qmp-io-*}: socket I/O and framing;</li>
 *   <li>one dispatcher, daemon thread {@code ferry-qmp}: every command of every client, one at a
 *       time (see {@link QmpHandler});</li>
 *   <li>{@link #emit} from any thread. Events one thread emits arrive in emission order; an event
 *       emitted before a command's reply was produced arrives before that reply (in particular one
 *       emitted by the handler itself), and no event precedes the reply to
 *       {@code qmp_capabilities}.</li>
 * </ul>
 *
 * <p>{@link #close()} stops accepting, drops requests that have not started, interrupts the
 * running handler and waits for it (up to {@value #HANDLER_STOP_WAIT_SECONDS} s) so that its reply
 * still goes out, then disconnects every client after the output already produced for it, stops
 * both threads and removes the socket file. So a {@code quit} handler that just signals the main
 * thread, which then closes the server, has its reply delivered. A handler may also call
 * {@code close()} itself: then {@code close()} returns at once and the close runs on a
 * {@code ferry-qmp-close} thread after that handler's reply is queued.
 */
public final class QmpServer implements AutoCloseable {
    /** Largest accepted request; QEMU's own limit is far larger, but no QMP request comes near this. */
    static final int MAX_REQUEST_BYTES = 1 << 20;
    private static final WriteBufferWaterMark OUTPUT_LIMITS = new WriteBufferWaterMark(1 << 20, 8 << 20);
    private static final int HANDLER_STOP_WAIT_SECONDS = 10;
    private static final Duration HANDLER_STOP_WAIT = Duration.ofSeconds(HANDLER_STOP_WAIT_SECONDS);
    private static final Logger LOG = LoggerFactory.getLogger(QmpServer.class);

    private final QmpSocketFile socketFile;
    private final Clock clock;
    private final byte[] greeting;
    private final QmpDispatcher dispatcher;
    private final EventLoopGroup group;
    private final Channel listener;
    private final Set<QmpConnection> connections = ConcurrentHashMap.newKeySet();
    private final Object outputLock = new Object();
    private final AtomicBoolean closed = new AtomicBoolean();

    /**
     * Listens on {@code socketPath} (created with mode 0600; a stale socket there is replaced, any
     * other file or a live socket refused) and serves {@code commands}.
     *
     * @param version what the greeting and {@code query-version} report
     * @throws IOException if the path cannot be used or epoll is unavailable (Linux only)
     */
    public QmpServer(Path socketPath, QmpVersion version, QmpCommands commands) throws IOException {
        this(socketPath, version, commands, Clock.systemUTC());
    }

    /** For tests: {@code clock} stamps events. */
    QmpServer(Path socketPath, QmpVersion version, QmpCommands commands, Clock clock) throws IOException {
        if (!Epoll.isAvailable()) {
            throw new IOException("the QMP server needs Netty's native epoll transport (Linux): "
                    + Epoll.unavailabilityCause());
        }
        this.clock = Objects.requireNonNull(clock, "clock");
        this.greeting = QmpWire.encode(QmpWire.greeting(version));
        this.socketFile = QmpSocketFile.prepare(socketPath);
        this.dispatcher = new QmpDispatcher(Objects.requireNonNull(commands, "commands"), version);
        this.group = new EpollEventLoopGroup(1, new DefaultThreadFactory("ferry-qmp-io", true));
        try {
            this.listener = listen();
            socketFile.publish();
        } catch (IOException | RuntimeException e) {
            releaseAfterFailedStart();
            throw e;
        }
        LOG.info("QMP server listening on {}", socketFile.target());
    }

    /** The socket path clients connect to (absolute). */
    public Path socketPath() {
        return socketFile.target();
    }

    /**
     * Sends {@code {"timestamp": ..., "event": name, "data": data}} to every client past
     * negotiation; {@code data} omitted when null. Any thread; never blocks on a client. A no-op
     * once the server is closed.
     */
    public void emit(String name, ObjectNode data) {
        Objects.requireNonNull(name, "name");
        if (closed.get()) {
            return;
        }
        byte[] event = QmpWire.encode(QmpWire.event(name, data, clock.instant()));
        synchronized (outputLock) {
            for (QmpConnection connection : connections) {
                if (connection.inCommandMode()) {
                    connection.sendEvent(event);
                }
            }
        }
    }

    /**
     * Encodes the events a migration emits inside the guest's pause (STOP, MIGRATION) enough times
     * for the JIT to compile the encoder: a fresh process otherwise spent 0.2-0.5 ms of its first
     * migration's downtime encoding STOP. For the VMM's start-up warm-up.
     */
    public static void warmUpEvents() {
        Instant now = Instant.now();
        ObjectNode status = com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.objectNode()
                .put("status", "device");
        for (int i = 0; i < 2000; i++) {
            QmpWire.encode(QmpWire.event("STOP", null, now));
            QmpWire.encode(QmpWire.event("MIGRATION", status, now));
        }
    }

    /** Closes the server; see the class comment. Idempotent. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        if (dispatcher.isDispatcherThread()) {
            dispatcher.afterCurrentCommand(() -> new Thread(this::shutdown, "ferry-qmp-close").start());
            return;
        }
        shutdown();
    }

    /** Connected clients; for tests. */
    int connectionCount() {
        return connections.size();
    }

    QmpDispatcher dispatcher() {
        return dispatcher;
    }

    byte[] greeting() {
        return greeting;
    }

    Object outputLock() {
        return outputLock;
    }

    /** Event loop: a client connected. */
    void attach(QmpConnection connection) {
        connections.add(connection);
        if (closed.get()) {
            connection.close();
        }
    }

    /** Event loop: a client went away. */
    void detach(QmpConnection connection) {
        connections.remove(connection);
    }

    private Channel listen() throws IOException {
        ServerBootstrap bootstrap = new ServerBootstrap()
                .group(group)
                .channel(EpollServerDomainSocketChannel.class)
                .childOption(ChannelOption.WRITE_BUFFER_WATER_MARK, OUTPUT_LIMITS)
                .childHandler(new ChannelInitializer<Channel>() {
                    @Override
                    protected void initChannel(Channel channel) {
                        channel.pipeline().addLast(new QmpJsonFramer(MAX_REQUEST_BYTES),
                                new QmpConnection(QmpServer.this));
                    }
                });
        ChannelFuture bound = bootstrap.bind(new DomainSocketAddress(socketFile.bindPath().toString()))
                .awaitUninterruptibly();
        if (!bound.isSuccess()) {
            throw new IOException("QMP socket " + socketFile.target() + ": bind failed: " + bound.cause().getMessage(),
                    bound.cause());
        }
        return bound.channel();
    }

    private void shutdown() {
        listener.close().awaitUninterruptibly();
        dispatcher.stop(HANDLER_STOP_WAIT); // the running command's reply is queued before this returns
        List<ChannelFuture> closing = connections.stream().map(QmpConnection::close).toList();
        closing.forEach(ChannelFuture::awaitUninterruptibly);
        group.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly();
        socketFile.remove();
        LOG.info("QMP server on {} closed", socketFile.target());
    }

    private void releaseAfterFailedStart() {
        dispatcher.stop(HANDLER_STOP_WAIT);
        group.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly();
        socketFile.remove();
    }
}
