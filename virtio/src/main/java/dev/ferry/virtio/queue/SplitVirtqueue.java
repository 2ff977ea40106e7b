package dev.ferry.virtio.queue;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.memory.GuestMemoryException;

import static dev.ferry.virtio.queue.SplitRing.distance;
import static dev.ferry.virtio.queue.SplitRing.hex16;

/**
 * The device side of one split virtqueue (layout in {@link SplitRing}): takes the chains the
 * driver makes available, returns them through the used ring, and decides when to interrupt.
 * QEMU's {@code hw/virtio/virtio.c} is the reference behaviour.
 *
 * <pre>
 *   loop on the device's event loop, after a kick:
 *     setNotificationEnabled(false)
 *     do {
 *       while ((c = pop()) != null) { handle c; push(c, written) }   // several pushes,
 *       publish(); if (shouldNotify()) interrupt                    // then one publish
 *     } while (setNotificationEnabled(true))                        // re-check for races
 * </pre>
 *
 * <p>State: {@code lastAvailIdx} (next avail entry to pop), {@code usedIdx} (the device's copy of
 * the published {@code used.idx}), pushes not yet published, and the {@code used.idx} at the last
 * interrupt decision (EVENT_IDX). All indices are free-running u16.
 *
 * <p>Every driver mistake is a {@link VirtqueueError} that also marks the queue broken: later
 * calls throw until the driver resets the device and the transport builds a new queue. A refused
 * chain leaves guest memory and the indices as they were.
 *
 * <p>Threads: {@link #enable} runs on the transport's thread when the driver sets the queue
 * ready; everything else on the device's event-loop thread; {@link #restore} and the migration
 * getters while the device is stopped. Not thread-safe.
 */
public final class SplitVirtqueue {
    private final DeviceMemory memory;
    private final String name;
    private final int index;
    private final QueueConfig config;
    private final int size;
    private final long avail;
    private final long used;
    private final boolean eventIdx;
    private final ChainWalker walker;

    private int lastAvailIdx;
    private int usedIdx;
    private int pendingUsed;
    private int signalledUsed;
    private boolean signalledUsedValid;
    private boolean notificationsEnabled = true;
    private String broken;
    private QueueObserver observer;
    /** Heads to hand out again before the available ring ({@link #resubmit}), and the next one. */
    private int[] resubmit = new int[0];
    private int resubmitNext;

    private SplitVirtqueue(DeviceMemory memory, String name, int index, QueueConfig config) {
        checkAreas(memory, name, config);
        this.memory = memory;
        this.name = name;
        this.index = index;
        this.config = config;
        this.size = config.size();
        this.avail = config.availGpa();
        this.used = config.usedGpa();
        this.eventIdx = config.eventIdx();
        this.walker = new ChainWalker(this, memory, config);
    }

    /**
     * Checks the driver's configuration — size a power of two up to 32768, each area in RAM with
     * its alignment (descriptors 16, avail 2, used 4) — and returns the queue with both indices 0,
     * as after a reset. {@code name} prefixes every error (e.g. {@code "virtio-blk0 vq0"});
     * {@code index} is the queue's number in the device (QEMU's load messages use it).
     */
    public static SplitVirtqueue enable(DeviceMemory memory, String name, int index, QueueConfig config) {
        return new SplitVirtqueue(memory, name, index, config);
    }

    /** The transport's form of {@link #enable}: queue {@code index} named {@code "vq<index>"}. */
    public SplitVirtqueue(DeviceMemory memory, int index, int size, long descGpa, long availGpa, long usedGpa,
                          long features) {
        this(memory, "vq" + index, index, new QueueConfig(size, descGpa, availGpa, usedGpa, features));
    }

    static void checkAreas(DeviceMemory memory, String name, QueueConfig c) {
        if (!SplitRing.validSize(c.size())) {
            throw new VirtqueueError(name, "queue size " + c.size() + " is not a power of two from 1 to "
                    + SplitRing.MAX_SIZE);
        }
        checkArea(memory, name, "descriptor table", c.descGpa(), SplitRing.descTableBytes(c.size()), SplitRing.DESC_ALIGN);
        checkArea(memory, name, "available ring", c.availGpa(), SplitRing.availBytes(c.size()), SplitRing.AVAIL_ALIGN);
        checkArea(memory, name, "used ring", c.usedGpa(), SplitRing.usedBytes(c.size()), SplitRing.USED_ALIGN);
    }

    private static void checkArea(DeviceMemory memory, String name, String what, long gpa, long bytes, int align) {
        if ((gpa & (align - 1)) != 0) {
            throw new VirtqueueError(name, what + " at 0x" + Long.toHexString(gpa) + " is not " + align + "-byte aligned");
        }
        if (!memory.isRam(gpa, bytes)) {
            throw new VirtqueueError(name, what + " " + new Segment(gpa, bytes) + " is not in RAM");
        }
    }

    // ---- taking requests ----

    /**
     * The next available chain, or null when the driver has made none available. Reads
     * {@code avail.idx} with acquire ordering, so the ring entry and descriptors behind it are
     * seen as the driver wrote them. With EVENT_IDX and notifications enabled, asks the driver to
     * kick for the entry after this one ({@code avail_event = lastAvailIdx}).
     */
    public DescriptorChain pop() {
        checkUsable();
        if (resubmitNext < resubmit.length) {
            return popResubmitted();
        }
        int pending = available();
        if (pending == 0) {
            return null;
        }
        if (inFlight() >= size) {
            throw markBroken(inFlight() + " chains are already in flight in a queue of " + size
                    + " and the driver offers more (Virtqueue size exceeded)");
        }
        DescriptorChain chain;
        try {
            int head = memory.readU16(SplitRing.availRing(avail, size, lastAvailIdx));
            if (head >= size) {
                throw new VirtqueueError(name, "avail.ring[" + (lastAvailIdx & (size - 1)) + "] (avail index "
                        + hex16(lastAvailIdx) + ") names head " + head + ", not below the queue size " + size);
            }
            chain = walker.walk(head);
        } catch (VirtqueueError e) {
            broken = e.reason();
            throw e;
        } catch (GuestMemoryException e) {
            throw markBroken("guest memory changed under the queue: " + e.getMessage());
        }
        lastAvailIdx = (lastAvailIdx + 1) & 0xffff;
        if (eventIdx && notificationsEnabled) {
            memory.writeU16(SplitRing.availEvent(used, size), lastAvailIdx);
        }
        if (observer != null) {
            observer.popped(chain.head());
        }
        return chain;
    }

    /**
     * How many chains the driver has made available and the device not yet popped. More than the
     * queue size means the driver corrupted {@code avail.idx}: an error.
     */
    public int available() {
        checkUsable();
        int availIdx = memory.loadU16Acquire(SplitRing.availIdx(avail));
        int ahead = distance(availIdx, lastAvailIdx);
        if (ahead > size) {
            throw markBroken(String.format("avail.idx %s is 0x%x ahead of last_avail_idx %s in a queue of %d",
                    hex16(availIdx), ahead, hex16(lastAvailIdx), size));
        }
        return ahead;
    }

    // ---- returning them ----

    /**
     * Writes the used element {@code {chain.head(), writtenLength}} at the next used slot. The
     * driver sees it only after {@link #publish()}. {@code writtenLength} is at most what the
     * chain can hold.
     */
    public void push(DescriptorChain chain, long writtenLength) {
        if (chain.owner() != this && chain.owner() != null) {
            throw new IllegalArgumentException(chain + " was not popped from " + name);
        }
        if (writtenLength < 0 || writtenLength > chain.writableBytes()) {
            throw new IllegalArgumentException(name + ": " + writtenLength + " bytes reported written into chain head "
                    + chain.head() + " with " + chain.writableBytes() + " device-writable bytes");
        }
        push(chain.head(), writtenLength);
    }

    /** As {@link #push(DescriptorChain, long)}, by head index (a request restored after migration). */
    public void push(int head, long writtenLength) {
        checkUsable();
        if (head < 0 || head >= size || writtenLength < 0 || writtenLength > 0xffff_ffffL) {
            throw new IllegalArgumentException(name + ": used element {" + head + ", " + writtenLength + "} out of range");
        }
        if (inFlight() == 0) {
            throw new IllegalStateException(name + ": push of head " + head + " with no chain in flight");
        }
        QueueObserver o = observer;
        if (o != null) {
            o.beforePut(head);
        }
        long elem = SplitRing.usedElem(used, size, usedIdx + pendingUsed);
        memory.writeU32(elem, head);
        memory.writeU32(elem + 4, (int) writtenLength);
        pendingUsed++;
        if (o != null) {
            publishPending(); // a batch of one: see QueueObserver
            o.afterPut(head, usedIdx);
        }
    }

    /**
     * Makes every pushed element visible: stores {@code used.idx} with release ordering, after
     * the elements. Does nothing when nothing was pushed.
     */
    public void publish() {
        checkUsable();
        if (pendingUsed == 0) {
            return;
        }
        publishPending();
    }

    private void publishPending() {
        int old = usedIdx;
        usedIdx = (usedIdx + pendingUsed) & 0xffff;
        pendingUsed = 0;
        memory.storeU16Release(SplitRing.usedIdx(used), usedIdx);
        if ((short) (usedIdx - signalledUsed) < distance(usedIdx, old)) {
            signalledUsedValid = false; // signalledUsed fell more than 2^15 behind: its order is lost
        }
    }

    /**
     * Whether to interrupt the driver for what was published since the last decision. After a
     * full fence (the driver's suppression must be read after {@code used.idx} is visible): with
     * EVENT_IDX, {@code vring_need_event(used_event, usedIdx, usedIdx at the last decision)}, true
     * unconditionally the first time after enable or restore; without, unless the driver set
     * {@code avail.flags} NO_INTERRUPT. Call once per {@link #publish()}.
     */
    public boolean shouldNotify() {
        checkUsable();
        memory.fullFence();
        if (!eventIdx) {
            return (memory.readU16(SplitRing.availFlags(avail)) & SplitRing.AVAIL_F_NO_INTERRUPT) == 0;
        }
        int usedEvent = memory.readU16(SplitRing.usedEvent(avail, size));
        boolean valid = signalledUsedValid;
        int old = signalledUsed;
        signalledUsedValid = true;
        signalledUsed = usedIdx;
        return !valid || SplitRing.needEvent(usedEvent, usedIdx, old);
    }

    /**
     * Asks the driver to kick (or not) when it makes buffers available. With EVENT_IDX, enabling
     * writes {@code avail_event = lastAvailIdx} and disabling writes {@code lastAvailIdx − 1}, an
     * index the driver has passed, so it does not kick; without, sets or clears {@code used.flags}
     * NO_NOTIFY. After enabling, fences and returns whether buffers are already available — ones
     * that arrived while notifications were off, for which no kick will come. Disabling returns
     * false.
     */
    public boolean setNotificationEnabled(boolean enable) {
        checkUsable();
        notificationsEnabled = enable;
        if (eventIdx) {
            memory.writeU16(SplitRing.availEvent(used, size), enable ? lastAvailIdx : lastAvailIdx - 1);
        } else {
            memory.writeU16(SplitRing.usedFlags(used), enable ? 0 : SplitRing.USED_F_NO_NOTIFY);
        }
        if (!enable) {
            return false;
        }
        memory.fullFence();
        return available() != 0;
    }

    public boolean notificationsEnabled() {
        return notificationsEnabled;
    }

    /**
     * With EVENT_IDX, makes the next {@link #shouldNotify()} true whatever {@code used_event} says
     * (the first notify after a load or resume); without EVENT_IDX, NO_INTERRUPT still applies.
     */
    public void forceNextNotify() {
        signalledUsedValid = false;
    }

    /**
     * Un-pops the last {@code n} popped chains (QEMU {@code virtqueue_rewind}), so they are popped
     * again — a device dropping requests it could not start. False, changing nothing, when fewer
     * than {@code n} chains are popped and not pushed.
     */
    public boolean rewind(int n) {
        checkUsable();
        if (n < 0 || n > inFlight()) {
            return false;
        }
        lastAvailIdx = (lastAvailIdx - n) & 0xffff;
        if (eventIdx && notificationsEnabled) {
            memory.writeU16(SplitRing.availEvent(used, size), lastAvailIdx);
        }
        return true;
    }

    /**
     * Chains a previous device instance took and never completed (a vhost-user back-end that
     * restarted, reading its predecessor's inflight region): {@link #pop} returns them first, in
     * the given order, and they count as in flight from now on — {@code lastAvailIdx} becomes
     * {@code usedIdx + heads.length}, as libvhost-user sets it. Each head must be below the queue
     * size and appear once; call right after {@link #restore}.
     *
     * @throws VirtqueueError when a head is out of range or repeated, or more heads than the queue holds
     */
    public void resubmit(int[] heads) {
        checkUsable();
        boolean[] seen = new boolean[size];
        if (heads.length > size) {
            throw markBroken(heads.length + " chains to resubmit in a queue of " + size);
        }
        for (int h : heads) {
            if (h < 0 || h >= size || seen[h]) {
                throw markBroken("resubmitted head " + h + " is " + (h < 0 || h >= size ? "not below the queue size "
                        + size : "named twice"));
            }
            seen[h] = true;
        }
        this.resubmit = heads.clone();
        this.resubmitNext = 0;
        this.lastAvailIdx = (usedIdx + heads.length) & 0xffff;
    }

    private DescriptorChain popResubmitted() {
        int head = resubmit[resubmitNext++];
        DescriptorChain chain;
        try {
            chain = walker.walk(head);
        } catch (VirtqueueError e) {
            broken = e.reason();
            throw e;
        } catch (GuestMemoryException e) {
            throw markBroken("guest memory changed under the queue: " + e.getMessage());
        }
        if (observer != null) {
            observer.popped(head);
        }
        return chain;
    }

    /** Installs {@code o} to see every later pop, push and publish (null removes it). */
    public void observe(QueueObserver o) {
        this.observer = o;
    }

    // ---- migration ----

    public int lastAvailIdx() {
        return lastAvailIdx;
    }

    /** The device's copy of the published {@code used.idx}. */
    public int usedIdx() {
        return usedIdx;
    }

    /** Chains popped and not yet published: {@code (u16)(lastAvailIdx − usedIdx)}. */
    public int inUse() {
        return distance(lastAvailIdx, usedIdx);
    }

    /** Chains popped and not yet pushed. */
    public int inFlight() {
        return distance(lastAvailIdx, usedIdx + pendingUsed);
    }

    /** Elements pushed and not yet published. */
    public int pendingUsed() {
        return pendingUsed;
    }

    /**
     * Sets the indices a stopped source device had (after {@link #validateLoaded} accepted them).
     * Forgets unpublished pushes and the last interrupt decision, so the first
     * {@link #shouldNotify()} after a restore is true. Writes nothing to guest memory.
     */
    public void restore(int lastAvailIdx, int usedIdx) {
        if ((lastAvailIdx & ~0xffff) != 0 || (usedIdx & ~0xffff) != 0) {
            throw new IllegalArgumentException(name + ": indices " + lastAvailIdx + "/" + usedIdx + " are not u16");
        }
        this.lastAvailIdx = lastAvailIdx;
        this.usedIdx = usedIdx;
        this.pendingUsed = 0;
        this.signalledUsedValid = false;
        this.notificationsEnabled = true;
    }

    /**
     * Restores this queue from a migration stream's {@code last_avail_idx}, taking {@code used.idx}
     * from guest RAM, after QEMU's load checks ({@link LoadedQueue#check}). Throws
     * {@link VirtqueueError}: with {@link VirtqueueError#fatalOnLoad()} the load must fail and the
     * queue is unchanged; without, the queue is restored but broken (QEMU's {@code virtio_error})
     * and the load goes on.
     */
    public LoadedQueue restoreFromGuest(int lastAvailIdx) {
        LoadedQueue l = LoadedQueue.check(memory, name, index, config, lastAvailIdx);
        restore(l.lastAvailIdx(), l.usedIdx());
        if (!l.consistent()) {
            throw markBroken(l.inconsistency());
        }
        return l;
    }

    /**
     * QEMU's load-time checks of one queue against the guest RAM that arrived before it, for a
     * queue not built yet; see {@link LoadedQueue#check}. Throws {@link VirtqueueError} (fatal on
     * load) when the load must fail.
     */
    public static LoadedQueue validateLoaded(DeviceMemory memory, String device, int vqIndex, QueueConfig config,
                                             int lastAvailIdx) {
        return LoadedQueue.check(memory, device, vqIndex, config, lastAvailIdx);
    }

    // ---- state ----

    /** Marks the queue broken (a device-level protocol error, a load inconsistency); returns the error. */
    public VirtqueueError markBroken(String reason) {
        if (broken == null) {
            broken = reason;
        }
        return new VirtqueueError(name, reason);
    }

    public boolean isBroken() {
        return broken != null;
    }

    /** Why the queue is broken, or null. */
    public String brokenReason() {
        return broken;
    }

    public String name() {
        return name;
    }

    /** The queue's number in its device. */
    public int index() {
        return index;
    }

    public QueueConfig config() {
        return config;
    }

    public int size() {
        return size;
    }

    private void checkUsable() {
        if (broken != null) {
            throw new VirtqueueError(name, "queue is broken (" + broken + "); the driver must reset the device");
        }
    }

    @Override
    public String toString() {
        return name + " (" + config + ", last_avail_idx " + hex16(lastAvailIdx) + ", used_idx " + hex16(usedIdx)
                + (broken != null ? ", broken: " + broken : "") + ")";
    }
}
