package dev.ferry.migration;

/**
 * The tunables of qapi {@code MigrationParameters} that Ferry honours, with QEMU's defaults
 * (downtime-limit 300 ms, max-bandwidth 128 MiB/s, throttle 20 % + 10 % up to 99 %, trigger at
 * 50 %). Immutable; QMP's migrate-set-parameters builds a new one.
 *
 * @param maxBandwidth bytes per second; 0 means unlimited (Ferry's extension; QEMU has no "off")
 * @param availSwitchoverBandwidth bytes per second the link can give the switchover (QEMU 8.2's
 *                                 avail-switchover-bandwidth); when above 0 it replaces the measured
 *                                 bandwidth in the switchover decision, for guests whose pre-copy
 *                                 traffic is too thin to measure the link (a large stop-copy device
 *                                 behind quiet RAM); 0, the default, uses the measurement
 * @param heartbeatTimeoutMs how long the source may go without hearing the destination's return
 *                           path (whose heartbeat comes every 500 ms) before it declares the
 *                           destination or the network gone and fails the migration (Ferry's
 *                           {@code x-heartbeat-timeout}; QEMU waits on the TCP peer)
 * @param multifdChannels the connections RAM uses when the {@code multifd} capability is on
 *                        (QEMU's {@code multifd-channels}: 1..255, default 2); the same at both ends
 */
public record MigrationParameters(long downtimeLimitMs, long maxBandwidth, int cpuThrottleInitial,
                                  int cpuThrottleIncrement, int maxCpuThrottle, int throttleTriggerThreshold,
                                  long returnPathTimeoutMs, long availSwitchoverBandwidth, long heartbeatTimeoutMs,
                                  int multifdChannels) {
    public static final long MAX_THROTTLE = 128L << 20;

    public MigrationParameters {
        if (downtimeLimitMs < 0 || downtimeLimitMs > 2_000_000) {
            throw new IllegalArgumentException("downtime-limit must be in 0..2000000 ms, got " + downtimeLimitMs);
        }
        if (maxBandwidth < 0) {
            throw new IllegalArgumentException("max-bandwidth must not be negative, got " + maxBandwidth);
        }
        checkPercent("cpu-throttle-initial", cpuThrottleInitial, 1, 99);
        checkPercent("cpu-throttle-increment", cpuThrottleIncrement, 1, 99);
        checkPercent("max-cpu-throttle", maxCpuThrottle, 1, 99);
        checkPercent("throttle-trigger-threshold", throttleTriggerThreshold, 1, 100);
        if (returnPathTimeoutMs <= 0) {
            throw new IllegalArgumentException("return-path timeout must be positive");
        }
        if (heartbeatTimeoutMs < 1000 || heartbeatTimeoutMs > 3_600_000) {
            throw new IllegalArgumentException("x-heartbeat-timeout must be in 1000..3600000 ms, got " + heartbeatTimeoutMs);
        }
        if (multifdChannels < 1 || multifdChannels > 255) {
            throw new IllegalArgumentException("multifd-channels must be in 1..255, got " + multifdChannels);
        }
        if (availSwitchoverBandwidth < 0) {
            throw new IllegalArgumentException("avail-switchover-bandwidth must not be negative, got "
                    + availSwitchoverBandwidth);
        }
    }

    private static void checkPercent(String name, int v, int lo, int hi) {
        if (v < lo || v > hi) {
            throw new IllegalArgumentException(name + " must be in " + lo + ".." + hi + ", got " + v);
        }
    }

    public static MigrationParameters defaults() {
        return new MigrationParameters(300, MAX_THROTTLE, 20, 10, 99, 50, 60_000, 0, 5_000, 2);
    }

    public MigrationParameters withDowntimeLimitMs(long v) {
        return new MigrationParameters(v, maxBandwidth, cpuThrottleInitial, cpuThrottleIncrement, maxCpuThrottle,
                throttleTriggerThreshold, returnPathTimeoutMs, availSwitchoverBandwidth, heartbeatTimeoutMs, multifdChannels);
    }

    public MigrationParameters withMaxBandwidth(long v) {
        return new MigrationParameters(downtimeLimitMs, v, cpuThrottleInitial, cpuThrottleIncrement, maxCpuThrottle,
                throttleTriggerThreshold, returnPathTimeoutMs, availSwitchoverBandwidth, heartbeatTimeoutMs, multifdChannels);
    }

    public MigrationParameters withThrottle(int initial, int increment, int max) {
        return new MigrationParameters(downtimeLimitMs, maxBandwidth, initial, increment, max,
                throttleTriggerThreshold, returnPathTimeoutMs, availSwitchoverBandwidth, heartbeatTimeoutMs, multifdChannels);
    }

    public MigrationParameters withThrottleTriggerThreshold(int v) {
        return new MigrationParameters(downtimeLimitMs, maxBandwidth, cpuThrottleInitial, cpuThrottleIncrement,
                maxCpuThrottle, v, returnPathTimeoutMs, availSwitchoverBandwidth, heartbeatTimeoutMs, multifdChannels);
    }

    public MigrationParameters withReturnPathTimeoutMs(long v) {
        return new MigrationParameters(downtimeLimitMs, maxBandwidth, cpuThrottleInitial, cpuThrottleIncrement,
                maxCpuThrottle, throttleTriggerThreshold, v, availSwitchoverBandwidth, heartbeatTimeoutMs, multifdChannels);
    }

    public MigrationParameters withAvailSwitchoverBandwidth(long v) {
        return new MigrationParameters(downtimeLimitMs, maxBandwidth, cpuThrottleInitial, cpuThrottleIncrement,
                maxCpuThrottle, throttleTriggerThreshold, returnPathTimeoutMs, v, heartbeatTimeoutMs, multifdChannels);
    }

    public MigrationParameters withHeartbeatTimeoutMs(long v) {
        return new MigrationParameters(downtimeLimitMs, maxBandwidth, cpuThrottleInitial, cpuThrottleIncrement,
                maxCpuThrottle, throttleTriggerThreshold, returnPathTimeoutMs, availSwitchoverBandwidth, v, multifdChannels);
    }

    public MigrationParameters withMultifdChannels(int v) {
        return new MigrationParameters(downtimeLimitMs, maxBandwidth, cpuThrottleInitial, cpuThrottleIncrement,
                maxCpuThrottle, throttleTriggerThreshold, returnPathTimeoutMs, availSwitchoverBandwidth,
                heartbeatTimeoutMs, v);
    }
}
