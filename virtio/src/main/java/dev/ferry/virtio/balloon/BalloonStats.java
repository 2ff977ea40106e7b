package dev.ferry.virtio.balloon;

import dev.ferry.virtio.queue.ChainReader;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The guest's memory statistics from the stats queue: a buffer of packed 10-byte entries
 * <pre>
 *   +0 le16 tag | +2 le64 value        (no padding between entries)
 * </pre>
 * Tags 0–9 are the specification's (SWAP_IN 0, SWAP_OUT 1, MAJFLT 2, MINFLT 3, MEMFREE 4,
 * MEMTOT 5, AVAIL 6, CACHES 7, HTLB_PGALLOC 8, HTLB_PGFAIL 9); Linux's later tags (10–15) and
 * unknown ones are ignored, as QEMU ignores them. A value not reported reads −1 (QEMU's
 * convention). Immutable; a snapshot with the host time it arrived.
 */
public final class BalloonStats {
    public static final int ENTRY = 10;
    /** The tags Ferry reports, by QEMU's {@code guest-stats} names. */
    public static final String[] NAMES = {"stat-swap-in", "stat-swap-out", "stat-major-faults", "stat-minor-faults",
        "stat-free-memory", "stat-total-memory", "stat-available-memory", "stat-disk-caches", "stat-htlb-pgalloc",
        "stat-htlb-pgfail"};
    public static final int MEMFREE = 4;
    public static final int MEMTOT = 5;
    public static final int AVAIL = 6;
    /** Most entries read from one buffer: a longer buffer is read that far, the rest ignored. */
    public static final int MAX_ENTRIES = 256;

    private final long[] values;
    private final long lastUpdateSeconds;

    private BalloonStats(long[] values, long lastUpdateSeconds) {
        this.values = values;
        this.lastUpdateSeconds = lastUpdateSeconds;
    }

    /** No stats yet: every value −1, last update 0 (QEMU's initial guest-stats). */
    public static BalloonStats none() {
        long[] v = new long[NAMES.length];
        Arrays.fill(v, -1);
        return new BalloonStats(v, 0);
    }

    /**
     * Reads the entries of a stats buffer: {@code readable / 10} of them, at most
     * {@link #MAX_ENTRIES}; a trailing partial entry is ignored. Tags that repeat keep the last value.
     */
    public static BalloonStats read(ChainReader r, long readable, long nowSeconds) {
        long[] v = new long[NAMES.length];
        Arrays.fill(v, -1);
        long n = Math.min(readable / ENTRY, MAX_ENTRIES);
        for (long i = 0; i < n; i++) {
            int tag = r.readU16();
            long val = r.readU64();
            if (tag >= 0 && tag < v.length) {
                v[tag] = val;
            }
        }
        return new BalloonStats(v, nowSeconds);
    }

    /** The value of {@code tag}, or −1 when the guest did not report it. */
    public long value(int tag) {
        return tag >= 0 && tag < values.length ? values[tag] : -1;
    }

    /** Host time of the update, seconds since the epoch (0: none yet). */
    public long lastUpdate() {
        return lastUpdateSeconds;
    }

    /** As QEMU's {@code guest-stats} property: {@code {"stats": {"stat-free-memory": ...}, "last-update": s}}. */
    public Map<String, Object> toGuestStats() {
        Map<String, Object> stats = new LinkedHashMap<>();
        for (int i = 0; i < NAMES.length; i++) {
            stats.put(NAMES[i], values[i]);
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("stats", stats);
        m.put("last-update", lastUpdateSeconds);
        return m;
    }

    @Override
    public String toString() {
        return toGuestStats().toString();
    }
}
