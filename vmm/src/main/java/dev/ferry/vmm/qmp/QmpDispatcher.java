package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * Runs every QMP request of every client, one at a time and in arrival order, on one thread named
 * {@value #THREAD_NAME}, as QEMU runs them on its main loop; a blocking handler therefore never
 * stalls Netty's event loop, and handlers never run concurrently. Input errors travel the same
 * queue, so each client's replies leave in the order of its requests.
 *
 * <p>What happens to a request, mirroring QEMU's {@code qmp_dispatch()} and monitor:
 * <ol>
 *   <li>input that did not parse, or is not an object: GenericError, no {@code "id"};</li>
 *   <li>request members checked ({@code execute} a string, {@code arguments} an object, nothing
 *       else but {@code id}): GenericError, {@code "id"} echoed from here on;</li>
 *   <li>before negotiation only {@code qmp_capabilities} exists; any other name gets
 *       CommandNotFound "Expecting capabilities negotiation with 'qmp_capabilities'";</li>
 *   <li>after it, {@code qmp_capabilities} gets CommandNotFound "Capabilities negotiation is
 *       already complete, command ignored" and an unknown name "The command NAME has not been
 *       found";</li>
 *   <li>the handler runs; its value is the {@code "return"}, its QmpError the {@code "error"}, and
 *       any other exception a logged GenericError.</li>
 * </ol>
 * A request from a client that has disconnected by the time its turn comes is dropped unrun.
 */
final class QmpDispatcher {
    static final String THREAD_NAME = "ferry-qmp";
    static final String CAPABILITIES = "qmp_capabilities";
    private static final String QUERY_VERSION = "query-version";
    private static final String QUERY_COMMANDS = "query-commands";
    private static final Set<String> KNOWN_CAPABILITIES = Set.of("oob"); // QEMU's QMPCapability enum
    private static final Logger LOG = LoggerFactory.getLogger(QmpDispatcher.class);

    private record Outcome(ObjectNode reply, boolean negotiated) {
    }

    private final QmpCommands commands;
    private final QmpVersion version;
    private final ThreadPoolExecutor executor;
    private final List<Runnable> afterCurrent = new ArrayList<>(); // dispatcher thread only
    private volatile Thread thread;

    QmpDispatcher(QmpCommands commands, QmpVersion version) {
        this.commands = commands;
        this.version = version;
        this.executor = new ThreadPoolExecutor(1, 1, 0, TimeUnit.MILLISECONDS, new LinkedBlockingQueue<>(), task -> {
            Thread t = new Thread(task, THREAD_NAME);
            t.setDaemon(true);
            thread = t;
            return t;
        });
    }

    /** Event loop: queues a parsed request (a JsonNode) or an {@link QmpJsonFramer.InputError}. */
    void submit(QmpConnection client, Object request) {
        try {
            executor.execute(() -> run(client, request));
        } catch (RejectedExecutionException e) {
            client.requestDone(); // the server is closing; the request is dropped with the connection
        }
    }

    boolean isDispatcherThread() {
        return Thread.currentThread() == thread;
    }

    /** Dispatcher thread: runs {@code action} once the current command has been answered. */
    void afterCurrentCommand(Runnable action) {
        if (!isDispatcherThread()) {
            throw new IllegalStateException("not on the " + THREAD_NAME + " thread");
        }
        afterCurrent.add(action);
    }

    /** Requests waiting for their turn (not counting the one running); for tests. */
    int queuedRequests() {
        return executor.getQueue().size();
    }

    /**
     * Drops queued requests, interrupts the running handler and waits up to {@code wait} for the
     * thread to end. Never call on the dispatcher thread.
     */
    void stop(Duration wait) {
        executor.shutdownNow();
        try {
            if (!executor.awaitTermination(wait.toMillis(), TimeUnit.MILLISECONDS)) {
                LOG.warn("QMP command handler did not return within {} after an interrupt; "
                        + "leaving the {} thread behind", wait, THREAD_NAME);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void run(QmpConnection client, Object request) {
        try {
            if (!client.isOpen() || Thread.currentThread().isInterrupted()) {
                return;
            }
            Outcome outcome = dispatch(client, request);
            byte[] reply = QmpWire.encode(outcome.reply());
            if (outcome.negotiated()) {
                client.enterCommandMode(reply);
            } else {
                client.send(reply);
            }
        } catch (RuntimeException e) {
            LOG.error("{}: QMP request could not be answered", client, e);
        } finally {
            client.requestDone();
            List<Runnable> actions = List.copyOf(afterCurrent);
            afterCurrent.clear();
            actions.forEach(Runnable::run);
        }
    }

    private Outcome dispatch(QmpConnection client, Object request) {
        if (request instanceof QmpJsonFramer.InputError error) {
            return failed(QmpError.generic(error.desc()), null);
        }
        if (!(request instanceof ObjectNode message)) {
            return failed(QmpError.generic("QMP input must be a JSON object"), null);
        }
        JsonNode id = message.get("id");
        try {
            String name = commandName(message);
            QmpArgs args = QmpArgs.of((ObjectNode) message.get("arguments"));
            if (name.equals(CAPABILITIES)) {
                negotiate(args, client.inCommandMode());
                return new Outcome(QmpWire.success(null, id), true);
            }
            if (!client.inCommandMode()) {
                throw QmpError.commandNotFound("Expecting capabilities negotiation with '" + CAPABILITIES + "'");
            }
            return new Outcome(QmpWire.success(execute(name, args), id), false);
        } catch (QmpError e) {
            return failed(e, id);
        }
    }

    /** QEMU's request checks, first offending member first; returns the command name. */
    private static String commandName(ObjectNode message) throws QmpError {
        String name = null;
        for (Iterator<Map.Entry<String, JsonNode>> members = message.fields(); members.hasNext(); ) {
            Map.Entry<String, JsonNode> member = members.next();
            switch (member.getKey()) {
                case "execute" -> {
                    if (!member.getValue().isTextual()) {
                        throw QmpError.generic("QMP input member 'execute' must be a string");
                    }
                    name = member.getValue().textValue();
                }
                case "arguments" -> {
                    if (!member.getValue().isObject()) {
                        throw QmpError.generic("QMP input member 'arguments' must be an object");
                    }
                }
                case "id" -> {
                }
                default -> throw QmpError.generic("QMP input member '%s' is unexpected", member.getKey());
            }
        }
        if (name == null) {
            throw QmpError.generic("QMP input lacks member 'execute'");
        }
        return name;
    }

    /** {@code qmp_capabilities}: arguments first, as QEMU's visitor checks them before the command. */
    private static void negotiate(QmpArgs args, boolean alreadyNegotiated) throws QmpError {
        List<String> enable = args.optionalStringList("enable");
        for (int i = 0; i < enable.size(); i++) {
            if (!KNOWN_CAPABILITIES.contains(enable.get(i))) {
                throw QmpError.generic("Parameter 'enable[%d]' does not accept value '%s'", i, enable.get(i));
            }
        }
        args.checkNoOtherArguments();
        if (alreadyNegotiated) {
            throw QmpError.commandNotFound("Capabilities negotiation is already complete, command ignored");
        }
        if (!enable.isEmpty()) {
            // Ferry offers no capability; QEMU lists every unavailable one it was asked for.
            throw QmpError.generic("Capability %s not available", String.join(", ", enable));
        }
    }

    private JsonNode execute(String name, QmpArgs args) throws QmpError {
        QmpCommands.Command command = commands.lookup(name).orElse(null);
        if (command == null) {
            return builtin(name, args);
        }
        if (command.parameters() != null) {
            args.checkDeclared(command.parameters());
        }
        try {
            return command.handler().handle(args);
        } catch (QmpError e) {
            throw e;
        } catch (Exception | Error e) {
            LOG.warn("QMP command {} failed", name, e);
            throw QmpError.generic(e.getMessage() != null ? e.getMessage() : e.getClass().getName());
        }
    }

    private JsonNode builtin(String name, QmpArgs args) throws QmpError {
        switch (name) {
            case QUERY_VERSION -> {
                args.checkNoOtherArguments();
                return version.toJson();
            }
            case QUERY_COMMANDS -> {
                args.checkNoOtherArguments();
                Set<String> names = new TreeSet<>(commands.names());
                names.addAll(List.of(CAPABILITIES, QUERY_VERSION, QUERY_COMMANDS));
                ArrayNode list = QmpWire.NODES.arrayNode();
                names.forEach(n -> list.addObject().put("name", n));
                return list;
            }
            default -> throw QmpError.commandNotFound("The command " + name + " has not been found");
        }
    }

    private static Outcome failed(QmpError error, JsonNode id) {
        return new Outcome(QmpWire.failure(error, id), false);
    }
}
