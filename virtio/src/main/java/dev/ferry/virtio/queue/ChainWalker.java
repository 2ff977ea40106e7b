package dev.ferry.virtio.queue;

import dev.ferry.core.memory.DeviceMemory;

import java.util.ArrayList;
import java.util.List;

import static dev.ferry.virtio.queue.SplitRing.DESC_F_INDIRECT;
import static dev.ferry.virtio.queue.SplitRing.DESC_F_NEXT;
import static dev.ferry.virtio.queue.SplitRing.DESC_F_WRITE;

/**
 * Walks one descriptor chain from its head and refuses everything a hostile driver can put in a
 * descriptor table (split-ring.tex 2.7.5, QEMU {@code virtqueue_split_pop}). Reads only: a
 * refused chain leaves guest memory untouched. Every loop is bounded — at most N descriptors in
 * the table, then at most the indirect table's entries — so a looped chain ends in an error, not
 * a hang. Each descriptor is read once into locals, so a driver rewriting the table meanwhile
 * cannot make a checked value differ from the one used.
 *
 * <p>A chain may end in one descriptor that points to an indirect table (usually it is the head
 * and only descriptor; the spec also allows direct descriptors before it). Not thread-safe; runs
 * on the device's event-loop thread inside {@link SplitVirtqueue#pop()}.
 */
final class ChainWalker {
    private static final long U32_MAX = 0xffff_ffffL;

    private final SplitVirtqueue owner;
    private final DeviceMemory memory;
    private final long descTable;
    private final int size;
    private final boolean indirectNegotiated;

    ChainWalker(SplitVirtqueue owner, DeviceMemory memory, QueueConfig config) {
        this.owner = owner;
        this.memory = memory;
        this.descTable = config.descGpa();
        this.size = config.size();
        this.indirectNegotiated = config.indirectDesc();
    }

    /** The chain from {@code head} (already checked to be below the queue size). */
    DescriptorChain walk(int head) {
        List<Segment> readable = new ArrayList<>();
        List<Segment> writable = new ArrayList<>();
        long table = descTable;
        int entries = size;
        boolean inIndirect = false;
        long totalBytes = 0;
        int count = 0;
        int seen = 0;
        int i = head;
        while (true) {
            if (++seen > entries) {
                throw refuse(inIndirect
                        ? "indirect table of head " + head + " loops: more than its " + entries + " entries chained"
                        : "descriptor chain from head " + head + " loops or is longer than the queue size " + size);
            }
            long addr = memory.readU64(SplitRing.descAddr(table, i));
            long len = Integer.toUnsignedLong(memory.readU32(SplitRing.descLen(table, i)));
            int flags = memory.readU16(SplitRing.descFlags(table, i));
            int next = memory.readU16(SplitRing.descNext(table, i));
            count++;
            String where = inIndirect ? "indirect descriptor " + i + " of head " + head
                    : "descriptor " + i + " (head " + head + ")";

            if ((flags & DESC_F_INDIRECT) != 0) {
                if (inIndirect) {
                    throw refuse(where + " has INDIRECT: an indirect table inside an indirect table");
                }
                if (!indirectNegotiated) {
                    throw refuse(where + " has INDIRECT but VIRTIO_RING_F_INDIRECT_DESC was not negotiated");
                }
                if ((flags & DESC_F_NEXT) != 0) {
                    throw refuse(where + " has both INDIRECT and NEXT");
                }
                if (len == 0 || len % SplitRing.DESC_SIZE != 0) {
                    throw refuse(where + ": indirect table length " + len + " is not a non-zero multiple of 16");
                }
                if (len / SplitRing.DESC_SIZE > SplitRing.MAX_INDIRECT_ENTRIES) {
                    throw refuse(where + ": indirect table of " + len / SplitRing.DESC_SIZE
                            + " entries exceeds " + SplitRing.MAX_INDIRECT_ENTRIES);
                }
                if (!memory.isRam(addr, len)) {
                    throw refuse(where + ": indirect table " + new Segment(addr, len) + " is not in RAM");
                }
                table = addr;
                entries = (int) (len / SplitRing.DESC_SIZE);
                inIndirect = true;
                seen = 0;
                i = 0;
                continue;
            }
            if (len == 0) {
                throw refuse(where + " has length 0 (zero-sized buffers are not allowed)");
            }
            if (Long.compareUnsigned(addr + len, addr) < 0) {
                throw refuse(where + ": buffer " + new Segment(addr, len) + " wraps past the end of the address space");
            }
            if (!memory.isRam(addr, len)) {
                throw refuse(where + ": buffer " + new Segment(addr, len) + " is not in RAM");
            }
            totalBytes += len;
            if (totalBytes > U32_MAX) {
                throw refuse("chain from head " + head + " is " + totalBytes + " bytes at " + where
                        + ", more than a u32 length can hold");
            }
            if ((flags & DESC_F_WRITE) != 0) {
                writable.add(new Segment(addr, len));
            } else if (!writable.isEmpty()) {
                throw refuse(where + " is device-readable after a device-writable descriptor"
                        + " (Incorrect order for descriptors)");
            } else {
                readable.add(new Segment(addr, len));
            }
            if ((flags & DESC_F_NEXT) == 0) {
                return new DescriptorChain(owner, memory, head, readable, writable, count, inIndirect);
            }
            if (next >= entries) {
                throw refuse(where + ": next " + next + " is beyond "
                        + (inIndirect ? "the indirect table's " + entries + " entries" : "the queue size " + size));
            }
            i = next;
        }
    }

    private VirtqueueError refuse(String reason) {
        return new VirtqueueError(owner.name(), reason);
    }
}
