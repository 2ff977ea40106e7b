package dev.ferry.virtio.queue;

import dev.ferry.core.memory.DeviceMemory;

import java.util.List;

/**
 * One request the driver made available: the head descriptor's index (the id the device returns
 * in the used ring) and the buffers it names, device-readable ones first, then device-writable
 * ones, each already checked to lie in guest RAM. Built by {@link SplitVirtqueue#pop()}; read
 * and written through {@link #reader()} and {@link #writer()}.
 *
 * <p>Immutable. Its buffers belong to the driver again once the chain is pushed to the used ring;
 * the device must not touch them after that.
 */
public final class DescriptorChain {
    private final SplitVirtqueue owner;
    private final DeviceMemory memory;
    private final int head;
    private final List<Segment> readable;
    private final List<Segment> writable;
    private final long readableBytes;
    private final long writableBytes;
    private final int descriptors;
    private final boolean indirect;

    DescriptorChain(SplitVirtqueue owner, DeviceMemory memory, int head, List<Segment> readable,
                    List<Segment> writable, int descriptors, boolean indirect) {
        this.owner = owner;
        this.memory = memory;
        this.head = head;
        this.readable = List.copyOf(readable);
        this.writable = List.copyOf(writable);
        this.readableBytes = sum(readable);
        this.writableBytes = sum(writable);
        this.descriptors = descriptors;
        this.indirect = indirect;
    }

    /**
     * A chain rebuilt from a migration stream (a request in flight at the source, which the
     * destination completes by head): no queue and no memory of its own, so it has no
     * {@link #reader()} or {@link #writer()}; it can be pushed to any queue of its device. The
     * caller checks the segments against guest RAM; writes through {@code DeviceMemory} are
     * bounds-checked anyway.
     */
    public static DescriptorChain restored(int head, List<Segment> readable, List<Segment> writable) {
        if (head < 0 || head >= SplitRing.MAX_SIZE) {
            throw new IllegalArgumentException("restored chain head " + head + " is not a queue index");
        }
        for (Segment s : readable) {
            checkRestored(s);
        }
        for (Segment s : writable) {
            checkRestored(s);
        }
        return new DescriptorChain(null, null, head, readable, writable, readable.size() + writable.size(), false);
    }

    private static void checkRestored(Segment s) {
        if (s.length() < 1 || s.length() > 0xffff_ffffL || Long.compareUnsigned(s.gpa() + s.length(), s.gpa()) < 0) {
            throw new IllegalArgumentException("restored segment " + s + " is not a descriptor buffer");
        }
    }

    private static long sum(List<Segment> segments) {
        long n = 0;
        for (Segment s : segments) {
            n += s.length();
        }
        return n;
    }

    /** The head descriptor's index: the {@code id} of this chain's used element. */
    public int head() {
        return head;
    }

    /** Device-readable buffers (the driver's request), in chain order. */
    public List<Segment> readable() {
        return readable;
    }

    /** Device-writable buffers (room for the device's reply), in chain order. */
    public List<Segment> writable() {
        return writable;
    }

    public long readableBytes() {
        return readableBytes;
    }

    /** The most the device may report as written when it pushes this chain. */
    public long writableBytes() {
        return writableBytes;
    }

    /** Descriptors walked, counting the one that points to an indirect table (segments, if restored). */
    public int descriptorCount() {
        return descriptors;
    }

    /** True when the buffers came from an indirect table. */
    public boolean indirect() {
        return indirect;
    }

    /** A fresh cursor over the device-readable bytes, from the first. */
    public ChainReader reader() {
        return new ChainReader(this, requireMemory());
    }

    /** A fresh cursor over the device-writable bytes, from the first; writes are dirty-logged. */
    public ChainWriter writer() {
        return new ChainWriter(this, requireMemory());
    }

    private DeviceMemory requireMemory() {
        if (memory == null) {
            throw new IllegalStateException("chain head " + head + " was restored from a migration stream: "
                    + "it has no guest memory to read or write through");
        }
        return memory;
    }

    /** The queue it was popped from; null for a {@link #restored} chain. */
    SplitVirtqueue owner() {
        return owner;
    }

    String queueName() {
        return owner != null ? owner.name() : "restored chain";
    }

    @Override
    public String toString() {
        return "chain head " + head + " (" + descriptors + " descriptors" + (indirect ? ", indirect" : "")
                + "): readable " + readable + ", writable " + writable;
    }
}
