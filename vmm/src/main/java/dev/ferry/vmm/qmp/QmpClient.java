package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.function.Predicate;

/**
 * A blocking QMP client over a UNIX socket, for {@code ferry migrate}, {@code ferry demo} and
 * tests; it talks to a Ferry VMM or to QEMU alike.
 *
 * <p>{@link #connect} returns once the greeting has arrived; {@link #negotiate()} then leaves
 * capabilities-negotiation mode. {@link #execute} numbers each request ({@code "id"}: 1, 2, ...)
 * and waits for the reply with that id, so several threads may execute at once.
 *
 * <p>Threads: a daemon reader thread per client ({@code ferry-qmp-client-N}) reads every message,
 * completes the matching {@code execute} call and hands events to the listeners (on that thread:
 * keep listeners short, and never call {@code execute} from one; that would wait for a reply only
 * this thread could read, so it throws instead) and to a buffer of the last
 * {@value #RECENT_EVENTS} events for {@link #awaitEvent}. When the connection ends, for whatever
 * reason, every waiting and later call fails with an {@link IOException} saying so.
 */
public final class QmpClient implements AutoCloseable {
    static final int RECENT_EVENTS = 1024;
    private static final Logger LOG = LoggerFactory.getLogger(QmpClient.class);
    private static final AtomicInteger NUMBERS = new AtomicInteger();
    private static final Duration READER_STOP_WAIT = Duration.ofSeconds(5);

    private final Path socket;
    private final SocketChannel channel;
    private final Thread reader;
    private final CompletableFuture<JsonNode> greeting = new CompletableFuture<>();
    private final Map<Long, CompletableFuture<JsonNode>> pending = new ConcurrentHashMap<>();
    private final AtomicLong ids = new AtomicLong();
    private final Object writeLock = new Object();
    private final List<Consumer<QmpEvent>> listeners = new CopyOnWriteArrayList<>();
    private final QmpEventBuffer events = new QmpEventBuffer(RECENT_EVENTS);
    private volatile IOException failure; // set once the connection is gone
    private volatile boolean closing;

    private QmpClient(Path socket, SocketChannel channel) {
        this.socket = socket;
        this.channel = channel;
        this.reader = new Thread(this::readMessages, "ferry-qmp-client-" + NUMBERS.incrementAndGet());
        reader.setDaemon(true);
        reader.start();
    }

    /**
     * Connects and waits up to {@code timeout} for the server's greeting. Fails at once if nothing
     * listens on {@code socket}.
     */
    public static QmpClient connect(Path socket, Duration timeout) throws IOException {
        SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            channel.connect(UnixDomainSocketAddress.of(socket));
        } catch (IOException e) {
            channel.close();
            throw new IOException("QMP socket " + socket + ": cannot connect: " + e.getMessage(), e);
        }
        QmpClient client = new QmpClient(socket, channel);
        try {
            client.greeting.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
            return client;
        } catch (TimeoutException e) {
            client.close();
            throw new IOException("QMP socket " + socket + ": no greeting within " + timeout);
        } catch (ExecutionException e) {
            client.close();
            throw new IOException("QMP socket " + socket + ": " + e.getCause().getMessage(), e.getCause());
        } catch (InterruptedException e) {
            client.close();
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for the QMP greeting from " + socket);
        }
    }

    /** The greeting, {@code {"QMP": {"version": ..., "capabilities": [...]}}}. */
    public JsonNode greeting() {
        return greeting.join();
    }

    /** The server's version from the greeting. */
    public QmpVersion serverVersion() {
        return QmpVersion.fromJson(greeting().path("QMP").path("version"));
    }

    /** Sends {@code qmp_capabilities} (no capability enabled): the server enters command mode. */
    public void negotiate() throws IOException, QmpError {
        execute(QmpDispatcher.CAPABILITIES, null);
    }

    /** {@link #execute(String, ObjectNode)} without arguments. */
    public JsonNode execute(String command) throws IOException, QmpError {
        return execute(command, null);
    }

    /**
     * Runs {@code command} and waits for its reply, however long the command takes.
     *
     * @param args the {@code "arguments"} object; null to send none
     * @return the {@code "return"} value
     * @throws QmpError if the server answered with an error
     * @throws IOException if the connection is or goes down before the reply
     */
    public JsonNode execute(String command, ObjectNode args) throws IOException, QmpError {
        try {
            return call(command, args, null);
        } catch (TimeoutException e) {
            throw new IllegalStateException("no timeout was set", e);
        }
    }

    /** {@link #execute(String, ObjectNode)} waiting at most {@code timeout} for the reply. */
    public JsonNode execute(String command, ObjectNode args, Duration timeout)
            throws IOException, QmpError, TimeoutException {
        return call(command, args, Objects.requireNonNull(timeout, "timeout"));
    }

    /** Calls {@code listener} on the reader thread for every event from now on. */
    public void onEvent(Consumer<QmpEvent> listener) {
        listeners.add(Objects.requireNonNull(listener, "listener"));
    }

    public void removeEventListener(Consumer<QmpEvent> listener) {
        listeners.remove(listener);
    }

    /**
     * Returns the oldest received event matching {@code filter}, including one that arrived before
     * this call (from the last {@value #RECENT_EVENTS}), waiting up to {@code timeout} for one
     * otherwise. The event is consumed: a later call will not return it again. {@code filter} runs
     * under a lock; keep it a pure test of the event.
     *
     * @throws TimeoutException if none arrived in time
     * @throws IOException if the connection ended and no buffered event matches
     */
    public QmpEvent awaitEvent(Predicate<QmpEvent> filter, Duration timeout) throws IOException, TimeoutException {
        return events.await(filter, timeout);
    }

    /** False once the connection has ended (closed by either side, or failed). */
    public boolean isConnected() {
        return failure == null;
    }

    /** Closes the connection; calls still waiting fail with an IOException. Idempotent. */
    @Override
    public void close() {
        closing = true;
        try {
            channel.close();
        } catch (IOException e) {
            LOG.debug("QMP client for {}: close: {}", socket, e.toString());
        }
        if (Thread.currentThread() != reader) {
            try {
                reader.join(READER_STOP_WAIT.toMillis());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private JsonNode call(String command, ObjectNode args, Duration timeout)
            throws IOException, QmpError, TimeoutException {
        Objects.requireNonNull(command, "command");
        if (Thread.currentThread() == reader) {
            throw new IllegalStateException("QMP execute(" + command + ") from an event listener would wait forever");
        }
        long id = ids.incrementAndGet();
        ObjectNode request = QmpWire.NODES.objectNode().put("execute", command);
        if (args != null) {
            request.set("arguments", args);
        }
        request.put("id", id);
        CompletableFuture<JsonNode> reply = new CompletableFuture<>();
        pending.put(id, reply);
        try {
            IOException gone = failure;
            if (gone != null) {
                throw new IOException(gone.getMessage() + "; cannot execute " + command, gone);
            }
            send(QmpWire.encode(request), command);
            return result(timeout == null ? reply.get() : reply.get(timeout.toNanos(), TimeUnit.NANOSECONDS));
        } catch (ExecutionException e) {
            throw new IOException(e.getCause().getMessage() + " while executing " + command, e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while executing QMP command " + command);
        } catch (TimeoutException e) {
            throw new TimeoutException("no reply to QMP command " + command + " within " + timeout);
        } finally {
            pending.remove(id);
        }
    }

    private static JsonNode result(JsonNode reply) throws QmpError {
        JsonNode error = reply.get("error");
        if (error != null) {
            throw new QmpError(error.path("class").asText(QmpError.GENERIC_ERROR), error.path("desc").asText(""));
        }
        return reply.get("return");
    }

    private void send(byte[] message, String command) throws IOException {
        ByteBuffer buffer = ByteBuffer.wrap(message);
        synchronized (writeLock) {
            try {
                while (buffer.hasRemaining()) {
                    channel.write(buffer);
                }
            } catch (IOException e) {
                throw new IOException("QMP socket " + socket + ": sending " + command + " failed: " + e.getMessage(),
                        e);
            }
        }
    }

    /** Reader thread: every message until the connection ends. */
    private void readMessages() {
        IOException end;
        try (MappingIterator<JsonNode> messages =
                     QmpWire.JSON.readerFor(JsonNode.class).readValues(new ChannelInput())) {
            while (messages.hasNextValue()) {
                received(messages.nextValue());
            }
            end = new IOException("QMP server at " + socket + " closed the connection");
        } catch (IOException | RuntimeException e) {
            end = closing ? new IOException("QMP client for " + socket + " is closed")
                    : new IOException("QMP connection to " + socket + " failed: " + e.getMessage(), e);
        }
        IOException cause = end;
        failure = cause;
        greeting.completeExceptionally(cause);
        pending.values().forEach(reply -> reply.completeExceptionally(cause));
        events.fail(cause);
        try {
            channel.close();
        } catch (IOException e) {
            LOG.debug("QMP client for {}: close: {}", socket, e.toString());
        }
    }

    private void received(JsonNode message) {
        if (!greeting.isDone()) {
            if (message.has("QMP")) {
                greeting.complete(message);
            } else {
                greeting.completeExceptionally(new IOException("not a QMP server; it said " + message));
            }
        } else if (message.has("event")) {
            QmpEvent event = QmpEvent.fromJson(message);
            events.add(event);
            for (Consumer<QmpEvent> listener : listeners) {
                try {
                    listener.accept(event);
                } catch (RuntimeException e) {
                    LOG.warn("QMP event listener failed on {}", event.name(), e);
                }
            }
        } else if (message.has("return") || message.has("error")) {
            JsonNode id = message.get("id");
            CompletableFuture<JsonNode> reply =
                    id != null && id.isIntegralNumber() ? pending.get(id.longValue()) : null;
            if (reply != null) {
                reply.complete(message);
            } else {
                LOG.debug("QMP client for {}: dropping reply with unknown id: {}", socket, message);
            }
        } else {
            LOG.debug("QMP client for {}: ignoring message {}", socket, message);
        }
    }

    /** Blocking reads straight from the channel (Channels.newInputStream would lock out writers). */
    private final class ChannelInput extends InputStream {
        @Override
        public int read() throws IOException {
            byte[] one = new byte[1];
            return read(one, 0, 1) < 0 ? -1 : one[0] & 0xFF;
        }

        @Override
        public int read(byte[] bytes, int offset, int length) throws IOException {
            return length == 0 ? 0 : channel.read(ByteBuffer.wrap(bytes, offset, length));
        }
    }
}
