package dev.ferry.vhostuser.backend;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * What a {@link VhostUserBackend} has done, for reports, the demo and tests: connections, messages,
 * refusals (with the last reason), the dirty log's use, and the vring bases set and returned.
 * Updated on the back-end's loop (and its I/O threads); read from any thread.
 */
public final class BackendStats {
    final AtomicLong connections = new AtomicLong();
    final AtomicLong messages = new AtomicLong();
    final AtomicLong refused = new AtomicLong();
    final AtomicLong logBases = new AtomicLong();
    final AtomicLong kicks = new AtomicLong();
    final AtomicLong calls = new AtomicLong();
    final AtomicLong loggedWrites = new AtomicLong();
    final AtomicLong rarps = new AtomicLong();
    final AtomicLong resubmitted = new AtomicLong();
    final AtomicLong unloggable = new AtomicLong();
    final AtomicLong configChanges = new AtomicLong();
    volatile boolean logAllSeen;
    volatile String lastRefusal;
    volatile String lastDisconnect;
    volatile String lastDeviceError;
    volatile int status;
    /** The features of the last SET_FEATURES (−1: none yet). */
    volatile long features = -1;
    /** Per queue: the last SET_VRING_BASE and GET_VRING_BASE values (−1: none yet). */
    final int[] baseSet;
    final int[] baseReturned;

    BackendStats(int queues) {
        baseSet = new int[queues];
        baseReturned = new int[queues];
        java.util.Arrays.fill(baseSet, -1);
        java.util.Arrays.fill(baseReturned, -1);
    }

    /** Front-end connections accepted (server) or made (client) so far. */
    public long connections() {
        return connections.get();
    }

    public long messages() {
        return messages.get();
    }

    /** Requests refused (nacked, or the connection dropped for them). */
    public long refused() {
        return refused.get();
    }

    /** Why the last request was refused, or null. */
    public String lastRefusal() {
        return lastRefusal;
    }

    /** Why the last connection ended, or null. */
    public String lastDisconnect() {
        return lastDisconnect;
    }

    /** The last driver protocol violation the device model reported, or null. */
    public String lastDeviceError() {
        return lastDeviceError;
    }

    /** CONFIG_CHANGE_MSGs sent to a front-end on its request channel. */
    public long configChanges() {
        return configChanges.get();
    }

    /** SET_LOG_BASE requests mapped. */
    public long logBases() {
        return logBases.get();
    }

    /** Whether a front-end ever negotiated LOG_ALL. */
    public boolean logAllSeen() {
        return logAllSeen;
    }

    /** Device writes recorded in the shared dirty log. */
    public long loggedWrites() {
        return loggedWrites.get();
    }

    /** Device writes to pages past the end of the front-end's log (its log is too small). */
    public long unloggable() {
        return unloggable.get();
    }

    /** Requests resubmitted from an inflight region a previous back-end left. */
    public long resubmitted() {
        return resubmitted.get();
    }

    /** RARP announcements sent for SEND_RARP. */
    public long rarps() {
        return rarps.get();
    }

    public long kicks() {
        return kicks.get();
    }

    /** Call eventfd signals (interrupts the front-end was asked to inject). */
    public long calls() {
        return calls.get();
    }

    /** The last SET_VRING_BASE for {@code queue}, or −1. */
    public int baseSet(int queue) {
        return baseSet[queue];
    }

    /** The last index GET_VRING_BASE returned for {@code queue}, or −1. */
    public int baseReturned(int queue) {
        return baseReturned[queue];
    }

    /** The device status the front-end last set (SET_STATUS). */
    public int status() {
        return status;
    }

    /** The features the front-end's last SET_FEATURES acked (−1: none yet). */
    public long features() {
        return features;
    }

    public Map<String, Object> describe() {
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("connections", connections());
        d.put("messages", messages());
        d.put("refused", refused());
        d.put("last-refusal", lastRefusal);
        d.put("log-bases", logBases());
        d.put("log-all-seen", logAllSeen);
        d.put("logged-writes", loggedWrites());
        d.put("unloggable-writes", unloggable());
        d.put("features", String.format("0x%x", features));
        d.put("rarps", rarps());
        d.put("kicks", kicks());
        d.put("calls", calls());
        d.put("config-changes", configChanges());
        return d;
    }

    @Override
    public String toString() {
        return describe().toString();
    }
}
