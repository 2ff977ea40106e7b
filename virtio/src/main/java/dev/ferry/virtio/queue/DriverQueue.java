package dev.ferry.virtio.queue;

import dev.ferry.core.memory.DeviceMemory;

import java.util.List;

import static dev.ferry.virtio.queue.SplitRing.distance;

/**
 * The driver side of one split virtqueue (layout in {@link SplitRing}), as a guest driver such as
 * Linux's {@code virtio_ring.c} runs it: lays the rings out, hands buffers to the device, kicks
 * only when the device asks, and collects used elements. Ferry's soft-engine guest driver and the
 * queue tests use it against a real {@link SplitVirtqueue} through real guest memory; its writes
 * go through {@link DeviceMemory} and so are dirty-logged like a guest's.
 *
 * <p>Descriptors are handed out from a free list; a chain's descriptors return to it when its
 * used element is collected. Indirect tables come from a pool of one table per head (entry
 * {@code head} of the pool), so a table is free exactly when its head is.
 *
 * <p>Not thread-safe: one guest thread (the soft driver's, or the test's) owns it; the device
 * runs concurrently on its own thread and shares only guest memory.
 */
public final class DriverQueue {
    /** A buffer to hand to the device: {@code length} (u32) bytes at {@code gpa}. */
    public record Buffer(long gpa, long length) {
        public Buffer {
            if (length < 0 || length > 0xffff_ffffL) {
                throw new IllegalArgumentException("buffer length " + length + " is not a u32");
            }
        }
    }

    /** A used element the device returned: the chain's head and the bytes it wrote. */
    public record Used(int id, long length) {
    }

    private final DeviceMemory memory;
    private final QueueConfig config;
    private final int size;
    private final long desc;
    private final long avail;
    private final long used;
    private final boolean eventIdx;
    private final long indirectPool;
    private final int indirectEntries;

    private final int[] free;
    private int freeCount;
    private final int[][] chains;
    private int inFlight;
    private int availIdx;
    private int kickedAvailIdx;
    private int lastUsedIdx;
    private boolean interruptsEnabled = true;

    private DriverQueue(Builder b) {
        this.memory = b.memory;
        this.config = b.config;
        this.size = config.size();
        this.desc = config.descGpa();
        this.avail = config.availGpa();
        this.used = config.usedGpa();
        this.eventIdx = config.eventIdx();
        this.indirectPool = b.indirectPool;
        this.indirectEntries = b.indirectEntries;
        this.free = new int[size];
        for (int i = 0; i < size; i++) {
            free[i] = size - 1 - i; // pop order 0, 1, 2, ...
        }
        this.freeCount = size;
        this.chains = new int[size][];
        this.availIdx = b.initialIndex;
        this.kickedAvailIdx = b.initialIndex;
        this.lastUsedIdx = b.initialIndex;
    }

    public static Builder builder(DeviceMemory memory, QueueConfig config) {
        return new Builder(memory, config);
    }

    /**
     * Makes a chain of {@code out} (device-readable) then {@code in} (device-writable) buffers
     * available and publishes {@code avail.idx} with release ordering. With {@code indirect} the
     * buffers go in the head's indirect table and the ring holds one descriptor. Returns the head.
     * Throws {@link IllegalStateException} when too few descriptors are free
     * ({@link #freeDescriptors()}).
     */
    public int add(List<Buffer> out, List<Buffer> in, boolean indirect) {
        int total = out.size() + in.size();
        if (total == 0) {
            throw new IllegalArgumentException("a chain needs at least one buffer");
        }
        int needed = indirect ? 1 : total;
        if (needed > freeCount) {
            throw new IllegalStateException("queue full: " + needed + " descriptors needed, " + freeCount + " free");
        }
        int head;
        int[] chain;
        if (indirect) {
            if (!config.indirectDesc() || indirectEntries == 0) {
                throw new IllegalStateException("indirect chains need INDIRECT_DESC and an indirect pool");
            }
            if (total > indirectEntries) {
                throw new IllegalArgumentException(total + " buffers exceed the " + indirectEntries + "-entry indirect table");
            }
            head = free[--freeCount];
            chain = new int[] {head};
            long table = indirectPool + (long) head * indirectEntries * SplitRing.DESC_SIZE;
            for (int k = 0; k < total; k++) {
                writeDesc(table, k, buffer(out, in, k), flags(out, k, total), k + 1 < total ? k + 1 : 0);
            }
            writeDesc(desc, head, new Buffer(table, (long) total * SplitRing.DESC_SIZE), SplitRing.DESC_F_INDIRECT, 0);
        } else {
            chain = new int[total];
            for (int k = 0; k < total; k++) {
                chain[k] = free[--freeCount];
            }
            for (int k = 0; k < total; k++) {
                writeDesc(desc, chain[k], buffer(out, in, k), flags(out, k, total), k + 1 < total ? chain[k + 1] : 0);
            }
            head = chain[0];
        }
        chains[head] = chain;
        inFlight++;
        memory.writeU16(SplitRing.availRing(avail, size, availIdx), head);
        availIdx = (availIdx + 1) & 0xffff;
        memory.storeU16Release(SplitRing.availIdx(avail), availIdx);
        return head;
    }

    /** The {@code k}-th buffer of the chain: readable ones first, then writable ones. */
    private static Buffer buffer(List<Buffer> out, List<Buffer> in, int k) {
        return k < out.size() ? out.get(k) : in.get(k - out.size());
    }

    private static int flags(List<Buffer> out, int k, int total) {
        return (k >= out.size() ? SplitRing.DESC_F_WRITE : 0) | (k + 1 < total ? SplitRing.DESC_F_NEXT : 0);
    }

    private void writeDesc(long table, int i, Buffer b, int flags, int next) {
        memory.writeU64(SplitRing.descAddr(table, i), b.gpa());
        memory.writeU32(SplitRing.descLen(table, i), (int) b.length());
        memory.writeU16(SplitRing.descFlags(table, i), flags);
        memory.writeU16(SplitRing.descNext(table, i), next);
    }

    /**
     * Whether the device wants a kick for what was added since the last call (Linux
     * {@code virtqueue_kick_prepare}): after a full fence, with EVENT_IDX
     * {@code vring_need_event(avail_event, avail.idx, avail.idx at the last call)}, without it
     * unless {@code used.flags} has NO_NOTIFY.
     */
    public boolean kickNeeded() {
        memory.fullFence();
        int old = kickedAvailIdx;
        kickedAvailIdx = availIdx;
        if (eventIdx) {
            return SplitRing.needEvent(memory.readU16(SplitRing.availEvent(used, size)), availIdx, old);
        }
        return (memory.readU16(SplitRing.usedFlags(used)) & SplitRing.USED_F_NO_NOTIFY) == 0;
    }

    /**
     * The next used element, or null when the device has published none; its descriptors are
     * free again. With EVENT_IDX and interrupts enabled, asks for an interrupt at the next one
     * ({@code used_event = last used idx}). Throws {@link IllegalStateException} when the device
     * breaks the protocol (an id that is not an in-flight head, {@code used.idx} too far ahead).
     */
    public Used pollUsed() {
        int deviceIdx = memory.loadU16Acquire(SplitRing.usedIdx(used));
        if (deviceIdx == lastUsedIdx) {
            return null;
        }
        if (distance(deviceIdx, lastUsedIdx) > size) {
            throw new IllegalStateException("device moved used.idx to " + deviceIdx + ", more than " + size
                    + " ahead of " + lastUsedIdx);
        }
        long elem = SplitRing.usedElem(used, size, lastUsedIdx);
        int id = memory.readU32(elem);
        long len = Integer.toUnsignedLong(memory.readU32(elem + 4));
        if (id < 0 || id >= size || chains[id] == null) {
            throw new IllegalStateException("device returned id " + Integer.toUnsignedString(id)
                    + ", which is not an in-flight head");
        }
        for (int d : chains[id]) {
            free[freeCount++] = d;
        }
        chains[id] = null;
        inFlight--;
        lastUsedIdx = (lastUsedIdx + 1) & 0xffff;
        if (eventIdx && interruptsEnabled) {
            memory.writeU16(SplitRing.usedEvent(avail, size), lastUsedIdx);
        }
        return new Used(id, len);
    }

    /**
     * Asks the device to interrupt (or not) when it publishes used elements. With EVENT_IDX,
     * enabling writes {@code used_event = last used idx} and disabling only stops re-arming it;
     * without, clears or sets {@code avail.flags} NO_INTERRUPT. After enabling, fences and returns
     * whether used elements are already waiting (they will bring no interrupt).
     */
    public boolean setInterruptsEnabled(boolean enable) {
        interruptsEnabled = enable;
        if (eventIdx) {
            if (enable) {
                memory.writeU16(SplitRing.usedEvent(avail, size), lastUsedIdx);
            }
        } else {
            memory.writeU16(SplitRing.availFlags(avail), enable ? 0 : SplitRing.AVAIL_F_NO_INTERRUPT);
        }
        if (!enable) {
            return false;
        }
        memory.fullFence();
        return memory.loadU16Acquire(SplitRing.usedIdx(used)) != lastUsedIdx;
    }

    /** EVENT_IDX only: asks for an interrupt once {@code used.idx} passes {@code usedIdx} (delayed callbacks). */
    public void requestInterruptAt(int usedIdx) {
        if (!eventIdx) {
            throw new IllegalStateException("used_event exists only with EVENT_IDX");
        }
        memory.writeU16(SplitRing.usedEvent(avail, size), usedIdx);
    }

    /** The driver's next {@code avail.idx} to publish (the current published value). */
    public int availIdx() {
        return availIdx;
    }

    /** The next used index the driver will collect. */
    public int lastUsedIdx() {
        return lastUsedIdx;
    }

    public int freeDescriptors() {
        return freeCount;
    }

    /** Chains added and not yet collected. */
    public int inFlight() {
        return inFlight;
    }

    public QueueConfig config() {
        return config;
    }

    /** Sets up a {@link DriverQueue}; {@link #build()} writes the initial ring state. */
    public static final class Builder {
        private final DeviceMemory memory;
        private final QueueConfig config;
        private int initialIndex;
        private long indirectPool;
        private int indirectEntries;

        private Builder(DeviceMemory memory, QueueConfig config) {
            this.memory = memory;
            this.config = config;
        }

        /**
         * Starts {@code avail.idx}, {@code used.idx} and both event indices at {@code idx}, as in a
         * guest that has run a long time; the device side must then be restored to the same
         * {@code (idx, idx)}. Default 0, as after a reset.
         */
        public Builder initialIndex(int idx) {
            if ((idx & ~0xffff) != 0) {
                throw new IllegalArgumentException("initial index " + idx + " is not a u16");
            }
            this.initialIndex = idx;
            return this;
        }

        /** Indirect tables of {@code entriesPerTable} descriptors, one per head, from {@code gpa} (16-aligned). */
        public Builder indirectPool(long gpa, int entriesPerTable) {
            if ((gpa & 15) != 0 || entriesPerTable < 1 || entriesPerTable > SplitRing.MAX_INDIRECT_ENTRIES) {
                throw new IllegalArgumentException("indirect pool at 0x" + Long.toHexString(gpa) + " of "
                        + entriesPerTable + " entries per table");
            }
            this.indirectPool = gpa;
            this.indirectEntries = entriesPerTable;
            return this;
        }

        /** Zeroes the three areas, writes the initial indices, and returns the queue. */
        public DriverQueue build() {
            int n = config.size();
            if (!SplitRing.validSize(n)) {
                throw new IllegalArgumentException("queue size " + n + " is not a power of two up to " + SplitRing.MAX_SIZE);
            }
            if (indirectEntries > 0 && !memory.isRam(indirectPool, (long) n * indirectEntries * SplitRing.DESC_SIZE)) {
                throw new IllegalArgumentException("indirect pool at 0x" + Long.toHexString(indirectPool) + " is not in RAM");
            }
            memory.fill(config.descGpa(), SplitRing.descTableBytes(n), (byte) 0);
            memory.fill(config.availGpa(), SplitRing.availBytes(n), (byte) 0);
            memory.fill(config.usedGpa(), SplitRing.usedBytes(n), (byte) 0);
            memory.writeU16(SplitRing.availIdx(config.availGpa()), initialIndex);
            memory.writeU16(SplitRing.usedEvent(config.availGpa(), n), initialIndex);
            memory.writeU16(SplitRing.usedIdx(config.usedGpa()), initialIndex);
            memory.writeU16(SplitRing.availEvent(config.usedGpa(), n), initialIndex);
            return new DriverQueue(this);
        }
    }
}
