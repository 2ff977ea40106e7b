package dev.ferry.vmm.qmp;

import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentSkipListMap;

/**
 * The commands a {@link QmpServer} offers, by QMP name.
 *
 * <p>{@code qmp_capabilities} belongs to the server and cannot be registered. The server also
 * answers {@code query-version} and {@code query-commands} unless they are registered here.
 *
 * <p>Thread-safe: commands may be registered before or after the server starts, from any thread;
 * a command registered later is visible to the next request.
 */
public final class QmpCommands {
    /** A registered command; {@code parameters} null when the handler checks its own arguments. */
    record Command(String name, Set<String> parameters, QmpHandler handler) {
    }

    private final ConcurrentSkipListMap<String, Command> commands = new ConcurrentSkipListMap<>();

    /**
     * Registers a command whose handler reads its arguments through {@link QmpArgs} and calls
     * {@link QmpArgs#checkNoOtherArguments()} itself.
     *
     * @throws IllegalArgumentException if the name is taken, reserved or malformed
     */
    public QmpCommands register(String name, QmpHandler handler) {
        return add(new Command(name, null, Objects.requireNonNull(handler, "handler")));
    }

    /**
     * Registers a command with its parameter names: the server refuses any other argument
     * ({@code Parameter 'foo' is unexpected}) before the handler runs.
     */
    public QmpCommands register(String name, Set<String> parameters, QmpHandler handler) {
        return add(new Command(name, Set.copyOf(parameters), Objects.requireNonNull(handler, "handler")));
    }

    /** Registered names, sorted; without the server's own commands. */
    public List<String> names() {
        return List.copyOf(commands.keySet());
    }

    Optional<Command> lookup(String name) {
        return Optional.ofNullable(commands.get(name));
    }

    private QmpCommands add(Command command) {
        String name = Objects.requireNonNull(command.name(), "name");
        if (name.isEmpty() || name.chars().anyMatch(c -> c <= ' ' || c > '~')) {
            throw new IllegalArgumentException("not a QMP command name: '" + name + "'");
        }
        if (name.equals(QmpDispatcher.CAPABILITIES)) {
            throw new IllegalArgumentException(name + " is implemented by the QMP server itself");
        }
        if (commands.putIfAbsent(name, command) != null) {
            throw new IllegalArgumentException("QMP command " + name + " is already registered");
        }
        return this;
    }
}
