package dev.ferry.vhostuser.backend;

import java.util.Arrays;
import java.util.EnumSet;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * Faults a Ferry back-end can be told to commit — a test aid for the vendor check
 * ({@code ferry vhost-user check}), which must catch each of them, and for the front-end's tests
 * ({@link #KICK_ONLY}: a stricter peer). Never for production use.
 */
public enum BackendFaults {
    /** Data written into guest buffers is left out of the dirty log (used-ring writes still logged). */
    LOG_OMIT("log-omit"),
    /** GET_VRING_BASE answers one more than the ring's real {@code last_avail_idx}. */
    WRONG_VRING_BASE("wrong-vring-base"),
    /** A ring keeps being served after SET_VRING_ENABLE 0. */
    WRITE_AFTER_DISABLE("write-after-disable"),
    /**
     * A ring is looked at only when its kick eventfd fires — not when it starts, is enabled or
     * gets a new kick fd — and a kick that comes while nothing is served is gone. No fault of the
     * protocol (the specification starts a ring upon a kick) but how libvhost-user, and so
     * qemu-storage-daemon, serves: a front-end must kick a ring it (re)started.
     */
    KICK_ONLY("kick-only");

    private final String cliName;

    BackendFaults(String cliName) {
        this.cliName = cliName;
    }

    public String cliName() {
        return cliName;
    }

    /** The fault named {@code name} ({@code log-omit}, ...). */
    public static BackendFaults parse(String name) {
        for (BackendFaults f : values()) {
            if (f.cliName.equals(name)) {
                return f;
            }
        }
        throw new IllegalArgumentException("'" + name + "' is not a back-end fault; known: "
                + Arrays.stream(values()).map(BackendFaults::cliName).collect(Collectors.joining(", ")));
    }

    /** No fault: the production setting. */
    public static Set<BackendFaults> none() {
        return EnumSet.noneOf(BackendFaults.class);
    }
}
