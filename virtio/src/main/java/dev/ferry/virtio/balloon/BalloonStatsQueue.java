package dev.ferry.virtio.balloon;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.queue.DescriptorChain;
import dev.ferry.virtio.queue.SplitVirtqueue;

import java.util.function.LongSupplier;

/**
 * The stats queue of a {@link VirtioBalloon}: the device holds the driver's stats buffer;
 * returning it (every {@link #pollingSeconds()}, by a loop timer) asks for fresh stats, which
 * come back in the same buffer. The held buffer is not carried by a migration: the destination
 * un-pops it ({@code rewind}) and pops it again once the VM runs.
 *
 * <h2>Threads</h2>
 * The queue, the timer and the buffer on the device's event loop; {@link #stats()} and the
 * polling interval on any thread.
 */
final class BalloonStatsQueue {
    private final VirtioBalloon balloon;
    private final BalloonCounters counters;
    private final LongSupplier clockSeconds;

    private volatile BalloonStats stats = BalloonStats.none();
    private volatile int pollingSeconds;

    // Loop-thread state.
    private DescriptorChain held;
    private boolean rewindHeld;
    private DeviceEventLoop.Timer timer;

    BalloonStatsQueue(VirtioBalloon balloon, BalloonCounters counters, LongSupplier clockSeconds, int pollingSeconds) {
        this.balloon = balloon;
        this.counters = counters;
        this.clockSeconds = clockSeconds;
        this.pollingSeconds = pollingSeconds;
    }

    /** The guest's last stats and when they came. */
    BalloonStats stats() {
        return stats;
    }

    int pollingSeconds() {
        return pollingSeconds;
    }

    void setPollingSeconds(int seconds) {
        pollingSeconds = seconds;
    }

    /** Takes the driver's stats buffers: reads the stats and holds the buffer. Loop thread. */
    void serve(VirtioContext c, SplitVirtqueue vq) {
        DescriptorChain chain;
        boolean returned = false;
        while ((chain = vq.pop()) != null) {
            if (held != null) {
                // A driver that follows the spec never gives a second buffer; hand the old one back.
                vq.push(held, 0);
                returned = true;
            }
            stats = BalloonStats.read(chain.reader(), chain.readableBytes(), clockSeconds.getAsLong());
            counters.statsUpdates.incrementAndGet();
            held = chain;
        }
        if (returned) {
            vq.publish();
            c.notifyQueue(vq.index());
        }
    }

    /** Stats timer (loop): hand the held buffer back, which asks the driver for fresh stats. */
    private void poll() {
        VirtioContext c = balloon.ctx;
        if (c == null || !balloon.running) {
            return;
        }
        int statsQueue = balloon.statsQueue;
        if (held != null && statsQueue >= 0) {
            SplitVirtqueue vq = c.queue(statsQueue);
            if (vq != null) {
                vq.push(held, 0);
                held = null;
                vq.publish();
                c.notifyQueue(statsQueue);
            }
        }
        arm();
    }

    /** Arms the polling timer for the current interval, or cancels it (interval 0, device stopped). Loop thread. */
    void arm() {
        VirtioContext c = balloon.ctx;
        if (c == null || balloon.statsQueue < 0) {
            return;
        }
        if (timer == null) {
            timer = c.loop().timer(this::poll);
        }
        int s = pollingSeconds;
        if (s > 0 && balloon.running) {
            timer.arm(s * 1_000_000_000L);
        } else {
            timer.cancel();
        }
    }

    /** First look after a start: a buffer the source held is un-popped, to be popped again. Loop thread. */
    void rewindIfLoaded(VirtioContext c) {
        int statsQueue = balloon.statsQueue;
        if (rewindHeld && statsQueue >= 0) {
            rewindHeld = false;
            SplitVirtqueue q = c.queue(statsQueue);
            if (q != null && q.inFlight() > 0) {
                q.rewind(q.inFlight());
            }
        }
    }

    /** A load committed: the source's held buffer is in flight in the rings. */
    void loaded() {
        held = null;
        rewindHeld = true;
    }

    /** The VM stops: no polling until the device starts again. */
    void quiesce() {
        if (timer != null) {
            timer.cancel();
        }
    }

    /** Device reset: the buffer is the driver's again. Loop thread. */
    void reset() {
        held = null;
        rewindHeld = false;
    }

    /** Device reset: the timer goes; a start makes a new one. Loop thread. */
    void closeTimer() {
        if (timer != null) {
            timer.close();
            timer = null;
        }
    }

    /** The device closes. */
    void close() {
        DeviceEventLoop.Timer t = timer;
        if (t != null) {
            t.close();
        }
    }
}
