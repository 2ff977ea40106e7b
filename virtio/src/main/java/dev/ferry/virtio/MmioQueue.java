package dev.ferry.virtio;

import dev.ferry.core.sys.EventFd;
import dev.ferry.core.sys.Linux;
import dev.ferry.virtio.queue.SplitVirtqueue;

/**
 * One queue of a {@link VirtioMmio} device: its registers as the driver wrote them, the ring that
 * serves it once ready, and its doorbell (an eventfd the register handler — or KVM's ioeventfd —
 * signals). Guarded by the transport's lock; the eventfd is thread-safe, and the doorbell reads
 * the field without the lock.
 */
final class MmioQueue {
    final int index;
    int num;
    boolean ready;
    long desc;
    long avail;
    long used;
    SplitVirtqueue ring;
    /** Replaced (and the old one closed) by {@link VirtioMmio#renewKick} for an external back-end. */
    volatile EventFd kick = new EventFd(Linux.EFD_NONBLOCK);
    AutoCloseable kickRegistration;

    MmioQueue(int index, int maxSize) {
        this.index = index;
        this.num = maxSize;
    }

    /**
     * A write of half of a ring address (which: 0 desc, 1 driver area, 2 device area); ignored
     * while the queue is ready, as the registers are frozen then.
     */
    void setAddress(int which, boolean high, int v) {
        if (ready) {
            return;
        }
        long word = Integer.toUnsignedLong(v);
        long keep = high ? 0xffffffffL : ~0xffffffffL;
        long put = high ? word << 32 : word;
        switch (which) {
            case 0 -> desc = desc & keep | put;
            case 1 -> avail = avail & keep | put;
            default -> used = used & keep | put;
        }
    }
}
