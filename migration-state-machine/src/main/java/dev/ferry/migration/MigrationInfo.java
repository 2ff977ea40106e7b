package dev.ferry.migration;

import java.util.List;

/**
 * A snapshot of {@code query-migrate}: qapi {@code MigrationInfo} with its {@code ram} member, plus
 * Ferry's per-device breakdown and the phases of the switchover. Times in milliseconds, sizes in
 * bytes. {@code downtimeMs} is QEMU's definition (source: VM stop to the stream's last byte);
 * {@code breakdown} (null until a switchover completed) also holds the guest-visible pause;
 * {@code catchUpRoundBytes} what the source sent after the destination caught up and before it
 * stopped the guest (what the guest dirtied during the wait).
 */
public record MigrationInfo(MigrationStatus status, long totalTimeMs, long setupTimeMs, long downtimeMs,
                            long expectedDowntimeMs, int cpuThrottlePercentage, String errorDesc,
                            List<String> blockedReasons, Ram ram, List<DeviceStats> devices,
                            DowntimeBreakdown breakdown, long catchUpRoundBytes) {

    /** qapi {@code MigrationStats}. */
    public record Ram(long transferred, long remaining, long total, long duplicate, long normal, long normalBytes,
                      long dirtyPagesRate, double mbps, long dirtySyncCount, long pageSize, long pagesPerSecond,
                      long precopyBytes, long downtimeBytes, long multifdBytes) {
    }
}
