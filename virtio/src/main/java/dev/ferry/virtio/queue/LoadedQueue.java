package dev.ferry.virtio.queue;

import dev.ferry.core.memory.DeviceMemory;

/**
 * One queue's indices as a migration load found them: {@code lastAvailIdx} from the stream,
 * {@code availIdx} and {@code usedIdx} from the guest RAM that arrived before the device state.
 * {@code inconsistency} is QEMU's message when {@code avail.idx} is more than the queue size
 * ahead of {@code last_avail_idx} — the device is then broken but the load goes on — or null.
 *
 * <p>Used on the migration thread while the destination device is stopped.
 */
public record LoadedQueue(int vqIndex, int size, int lastAvailIdx, int availIdx, int usedIdx, String inconsistency) {

    /** Whether the ring is consistent with the stream (the device may run on it). */
    public boolean consistent() {
        return inconsistency == null;
    }

    /** Requests in flight at the source: {@code (u16)(lastAvailIdx − usedIdx)}. */
    public int inUse() {
        return SplitRing.distance(lastAvailIdx, usedIdx);
    }

    /** True for a queue the driver never set up (descriptor address 0): nothing to restore. */
    public boolean unconfigured() {
        return size == 0;
    }

    /**
     * QEMU {@code virtio_load}'s checks, in its order and with its messages:
     * <ol>
     * <li>descriptor address 0 with {@code last_avail_idx ≠ 0}: "VQ %d address 0x0 inconsistent
     *     with Host index 0x%x" — the load fails; address 0 with index 0 is an unconfigured queue;
     * <li>the three areas must be in RAM with their alignment, or the load fails;
     * <li>{@code avail.idx − last_avail_idx > num}: "VQ %d size 0x%x Guest index 0x%x inconsistent
     *     with Host index 0x%x: delta 0x%x" — returned as {@link #inconsistency()} (device broken,
     *     load continues; the in-use check is skipped);
     * <li>{@code inuse = last_avail_idx − used.idx > num}: "VQ %d size 0x%x < last_avail_idx 0x%x -
     *     used_idx 0x%x" — the load fails.
     * </ol>
     * Failures are {@link VirtqueueError}s named after {@code device}.
     */
    static LoadedQueue check(DeviceMemory memory, String device, int vqIndex, QueueConfig config, int lastAvailIdx) {
        if ((lastAvailIdx & ~0xffff) != 0) {
            throw VirtqueueError.loadFailure(device, "VQ " + vqIndex + " last_avail_idx " + lastAvailIdx + " is not a u16");
        }
        if (config.descGpa() == 0) {
            if (lastAvailIdx != 0) {
                throw VirtqueueError.loadFailure(device, String.format("VQ %d address 0x0 inconsistent with Host index 0x%x",
                        vqIndex, lastAvailIdx));
            }
            return new LoadedQueue(vqIndex, 0, 0, 0, 0, null);
        }
        try {
            SplitVirtqueue.checkAreas(memory, device, config);
        } catch (VirtqueueError e) {
            throw VirtqueueError.loadFailure(device, "VQ " + vqIndex + ": " + e.reason());
        }
        int num = config.size();
        int availIdx = memory.loadU16Acquire(SplitRing.availIdx(config.availGpa()));
        int usedIdx = memory.loadU16Acquire(SplitRing.usedIdx(config.usedGpa()));
        int nheads = SplitRing.distance(availIdx, lastAvailIdx);
        if (nheads > num) {
            return new LoadedQueue(vqIndex, num, lastAvailIdx, availIdx, usedIdx, String.format(
                    "VQ %d size 0x%x Guest index 0x%x inconsistent with Host index 0x%x: delta 0x%x",
                    vqIndex, num, availIdx, lastAvailIdx, nheads));
        }
        int inuse = SplitRing.distance(lastAvailIdx, usedIdx);
        if (inuse > num) {
            throw VirtqueueError.loadFailure(device, String.format("VQ %d size 0x%x < last_avail_idx 0x%x - used_idx 0x%x",
                    vqIndex, num, lastAvailIdx, usedIdx));
        }
        return new LoadedQueue(vqIndex, num, lastAvailIdx, availIdx, usedIdx, null);
    }

    /**
     * Builds the running queue for a loaded state that {@link #check} accepted: enabled on
     * {@code config}, indices restored, and broken with {@link #inconsistency()} if there was one.
     * Null for an unconfigured queue.
     */
    public SplitVirtqueue restoreQueue(DeviceMemory memory, String name, QueueConfig config) {
        if (unconfigured()) {
            return null;
        }
        SplitVirtqueue q = SplitVirtqueue.enable(memory, name, vqIndex, config);
        q.restore(lastAvailIdx, usedIdx);
        if (inconsistency != null) {
            q.markBroken(inconsistency);
        }
        return q;
    }
}
