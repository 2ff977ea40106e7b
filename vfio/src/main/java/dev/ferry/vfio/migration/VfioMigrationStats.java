package dev.ferry.vfio.migration;

import dev.ferry.vfio.uapi.VfioDeviceState;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongSupplier;

/**
 * One VFIO device's share of the latest migration, for {@code query-migrate}: device data bytes
 * sent while the VM ran (pre-copy) and in the downtime window (stop-copy) or loaded on the
 * destination, the iterate reads, how long the device spent in each state and inside each SET
 * (timed around the ioctl), where it ended, and what went wrong. Resets and loss count over the
 * device's life; everything else restarts with each migration.
 *
 * <p>Written under the owning {@link VfioMigration}'s lock; {@link #snapshot()} from any thread.
 */
public final class VfioMigrationStats {
    private final String device;
    private final LongSupplier clock;
    private long precopyBytes;
    private long stopCopyBytes;
    private long loadedBytes;
    private long iterateReads;
    private long noDataReads;
    private long dmaSyncs;
    private long dmaDirtyPages;
    private final Map<VfioDeviceState, Long> nanosInState = new EnumMap<>(VfioDeviceState.class);
    private final Map<String, Long> setNanos = new LinkedHashMap<>();
    private VfioDeviceState state;
    private long enteredAt;
    private VfioDeviceState finalState;
    private int resets;
    private boolean lost;
    private final List<String> errors = new ArrayList<>();
    private final List<String> warnings = new ArrayList<>();

    VfioMigrationStats(String device, VfioDeviceState initial, LongSupplier clock) {
        this.device = device;
        this.clock = clock;
        this.state = initial;
        this.enteredAt = clock.getAsLong();
    }

    /** A new migration starts (save setup or load setup): per-migration figures restart. */
    synchronized void begin() {
        precopyBytes = 0;
        stopCopyBytes = 0;
        loadedBytes = 0;
        iterateReads = 0;
        noDataReads = 0;
        dmaSyncs = 0;
        dmaDirtyPages = 0;
        nanosInState.clear();
        setNanos.clear();
        enteredAt = clock.getAsLong();
        finalState = null;
        errors.clear();
    }

    /** The device is now in {@code now} after a SET on {@code arc} that took {@code nanos}. */
    synchronized void entered(VfioDeviceState now, String arc, long nanos) {
        long t = clock.getAsLong();
        nanosInState.merge(state, t - enteredAt, Long::sum);
        enteredAt = t;
        state = now;
        setNanos.merge(arc, nanos, Long::sum);
    }

    synchronized void iterateRead(long bytes) {
        iterateReads++;
        if (bytes > 0) {
            precopyBytes += bytes;
        } else {
            noDataReads++;
        }
    }

    /** A STOP_COPY read: bytes, 0 at the end, or NO_DATA (which a device in STOP_COPY should never answer). */
    synchronized void stopCopyRead(long bytes) {
        if (bytes > 0) {
            stopCopyBytes += bytes;
        } else if (bytes < 0) {
            noDataReads++;
        }
    }

    synchronized void loaded(long bytes) {
        loadedBytes += bytes;
    }

    synchronized void dmaSync(long dirtyPages) {
        dmaSyncs++;
        dmaDirtyPages += dirtyPages;
    }

    synchronized void reset() {
        resets++;
    }

    synchronized void lost() {
        lost = true;
    }

    synchronized void error(String message) {
        errors.add(message);
    }

    synchronized void warning(String message) {
        warnings.add(message);
    }

    synchronized void finish(VfioDeviceState s) {
        finalState = s;
    }

    public synchronized Snapshot snapshot() {
        Map<VfioDeviceState, Long> in = new EnumMap<>(nanosInState);
        in.merge(state, clock.getAsLong() - enteredAt, Long::sum);
        return new Snapshot(device, state, finalState, precopyBytes, stopCopyBytes, loadedBytes, iterateReads,
                noDataReads, Map.copyOf(in), Map.copyOf(setNanos), resets, lost, dmaSyncs, dmaDirtyPages,
                List.copyOf(errors), List.copyOf(warnings));
    }

    /**
     * @param state         the device state now (as the VMM last set it)
     * @param finalState    where the latest migration left the device (null while one runs)
     * @param precopyBytes  device data read while the VM ran
     * @param stopCopyBytes device data read in the downtime window
     * @param loadedBytes   device data written into a resuming device (destination)
     * @param iterateReads  reads of the data fd in pre-copy, with or without data
     * @param noDataReads   reads that found nothing (ENOMSG or 0)
     * @param nanosInState  time in each state during the latest migration
     * @param setNanos      time inside SET MIG_DEVICE_STATE, per arc "FROM->TO"
     * @param resets        device resets the migration code made (life of the device)
     * @param lost          a reset failed: the device is unusable for migration
     * @param dmaSyncs      DMA dirty-log syncs
     * @param dmaDirtyPages pages the device's DMA log reported (all pages when it cannot track)
     */
    public record Snapshot(String device, VfioDeviceState state, VfioDeviceState finalState, long precopyBytes,
                           long stopCopyBytes, long loadedBytes, long iterateReads, long noDataReads,
                           Map<VfioDeviceState, Long> nanosInState, Map<String, Long> setNanos, int resets,
                           boolean lost, long dmaSyncs, long dmaDirtyPages, List<String> errors,
                           List<String> warnings) {
        /** Device data sent in the downtime window. */
        public long downtimeBytes() {
            return stopCopyBytes;
        }
    }
}
