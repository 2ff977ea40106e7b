package dev.ferry.migration;

import dev.ferry.core.cpu.CpuEngine;

/**
 * QEMU's auto-converge ({@code migration_trigger_throttle} / {@code mig_throttle_guest_down}):
 * at most once per second of dirty syncs, when the guest dirtied more than
 * throttle-trigger-threshold % of what was sent in the same period, twice in a row, the vCPU
 * throttle starts at cpu-throttle-initial or rises by cpu-throttle-increment, up to
 * max-cpu-throttle. Also measures dirty-pages-rate. Migration thread only.
 */
final class AutoConverge {
    private static final long PERIOD_NANOS = 1_000_000_000L;
    private final CpuEngine cpus;
    private final boolean enabled;
    private final MigrationParameters params;
    private long periodStart;
    private long periodDirtyPages;
    private long periodStartBytes;
    private int highCount;
    private long dirtyPagesRate;

    AutoConverge(CpuEngine cpus, boolean enabled, MigrationParameters params, long now, long bytesSent) {
        this.cpus = cpus;
        this.enabled = enabled;
        this.params = params;
        this.periodStart = now;
        this.periodStartBytes = bytesSent;
    }

    /** Called after each dirty sync with the pages it newly found dirty. */
    void afterSync(long newlyDirtyPages, long now, long bytesSent) {
        periodDirtyPages += newlyDirtyPages;
        long elapsed = now - periodStart;
        if (elapsed <= PERIOD_NANOS) {
            return;
        }
        long dirtyBytes = periodDirtyPages * 4096;
        long sentBytes = bytesSent - periodStartBytes;
        dirtyPagesRate = periodDirtyPages * 1_000_000_000L / elapsed;
        if (enabled && dirtyBytes > sentBytes / 100 * params.throttleTriggerThreshold()) {
            if (++highCount >= 2) {
                highCount = 0;
                throttleDown();
            }
        }
        periodStart = now;
        periodDirtyPages = 0;
        periodStartBytes = bytesSent;
    }

    private void throttleDown() {
        int current = cpus.throttlePercentage();
        int next = current == 0 ? params.cpuThrottleInitial()
                : Math.min(current + params.cpuThrottleIncrement(), params.maxCpuThrottle());
        cpus.setThrottlePercentage(Math.max(1, Math.min(99, next)));
    }

    long dirtyPagesRate() {
        return dirtyPagesRate;
    }

    void stop() {
        if (cpus.throttlePercentage() != 0) {
            cpus.setThrottlePercentage(0);
        }
    }
}
