package dev.ferry.vhostuser.check;

import dev.ferry.core.sys.EventFd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sys;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.QueueConfig;
import dev.ferry.virtio.queue.SplitRing;

import java.util.List;

/**
 * One driver-side virtqueue of the check with its kick and call eventfds: adds chains, kicks the
 * back-end, and waits for used elements on the call eventfd with a deadline, so a back-end that
 * stops serving costs the check a timeout, never a hang. Owns both eventfds and a small native
 * poll buffer. Used by the check's thread only.
 */
final class CheckRing implements AutoCloseable {
    private final CheckGuest guest;
    private final int index;
    private final QueueConfig config;
    private final EventFd kick = new EventFd(Linux.EFD_NONBLOCK);
    private final EventFd call = new EventFd(Linux.EFD_NONBLOCK);
    private final long pollfd = NativeMemory.allocate(Linux.POLLFD_SIZE);
    private DriverQueue queue;

    CheckRing(CheckGuest guest, int index, long features) {
        this.guest = guest;
        this.index = index;
        this.config = CheckGuest.queue(index, features);
        this.queue = DriverQueue.builder(guest.memory(), config).build();
    }

    int index() {
        return index;
    }

    QueueConfig config() {
        return config;
    }

    EventFd kickFd() {
        return kick;
    }

    EventFd callFd() {
        return call;
    }

    DriverQueue queue() {
        return queue;
    }

    /** Starts the ring over at index 0 (a fresh connection: the back-end starts at base 0). */
    void reset() {
        queue = DriverQueue.builder(guest.memory(), config).build();
    }

    int add(List<DriverQueue.Buffer> out, List<DriverQueue.Buffer> in) {
        return queue.add(out, in, false);
    }

    void kick() {
        kick.signal();
    }

    /** {@code used.idx} as the back-end last published it. */
    int usedIdx() {
        return guest.memory().loadU16Acquire(SplitRing.usedIdx(config.usedGpa()));
    }

    /** The next used element, waiting for it at most {@code timeoutMs}; null when none came. */
    DriverQueue.Used awaitUsed(long timeoutMs) {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        while (true) {
            DriverQueue.Used u = queue.pollUsed();
            if (u != null) {
                return u;
            }
            long left = (deadline - System.nanoTime()) / 1_000_000L;
            if (left <= 0) {
                return null;
            }
            NativeMemory.putInt(pollfd, call.fd().get());
            NativeMemory.putShort(pollfd + 4, Linux.POLLIN);
            NativeMemory.putShort(pollfd + 6, (short) 0);
            if (Sys.poll(pollfd, 1, (int) Math.min(left, 20)) > 0) {
                call.consumeOrZero();
            }
        }
    }

    @Override
    public void close() {
        kick.close();
        call.close();
        NativeMemory.free(pollfd);
    }
}
