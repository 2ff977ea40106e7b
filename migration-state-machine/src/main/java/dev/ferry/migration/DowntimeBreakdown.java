package dev.ferry.migration;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Where a switchover's pause went, phase by phase, measured on the source from the moment it
 * decided to stop the VM. The phases are consecutive, so they add up exactly:
 * <ul>
 *   <li>{@link #downtimeNanos()} — QEMU's {@code downtime}: from the VM stop to the last byte
 *       handed to the link (vCPU stop through drain);</li>
 *   <li>{@link #guestPauseNanos()} — what the guest sees: from its vCPUs pausing on the source to
 *       its vCPUs running on the destination, known when the destination confirms it runs over the
 *       return path (without one, the destination phase is 0 and the pause is the downtime).</li>
 * </ul>
 * Nothing a demo or test adds on the destination (a verification digest) is subtracted here: the
 * destination reports that on its own.
 *
 * @param vcpuStopNanos     pausing the vCPUs
 * @param deviceStopNanos   the device loop and the VM-change-state handlers (devices quiescing)
 * @param finalSyncNanos    RAM's last dirty-log sync
 * @param finalRamPassNanos RAM's last pass (the pages still dirty)
 * @param deviceStateNanos  the other handlers' stop-copy data, the device states and the stream's end
 * @param drainNanos        the stream leaving the source's buffers
 * @param destinationNanos  from then until the destination confirms its VM runs
 */
public record DowntimeBreakdown(long vcpuStopNanos, long deviceStopNanos, long finalSyncNanos,
                                long finalRamPassNanos, long deviceStateNanos, long drainNanos,
                                long destinationNanos) {

    public long downtimeNanos() {
        return vcpuStopNanos + deviceStopNanos + finalSyncNanos + finalRamPassNanos + deviceStateNanos + drainNanos;
    }

    public long guestPauseNanos() {
        return downtimeNanos() + destinationNanos;
    }

    /** The phases by their {@code query-migrate} names, in microseconds. */
    public Map<String, Long> phasesMicros() {
        Map<String, Long> m = new LinkedHashMap<>();
        m.put("vcpu-stop", vcpuStopNanos / 1000);
        m.put("device-stop", deviceStopNanos / 1000);
        m.put("final-sync", finalSyncNanos / 1000);
        m.put("final-ram-pass", finalRamPassNanos / 1000);
        m.put("device-state", deviceStateNanos / 1000);
        m.put("drain", drainNanos / 1000);
        m.put("destination", destinationNanos / 1000);
        return m;
    }
}
