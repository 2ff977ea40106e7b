package dev.ferry.migration;

import java.util.List;

/**
 * A snapshot of {@code query-migrate}: qapi {@code MigrationInfo} with its {@code ram} member, plus
 * Ferry's per-device breakdown. Times in milliseconds, sizes in bytes.
 */
public record MigrationInfo(MigrationStatus status, long totalTimeMs, long setupTimeMs, long downtimeMs,
                            long expectedDowntimeMs, int cpuThrottlePercentage, String errorDesc,
                            List<String> blockedReasons, Ram ram, List<DeviceStats> devices) {

    /** qapi {@code MigrationStats}. */
    public record Ram(long transferred, long remaining, long total, long duplicate, long normal, long normalBytes,
                      long dirtyPagesRate, double mbps, long dirtySyncCount, long pageSize, long pagesPerSecond,
                      long precopyBytes, long downtimeBytes) {
    }
}
