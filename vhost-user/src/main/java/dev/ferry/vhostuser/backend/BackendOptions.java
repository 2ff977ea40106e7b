package dev.ferry.vhostuser.backend;

import java.nio.file.Path;
import java.util.EnumSet;
import java.util.Set;

/**
 * How a {@link VhostUserBackend} meets its front-end.
 *
 * @param socket         the UNIX socket path
 * @param client         false (server): listen at {@code socket} and accept one front-end at a
 *                       time; true (client): connect to a front-end listening there, retrying
 * @param faults         faults to commit (test aid for the vendor check; empty in production)
 * @param messageTimeoutMs the longest a started message may take to arrive whole
 */
public record BackendOptions(Path socket, boolean client, Set<BackendFaults> faults, long messageTimeoutMs) {
    public BackendOptions {
        faults = faults.isEmpty() ? BackendFaults.none() : EnumSet.copyOf(faults);
        if (messageTimeoutMs <= 0) {
            throw new IllegalArgumentException("message timeout must be positive, got " + messageTimeoutMs);
        }
    }

    /** Server mode at {@code socket}, no faults, 5 s per message. */
    public static BackendOptions server(Path socket) {
        return new BackendOptions(socket, false, BackendFaults.none(), 5_000);
    }

    /** Client mode: connects to a front-end listening at {@code socket}. */
    public static BackendOptions client(Path socket) {
        return new BackendOptions(socket, true, BackendFaults.none(), 5_000);
    }

    public BackendOptions withFaults(Set<BackendFaults> f) {
        return new BackendOptions(socket, client, f, messageTimeoutMs);
    }
}
