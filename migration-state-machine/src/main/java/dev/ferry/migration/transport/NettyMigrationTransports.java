package dev.ferry.migration.transport;

import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.AdaptiveRecvByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelConfig;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.ServerChannel;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollDomainSocketChannel;
import io.netty.channel.epoll.EpollEventLoopGroup;
import io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.channel.unix.DomainSocketAddress;
import io.netty.util.concurrent.DefaultThreadFactory;

import dev.ferry.migration.tls.MigrationTls;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * {@link MigrationTransports} over Netty: TCP (epoll, or NIO where epoll is unavailable), UNIX
 * sockets (epoll only) and {@code file:} streams (a {@link java.nio.channels.FileChannel}).
 *
 * <p>Socket tuning, chosen for one stream carrying 2+ GB/s of 4 KiB pages on a small host:
 * <ul>
 *   <li>buffers come from {@link PooledByteBufAllocator#DEFAULT} (direct where the JVM allows,
 *       which HotSpot does) and are never copied on the way to or from the socket;</li>
 *   <li>outbound water marks {@value #WRITE_LOW_WATER} / {@value #WRITE_HIGH_WATER} bytes: a writer
 *       blocks above the high mark and resumes below the low one;</li>
 *   <li>inbound: reading pauses when more than {@value #RECEIVE_PAUSE_ABOVE} bytes wait for the
 *       consumer and resumes at {@value #RECEIVE_RESUME_BELOW}; reads fill adaptive chunks of
 *       {@value #RECEIVE_CHUNK_MIN} to {@value #RECEIVE_CHUNK_MAX} bytes;</li>
 *   <li>SO_SNDBUF / SO_RCVBUF {@value #SOCKET_BUFFER_BYTES} bytes (the kernel caps them at
 *       net.core.wmem_max / rmem_max), TCP_NODELAY on.</li>
 * </ul>
 *
 * <p>Threads: {@link #connect} and {@link #listen} block the calling thread (never call them on an
 * event loop); name resolution also happens on the caller. All channels share one event loop
 * group, created on first use with daemon threads named {@code ferry-migration-io-*}; this object
 * owns it and {@link #close()} shuts it down, which closes every channel still open.
 */
public final class NettyMigrationTransports implements MigrationTransports, AutoCloseable {
    static final int WRITE_LOW_WATER = 1 << 20;
    static final int WRITE_HIGH_WATER = 4 << 20;
    static final int RECEIVE_PAUSE_ABOVE = 8 << 20;
    static final int RECEIVE_RESUME_BELOW = RECEIVE_PAUSE_ABOVE / 2;
    static final int RECEIVE_CHUNK_MIN = 4 << 10;
    static final int RECEIVE_CHUNK_INITIAL = 64 << 10;
    static final int RECEIVE_CHUNK_MAX = 256 << 10;
    static final int SOCKET_BUFFER_BYTES = 4 << 20;
    private static final int CONNECT_TIMEOUT_MILLIS = 10_000;
    private static final int LISTEN_BACKLOG = 4;
    private static final int DEFAULT_IO_THREADS = 2;

    private static final ByteBufAllocator ALLOCATOR = PooledByteBufAllocator.DEFAULT;
    private static final WriteBufferWaterMark WATER_MARK = new WriteBufferWaterMark(WRITE_LOW_WATER, WRITE_HIGH_WATER);
    private static final AdaptiveRecvByteBufAllocator RECEIVE_CHUNKS =
            new AdaptiveRecvByteBufAllocator(RECEIVE_CHUNK_MIN, RECEIVE_CHUNK_INITIAL, RECEIVE_CHUNK_MAX);

    /**
     * Stream chunks whose memory stays faulted in between uses: enough for a receiver's queue at
     * its pause mark and a sender's writes up to the high water mark (16 MiB, 64 chunks).
     */
    private final WarmChunkAllocator chunks = new WarmChunkAllocator(64);
    private final int ioThreads;
    private final boolean epoll;
    private EventLoopGroup group; // guarded by this; created on first use
    private boolean closed; // guarded by this

    /** Two I/O threads; epoll when available. */
    public NettyMigrationTransports() {
        this(DEFAULT_IO_THREADS);
    }

    /** {@code ioThreads} event loops (1 is enough per connection); epoll when available. */
    public NettyMigrationTransports(int ioThreads) {
        this(ioThreads, Epoll.isAvailable());
    }

    /** For tests: {@code useEpoll = false} forces NIO (TCP only). */
    NettyMigrationTransports(int ioThreads, boolean useEpoll) {
        if (ioThreads < 1) {
            throw new IllegalArgumentException("ioThreads must be at least 1, was " + ioThreads);
        }
        if (useEpoll && !Epoll.isAvailable()) {
            throw new IllegalArgumentException("epoll is unavailable: " + Epoll.unavailabilityCause());
        }
        this.ioThreads = ioThreads;
        this.epoll = useEpoll;
    }

    /** Whether sockets use the native epoll transport (UNIX sockets need it). */
    public boolean usesEpoll() {
        return epoll;
    }

    @Override
    public void checkUri(String uri) {
        TransportUri.parse(uri);
    }

    @Override
    public MigrationConnection connect(String uri) throws IOException {
        return connect(uri, null);
    }

    @Override
    public MigrationListener listen(String uri) throws IOException {
        return listen(uri, null);
    }

    /**
     * These transports with TLS on every socket (QEMU's {@code tls-creds}): a view sharing this
     * object's event loops, closed with it. {@code file:} URIs are refused, as QEMU refuses TLS on
     * a stream that has no peer.
     */
    public MigrationTransports secured(MigrationTls tls) {
        java.util.Objects.requireNonNull(tls, "tls");
        return new MigrationTransports() {
            @Override
            public void checkUri(String uri) {
                if (TransportUri.parse(uri).scheme() == TransportUri.Scheme.FILE) {
                    throw new IllegalArgumentException(uri + ": TLS (tls-creds) needs a socket migration, not a file");
                }
            }

            @Override
            public MigrationConnection connect(String uri) throws IOException {
                checkUri(uri);
                return NettyMigrationTransports.this.connect(uri, tls);
            }

            @Override
            public MigrationListener listen(String uri) throws IOException {
                checkUri(uri);
                return NettyMigrationTransports.this.listen(uri, tls);
            }
        };
    }

    private MigrationConnection connect(String uri, MigrationTls tls) throws IOException {
        TransportUri target = TransportUri.parse(uri);
        ensureOpen();
        return switch (target.scheme()) {
            case TCP -> connectSocket(target, target.resolveTcp(false),
                    epoll ? EpollSocketChannel.class : NioSocketChannel.class, tls);
            case UNIX -> connectSocket(target, new DomainSocketAddress(target.path().toString()),
                    unixChannel(target, EpollDomainSocketChannel.class), tls);
            case FILE -> FileWriteConnection.create(target, ALLOCATOR);
        };
    }

    private MigrationListener listen(String uri, MigrationTls tls) throws IOException {
        TransportUri target = TransportUri.parse(uri);
        ensureOpen();
        return switch (target.scheme()) {
            case TCP -> listenSocket(target, target.resolveTcp(true),
                    epoll ? EpollServerSocketChannel.class : NioServerSocketChannel.class, null, tls);
            case UNIX -> {
                Class<? extends ServerChannel> type = unixChannel(target, EpollServerDomainSocketChannel.class);
                UnixSocketFile socketFile = UnixSocketFile.prepare(target.path(), target.text());
                yield listenSocket(target, new DomainSocketAddress(target.path().toString()), type, socketFile, tls);
            }
            case FILE -> FileMigrationListener.open(target, ALLOCATOR);
        };
    }

    /** The allocator of this transport's stream channels; for tests. */
    WarmChunkAllocator chunkAllocator() {
        return chunks;
    }

    /** Creates the event loops now rather than on the first connection (their fds and threads then stay put). */
    public void warmUp() {
        group();
    }

    /** Shuts the event loops down (closing any channel still open) and waits for them briefly. */
    @Override
    public void close() {
        EventLoopGroup toStop;
        synchronized (this) {
            closed = true;
            toStop = group;
            group = null;
        }
        if (toStop != null) {
            toStop.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(10, TimeUnit.SECONDS);
        }
        chunks.close();
    }

    private MigrationConnection connectSocket(TransportUri target, SocketAddress address,
                                              Class<? extends Channel> type, MigrationTls tls) throws IOException {
        AtomicReference<NettyMigrationConnection> attached = new AtomicReference<>();
        if (tls != null) {
            tls.checkClient(target.host()); // refuse before connecting: wrong endpoint, no hostname
        }
        Bootstrap bootstrap = new Bootstrap()
                .group(group())
                .channel(type)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, CONNECT_TIMEOUT_MILLIS)
                .handler(new ChannelInitializer<>() {
                    @Override
                    protected void initChannel(Channel ch) {
                        if (tls != null) {
                            MigrationTls.install(ch, tls.clientHandler(ch.alloc(), target.host(), target.port()));
                        }
                        attached.set(attachStream(ch, target.scheme(), target.text()));
                    }
                });
        ChannelFuture connecting = bootstrap.connect(address);
        try {
            connecting.await();
        } catch (InterruptedException e) {
            connecting.channel().close();
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while connecting to " + target.text());
        }
        if (!connecting.isSuccess()) {
            connecting.channel().close();
            Throwable cause = connecting.cause();
            throw new IOException("cannot connect to " + target.text() + ": " + reason(cause)
                    + "; is the destination listening (migrate-incoming)?", cause);
        }
        if (tls != null) {
            tls.awaitHandshake(connecting.channel(), target.text());
        }
        return attached.get();
    }

    private MigrationListener listenSocket(TransportUri target, SocketAddress address,
                                           Class<? extends ServerChannel> type, UnixSocketFile socketFile,
                                           MigrationTls tls) throws IOException {
        boolean tcp = target.scheme() == TransportUri.Scheme.TCP;
        NettyMigrationListener listener = new NettyMigrationListener(target.text(), child -> {
            if (tls != null) {
                MigrationTls.install(child, tls.serverHandler(child.alloc()));
            }
            return attachStream(child, target.scheme(), acceptedDescription(child, target));
        }, socketFile == null ? () -> { } : socketFile::remove, tls);
        ServerBootstrap bootstrap = new ServerBootstrap()
                .group(group())
                .channel(type)
                .option(ChannelOption.SO_BACKLOG, LISTEN_BACKLOG)
                .childHandler(listener.childInitializer());
        if (tcp) {
            // Accepted sockets inherit the listener's receive buffer, which sizes the window scale.
            bootstrap.option(ChannelOption.SO_REUSEADDR, true).option(ChannelOption.SO_RCVBUF, SOCKET_BUFFER_BYTES);
        }
        ChannelFuture binding = bootstrap.bind(address).awaitUninterruptibly();
        if (!binding.isSuccess()) {
            binding.channel().close().awaitUninterruptibly();
            throw new IOException("cannot listen on " + target.text() + ": " + reason(binding.cause()), binding.cause());
        }
        Channel server = binding.channel();
        String boundUri = tcp ? TransportUri.tcpUri((InetSocketAddress) server.localAddress()) : target.text();
        listener.bound(server, boundUri);
        if (socketFile != null) {
            try {
                socketFile.restrictToOwner();
            } catch (IOException e) {
                listener.close();
                throw e;
            }
        }
        return listener;
    }

    /** Event loop: applies the stream tuning and wraps the channel as a migration connection. */
    private NettyMigrationConnection attachStream(Channel ch, TransportUri.Scheme scheme, String description) {
        ChannelConfig config = ch.config();
        config.setAllocator(chunks);
        config.setWriteBufferWaterMark(WATER_MARK);
        config.setRecvByteBufAllocator(RECEIVE_CHUNKS);
        config.setOption(ChannelOption.SO_SNDBUF, SOCKET_BUFFER_BYTES);
        config.setOption(ChannelOption.SO_RCVBUF, SOCKET_BUFFER_BYTES);
        if (scheme == TransportUri.Scheme.TCP) {
            config.setOption(ChannelOption.TCP_NODELAY, true);
        }
        return NettyMigrationConnection.attach(ch, description, RECEIVE_PAUSE_ABOVE, RECEIVE_RESUME_BELOW);
    }

    private static String acceptedDescription(Channel child, TransportUri listening) {
        if (listening.scheme() == TransportUri.Scheme.TCP && child.remoteAddress() instanceof InetSocketAddress peer) {
            return TransportUri.tcpUri(peer);
        }
        return listening.text(); // a UNIX client is usually unnamed; the listening path says more
    }

    private <T extends Channel> Class<? extends T> unixChannel(TransportUri target, Class<? extends T> type)
            throws IOException {
        if (!epoll) {
            Throwable why = Epoll.unavailabilityCause();
            throw new IOException(target.text() + ": UNIX socket migration needs Netty's native epoll transport"
                    + " (Linux x86_64, netty-transport-native-epoll)"
                    + (why == null ? "; this instance was created without it" : ", which is unavailable: " + why));
        }
        return type;
    }

    private synchronized void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("migration transports are closed");
        }
    }

    private synchronized EventLoopGroup group() {
        ensureOpen();
        if (group == null) {
            DefaultThreadFactory threads = new DefaultThreadFactory("ferry-migration-io", true);
            group = epoll ? new EpollEventLoopGroup(ioThreads, threads) : new NioEventLoopGroup(ioThreads, threads);
        }
        return group;
    }

    /** Netty prefixes native errors with the syscall ("connect(..) failed: "); users need the errno text. */
    private static String reason(Throwable cause) {
        if (cause instanceof FileNotFoundException) {
            return "no such socket file"; // Netty's UNIX connect reports ENOENT this way, without a message
        }
        String message = cause.getMessage();
        if (message == null) {
            return cause.getClass().getSimpleName();
        }
        return message.replaceFirst("^\\w+\\(\\.\\.\\) failed: ", "");
    }
}
