package dev.ferry.migration;

/**
 * One participant's share of a migration: bytes sent before the VM stopped and during downtime,
 * and the time its sections took inside the downtime window.
 */
public record DeviceStats(String idstr, int instanceId, long precopyBytes, long downtimeBytes, long downtimeNanos) {
    public long transferredBytes() {
        return precopyBytes + downtimeBytes;
    }
}
