package dev.ferry.vhostuser.frontend;

import dev.ferry.core.sys.EventFd;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.queue.SplitVirtqueue;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Waiting for a back-end's requests to complete at a stop, by watching the ring's indices in
 * guest RAM (the back-end writes them; nothing else does while the VM is stopped). Device loop
 * thread; each wait is bounded and sleeps a millisecond between looks.
 */
final class RingDrain {
    private static final Logger LOG = LoggerFactory.getLogger(RingDrain.class);

    private RingDrain() {
    }

    static int usedIdx(VirtioContext ctx, SplitVirtqueue ring) {
        return ctx.memory().loadU16Acquire(ring.config().usedGpa() + 2);
    }

    static int availIdx(VirtioContext ctx, SplitVirtqueue ring) {
        return ctx.memory().loadU16Acquire(ring.config().availGpa() + 2);
    }

    /**
     * Before the ring stops: lets the back-end finish what the driver made available, kicking it
     * every millisecond, until the used index reaches the avail index (at most
     * {@code timeoutMs}). qemu-storage-daemon 7.2 keeps the requests of its last batch plugged
     * until its next kick; once GET_VRING_BASE took the ring's kick away, they would never
     * complete. The VM is stopped, so the driver adds nothing meanwhile. Returns the used index
     * last seen.
     */
    static int settle(VirtioContext ctx, int index, SplitVirtqueue ring, int used, long timeoutMs) {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        int avail = availIdx(ctx, ring);
        EventFd kick = ctx.kickFd(index);
        while (used != avail && System.nanoTime() < deadline) {
            kick.signal();
            if (!pause()) {
                break;
            }
            used = usedIdx(ctx, ring);
        }
        return used;
    }

    /**
     * Waits (at most {@code timeoutMs}) until the used index in guest RAM reaches {@code base}: a
     * back-end may answer GET_VRING_BASE before the requests it took complete
     * (qemu-storage-daemon 7.2 does: libvhost-user stops the ring but its block export finishes
     * what is in flight afterwards, logging those writes). Migration needs the ring quiet, as
     * QEMU's drain does for its own disks: every request taken is completed before the state is
     * saved. Warns once after {@code warnMs}. Returns the used index last seen.
     */
    static int awaitUsed(VirtioContext ctx, String who, int index, SplitVirtqueue ring, int base, int used, long warnMs,
                         long timeoutMs) {
        long t0 = System.nanoTime();
        long deadline = t0 + timeoutMs * 1_000_000L;
        long warnAt = t0 + warnMs * 1_000_000L;
        while (used != base && System.nanoTime() < deadline) {
            if (System.nanoTime() > warnAt) {
                LOG.warn("{}: ring {}: {} requests still in flight {} ms after GET_VRING_BASE (used 0x{}, base 0x{}); "
                        + "waiting", who, index, (base - used) & 0xffff, warnMs, Integer.toHexString(used),
                        Integer.toHexString(base));
                warnAt = Long.MAX_VALUE;
            }
            if (!pause()) {
                break;
            }
            used = usedIdx(ctx, ring);
        }
        return used;
    }

    private static boolean pause() {
        try {
            Thread.sleep(1);
            return true;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }
}
