package dev.ferry.migration;

import dev.ferry.core.migration.SaveEntry;
import dev.ferry.migration.ram.RamCounters;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongSupplier;

/**
 * Time and byte accounting of one outgoing migration, as QEMU's {@code migration_update_counters}
 * does it: bandwidth measured over ~100 ms windows gives the switchover threshold
 * ({@code bandwidth × downtime-limit}) and the expected downtime. Written by the migration
 * thread; {@link #snapshot} may be called from any thread.
 */
final class SourceProgress {
    private final LongSupplier clock;
    private volatile long start;
    private volatile long setupNanos = -1;
    private volatile long end = -1;
    private volatile long downtimeStart = -1;
    private volatile long downtimeNanos = -1;
    private long windowStart;
    private long windowBytes;
    private volatile double bytesPerMs;
    private volatile double mbps;
    private volatile long expectedDowntimeMs;
    private volatile long pending;
    private volatile long dirtyPagesRate;
    private volatile long pagesPerSecond;
    private long windowPages;
    private final Map<String, long[]> devices = new LinkedHashMap<>();

    SourceProgress(LongSupplier clock) {
        this.clock = clock;
    }

    private boolean idle;
    private long busyNanos;
    /** An idle window must have sent at least this much for its busy rate to count. */
    private static final long IDLE_MIN_BYTES = 64 << 10;

    /** QEMU's default max-bandwidth, what an idle link is assumed to move at least. */
    static final long IDLE_LINK_FLOOR = 128L << 20;
    private double idleFloorBytesPerMs = IDLE_LINK_FLOOR / 1000.0;
    private double capBytesPerMs;

    /** The configured max-bandwidth (0: unlimited) caps the idle floor. */
    void maxBandwidth(long bytesPerSecond) {
        capBytesPerMs = bytesPerSecond / 1000.0;
        long floor = bytesPerSecond > 0 ? Math.min(bytesPerSecond, IDLE_LINK_FLOOR) : IDLE_LINK_FLOOR;
        idleFloorBytesPerMs = floor / 1000.0;
    }

    /** Time a pre-copy round spent sending (handlers and flush), excluding waits. */
    void busy(long nanos) {
        busyNanos += nanos;
    }

    void begin() {
        start = clock.getAsLong();
    }

    void setupDone() {
        setupNanos = clock.getAsLong() - start;
    }

    /** The senders ran dry in the current window: its byte count says nothing of the link. */
    void idleWindow() {
        idle = true;
    }

    void newWindow(long bytes) {
        windowStart = clock.getAsLong();
        windowBytes = bytes;
    }

    /** Closes the window after ≥ 100 ms and recomputes bandwidth, threshold and expected downtime. */
    void updateWindow(long bytes, long downtimeLimitMs, RamCounters ram) {
        long now = clock.getAsLong();
        long elapsed = now - windowStart;
        if (elapsed < 100_000_000L) {
            return;
        }
        double ms = elapsed / 1e6;
        long sent = bytes - windowBytes;
        double measured = sent / ms;
        if (idle) {
            // The senders ran dry: the window's bytes measure the supply, not the link. Judge
            // the link by how fast the busy part of the window went out (QEMU uses the plain
            // window rate, and a VM with a large stop-copy device whose RAM is quiet then never
            // converges; QEMU 8.2 added avail-switchover-bandwidth for it). Never lower it, and
            // with nothing flowing assume at least QEMU's default max-bandwidth (128 MiB/s) or
            // the configured limit, whichever is lower.
            double busyMs = busyNanos / 1e6;
            double busyRate = busyMs > 0 && sent > IDLE_MIN_BYTES ? sent / busyMs : 0;
            bytesPerMs = Math.max(Math.max(bytesPerMs, idleFloorBytesPerMs), Math.max(measured, busyRate));
            if (capBytesPerMs > 0) {
                bytesPerMs = Math.min(bytesPerMs, capBytesPerMs); // the link is limited to max-bandwidth
            }
        } else {
            bytesPerMs = measured;
        }
        idle = false;
        busyNanos = 0;
        mbps = sent * 8.0 / 1e6 / (ms / 1000.0);
        long pages = ram.normal() + ram.duplicate();
        pagesPerSecond = (long) ((pages - windowPages) / (ms / 1000.0));
        windowPages = pages;
        if (bytesPerMs > 0 && sent > 10_000) {
            expectedDowntimeMs = (long) (pending / bytesPerMs);
        }
        windowStart = now;
        windowBytes = bytes;
    }

    /** The rate the switchover decision budgets with: avail-switchover-bandwidth when set, else the measured one. */
    double switchoverBytesPerMs() {
        return availBytesPerMs > 0 ? availBytesPerMs : bytesPerMs;
    }

    /** QEMU's avail-switchover-bandwidth (bytes/s; 0: use the measured bandwidth). */
    void availSwitchoverBandwidth(long bytesPerSecond) {
        availBytesPerMs = bytesPerSecond / 1000.0;
    }

    private double availBytesPerMs;

    void pending(long p) {
        pending = p;
    }

    void dirtyPagesRate(long r) {
        dirtyPagesRate = r;
    }

    void downtimeStarts() {
        downtimeStart = clock.getAsLong();
    }

    long downtimeStartNanos() {
        return downtimeStart;
    }

    /** The switchover completed: its phases, whose source part is QEMU's downtime. */
    void downtimeEnds(DowntimeBreakdown b) {
        breakdown = b;
        downtimeNanos = b.downtimeNanos();
    }

    private volatile DowntimeBreakdown breakdown;
    private volatile long catchUpRoundBytes;

    /** Bytes the rounds after the catch-up sent (pages dirtied while the destination caught up). */
    void catchUpRounds(long bytes) {
        catchUpRoundBytes = bytes;
    }

    void end() {
        end = clock.getAsLong();
    }

    synchronized void addPrecopy(SaveEntry e, long bytes) {
        device(e)[0] += bytes;
    }

    synchronized void addDowntime(SaveEntry e, long bytes, long nanos) {
        long[] d = device(e);
        d[1] += bytes;
        d[2] += nanos;
    }

    private long[] device(SaveEntry e) {
        return devices.computeIfAbsent(e.idstr() + "\u0000" + e.instanceId(), k -> new long[3]);
    }

    synchronized MigrationInfo snapshot(MigrationStatus status, String errorDesc, int throttle, RamCounters rc) {
        long now = end >= 0 ? end : clock.getAsLong();
        long total = start == 0 ? 0 : (now - start) / 1_000_000;
        List<DeviceStats> ds = new ArrayList<>();
        for (Map.Entry<String, long[]> en : devices.entrySet()) {
            String[] k = en.getKey().split("\u0000");
            long[] v = en.getValue();
            ds.add(new DeviceStats(k[0], Integer.parseInt(k[1]), v[0], v[1], v[2]));
        }
        MigrationInfo.Ram ram = new MigrationInfo.Ram(rc.transferred(), rc.remaining(), rc.total(), rc.duplicate(),
                rc.normal(), rc.normalBytes(), dirtyPagesRate, mbps, rc.dirtySyncCount(), rc.pageSize(),
                pagesPerSecond, rc.precopyBytes(), rc.downtimeBytes(), rc.multifdBytes());
        return new MigrationInfo(status, total, setupNanos < 0 ? 0 : setupNanos / 1_000_000,
                downtimeNanos < 0 ? 0 : downtimeNanos / 1_000_000, expectedDowntimeMs, throttle, errorDesc,
                List.of(), ram, List.copyOf(ds), breakdown, catchUpRoundBytes);
    }
}
