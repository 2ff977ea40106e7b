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
 *       return path (without one, the destination phases are 0 and the pause is the downtime).</li>
 * </ul>
 * The destination's share (from the source's last byte to its SHUT) is split by what a Ferry
 * destination reports of its own work after the stream's end ({@link ReturnPath}): its load
 * cleanup, its verification and its VM start; {@code ack} is the rest — the destination reading the
 * stream's tail, and the SHUT's way back. A destination that reports nothing (QEMU) leaves it all
 * in {@code ack}. Nothing a demo or test adds on the destination (a verification digest) is
 * subtracted here; it is its own phase, {@code destination-verify}.
 *
 * @param vcpuStopNanos          pausing the vCPUs
 * @param deviceStopNanos        the device loop and the VM-change-state handlers (devices quiescing)
 * @param finalSyncNanos         RAM's last dirty-log sync
 * @param finalRamPassNanos      RAM's last pass (the pages still dirty)
 * @param deviceStateNanos       the other handlers' stop-copy data, the device states and the stream's end
 * @param drainNanos             the stream leaving the source's buffers
 * @param destinationLoadNanos   the destination's load cleanup after the stream's end (device states
 *                               committed, channels joined)
 * @param destinationVerifyNanos the destination's verification before its start (a digest, a hook)
 * @param destinationStartNanos  the destination starting its VM
 * @param ackNanos               the rest until the source read the destination's SHUT
 */
public record DowntimeBreakdown(long vcpuStopNanos, long deviceStopNanos, long finalSyncNanos,
                                long finalRamPassNanos, long deviceStateNanos, long drainNanos,
                                long destinationLoadNanos, long destinationVerifyNanos, long destinationStartNanos,
                                long ackNanos) {

    /**
     * The breakdown whose destination share, {@code destinationNanos} on the source's clock, is
     * split by {@code reported}. The destination's work can begin before the source's last flush
     * returns, so what it reports may exceed that share: then its load, then its verification,
     * then its start are cut until the destination phases add up to the share, and ack is 0.
     */
    static DowntimeBreakdown of(long vcpuStopNanos, long deviceStopNanos, long finalSyncNanos, long finalRamPassNanos,
                                long deviceStateNanos, long drainNanos, long destinationNanos,
                                ReturnPath.DestinationTimings reported) {
        long share = Math.max(0, destinationNanos);
        long over = Math.max(0, reported.totalNanos() - share);
        long load = reported.loadNanos();
        long verify = reported.verifyNanos();
        long start = reported.startNanos();
        long cut = Math.min(over, load);
        load -= cut;
        over -= cut;
        cut = Math.min(over, verify);
        verify -= cut;
        over -= cut;
        start -= Math.min(over, start);
        long ack = share - load - verify - start;
        return new DowntimeBreakdown(vcpuStopNanos, deviceStopNanos, finalSyncNanos, finalRamPassNanos,
                deviceStateNanos, drainNanos, load, verify, start, ack);
    }

    public long downtimeNanos() {
        return vcpuStopNanos + deviceStopNanos + finalSyncNanos + finalRamPassNanos + deviceStateNanos + drainNanos;
    }

    /** The destination's share: from the source's last byte to its reading the destination's SHUT. */
    public long destinationNanos() {
        return destinationLoadNanos + destinationVerifyNanos + destinationStartNanos + ackNanos;
    }

    public long guestPauseNanos() {
        return downtimeNanos() + destinationNanos();
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
        m.put("destination-load", destinationLoadNanos / 1000);
        m.put("destination-verify", destinationVerifyNanos / 1000);
        m.put("destination-start", destinationStartNanos / 1000);
        m.put("ack", ackNanos / 1000);
        return m;
    }
}
