package dev.ferry.vhostuser.backend;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sys;
import dev.ferry.virtio.queue.QueueObserver;
import dev.ferry.vhostuser.proto.VhostUserException;

import java.lang.invoke.VarHandle;

/**
 * The blk inflight region (INFLIGHT_SHMFD): shared memory the front-end keeps across back-end
 * restarts, recording which descriptor chains the back-end holds. Split-ring layout per queue,
 * each queue's part 64-byte aligned:
 * <pre>
 *   0   u64 features
 *   8   u16 version (1)
 *   10  u16 desc_num (queue size N)
 *   12  u16 last_batch_head
 *   14  u16 used_idx
 *   16  desc[N]: u8 inflight | u8 pad[5] | u16 next | u64 counter      (16 bytes each)
 * </pre>
 * A popped chain's head gets {@code inflight = 1} and the next counter value. A completion is a
 * batch of one ({@link QueueObserver}): {@code last_batch_head} is stored, then the used element
 * and {@code used.idx}, then {@code inflight = 0} and {@code used_idx}; a successor that finds
 * {@code used_idx} behind the ring's knows the last batch head was published. The trackers run
 * on the device's loop.
 * Owns its fd and mapping.
 */
final class InflightRegion implements AutoCloseable {
    private static final int HEADER = 16;
    private static final int DESC = 16;
    private final Fd fd;
    private final Mapping mapping;
    private final int queues;
    private final int queueSize;
    private final long stride;
    private long counter;

    private InflightRegion(Fd fd, Mapping mapping, int queues, int queueSize) {
        this.fd = fd;
        this.mapping = mapping;
        this.queues = queues;
        this.queueSize = queueSize;
        this.stride = queueBytes(queueSize);
        for (int q = 0; q < queues; q++) {
            for (int i = 0; i < queueSize; i++) {
                counter = Math.max(counter, NativeMemory.getLong(queueBase(q) + HEADER + (long) i * DESC + 8));
            }
        }
    }

    static long queueBytes(int queueSize) {
        return (HEADER + (long) DESC * queueSize + 63) & ~63L;
    }

    /** GET_INFLIGHT_FD: a fresh zeroed region for {@code queues} queues of {@code queueSize}. */
    static InflightRegion create(int queues, int queueSize) {
        long size = queues * queueBytes(queueSize);
        Fd fd = Sys.memfdCreate("ferry-vhost-inflight", Linux.MFD_CLOEXEC);
        try {
            Sys.ftruncate(fd, size);
            InflightRegion r = new InflightRegion(fd, Mapping.shared(fd, 0, size), queues, queueSize);
            for (int q = 0; q < queues; q++) {
                long b = r.queueBase(q);
                NativeMemory.putShort(b + 8, (short) 1);
                NativeMemory.putShort(b + 10, (short) queueSize);
            }
            return r;
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        }
    }

    /** SET_INFLIGHT_FD: maps the front-end's region (fd owned from here on), checked against its file. */
    static InflightRegion attach(Fd fd, long size, long offset, int queues, int queueSize) throws VhostUserException {
        try {
            long need = queues * queueBytes(queueSize);
            long fileSize = Sys.fstatSizeAndAllocated(fd)[0];
            if (size < need || offset < 0 || (offset & 4095) != 0 || offset > fileSize || size > fileSize - offset) {
                throw new VhostUserException("SET_INFLIGHT_FD region of " + size + " bytes at offset " + offset
                        + " in a file of " + fileSize + " bytes cannot hold " + queues + " queue(s) of " + queueSize
                        + " (" + need + " bytes)");
            }
            return new InflightRegion(fd, Mapping.shared(fd, offset, need), queues, queueSize);
        } catch (RuntimeException e) {
            fd.close();
            throw new VhostUserException("SET_INFLIGHT_FD: cannot map the region: " + e.getMessage(), e);
        } catch (VhostUserException e) {
            fd.close();
            throw e;
        }
    }

    Fd fd() {
        return fd;
    }

    long size() {
        return queues * stride;
    }

    int queues() {
        return queues;
    }

    int queueSize() {
        return queueSize;
    }

    private long queueBase(int q) {
        return mapping.address() + q * stride;
    }

    /** Chains marked in flight on queue {@code q} now: those a previous back-end left unfinished. */
    int inflightCount(int q) {
        long d = queueBase(q) + HEADER;
        int n = 0;
        for (int i = 0; i < queueSize; i++) {
            n += NativeMemory.getByte(d + (long) i * DESC) != 0 ? 1 : 0;
        }
        return n;
    }

    /**
     * The heads a previous back-end left in flight on queue {@code q}, oldest first (by counter),
     * after the specification's fix-up: when the region's {@code used_idx} differs from the ring's
     * {@code used.idx}, the last batch was published but not recorded, so its head is not in
     * flight any more. Only heads below {@code ringSize} count.
     */
    int[] pendingHeads(int q, int ringUsedIdx, int ringSize) {
        long b = queueBase(q);
        if (Short.toUnsignedInt(NativeMemory.getShort(b + 14)) != ringUsedIdx) {
            int last = Short.toUnsignedInt(NativeMemory.getShort(b + 12));
            if (last < queueSize) {
                NativeMemory.putByte(b + HEADER + (long) last * DESC, (byte) 0);
            }
            NativeMemory.putShort(b + 14, (short) ringUsedIdx);
        }
        java.util.List<long[]> pending = new java.util.ArrayList<>();
        for (int i = 0; i < Math.min(queueSize, ringSize); i++) {
            long d = b + HEADER + (long) i * DESC;
            if (NativeMemory.getByte(d) != 0) {
                pending.add(new long[] {NativeMemory.getLong(d + 8), i});
            }
        }
        pending.sort(java.util.Comparator.comparingLong(x -> x[0]));
        return pending.stream().mapToInt(x -> (int) x[1]).toArray();
    }

    /**
     * A copy of the region as it is now, in a fresh memfd: what a successor would find if this
     * process died at this instant (for tests that stop it at every step).
     */
    InflightRegion snapshot() {
        InflightRegion copy = create(queues, queueSize);
        NativeMemory.copy(mapping.address(), copy.mapping.address(), size());
        copy.counter = counter;
        return copy;
    }

    /** The tracker for queue {@code q}, or null when the region does not cover it or a ring of this size. */
    QueueObserver tracker(int q, int ringSize) {
        if (q >= queues || ringSize > queueSize) {
            return null;
        }
        long b = queueBase(q);
        return new QueueObserver() {
            // The region must tell a successor the truth whenever this process dies, so its
            // stores are ordered against each other and against used.idx (libvhost-user's
            // inflight_get, pre_put and post_put).
            @Override
            public void popped(int head) {
                long d = b + HEADER + (long) head * DESC;
                NativeMemory.putLong(d + 8, ++counter);
                NativeMemory.putByte(d, (byte) 1);
                VarHandle.storeStoreFence();
            }

            @Override
            public void beforePut(int head) {
                NativeMemory.putShort(b + 12, (short) head);
                VarHandle.storeStoreFence(); // before the used element and used.idx
            }

            @Override
            public void afterPut(int head, int usedIdx) {
                VarHandle.storeStoreFence(); // after used.idx
                NativeMemory.putByte(b + HEADER + (long) head * DESC, (byte) 0);
                VarHandle.storeStoreFence();
                NativeMemory.putShort(b + 14, (short) usedIdx);
            }
        };
    }

    @Override
    public void close() {
        mapping.close();
        fd.close();
    }
}
