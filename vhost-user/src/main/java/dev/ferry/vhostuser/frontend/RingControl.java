package dev.ferry.vhostuser.frontend;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.sys.EventFd;
import dev.ferry.core.sys.Linux;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioContext;
import dev.ferry.virtio.queue.QueueConfig;
import dev.ferry.virtio.queue.SplitRing;
import dev.ferry.virtio.queue.SplitVirtqueue;
import dev.ferry.vhostuser.proto.VhostUserException;

/**
 * A {@link VhostUserDevice}'s rings at its back-end: starting and stopping them (QEMU's
 * vhost_dev_start / vhost_dev_stop), the drain at a stop, the used-ring log flag, and the call
 * eventfds that become the device's interrupt. It owns the call eventfds and their loop
 * registrations.
 *
 * <h2>Life of the rings</h2>
 * <pre>
 *   start (DRIVER_OK, VM start)  SET_FEATURES [+LOG_ALL] · SET_MEM_TABLE · [SET_LOG_BASE] · [SET_INFLIGHT_FD]
 *                                per ready queue: NUM · BASE(last_avail_idx) · ADDR [log] · CALL · KICK · ENABLE(1)
 *                                [SET_STATUS] · a kick on every started ring
 *   quiesce (VM stop)            per ready queue: [ENABLE(0)] · GET_VRING_BASE → the transport's ring state
 *                                (net: no ENABLE(0), every TX ring before any RX ring)
 *   reset (driver writes 0)      as quiesce, [SET_STATUS 0]
 * </pre>
 * GET_VRING_BASE's index (with the used index re-read from guest RAM) becomes the transport's
 * queue state, so the existing {@code virtio} field carries it and a destination resumes the
 * back-end there with SET_VRING_BASE.
 *
 * <h2>The kick after a start</h2>
 * A back-end serves a ring when its kick eventfd is readable (the specification: a ring starts
 * upon a kick; libvhost-user, and so qemu-storage-daemon, looks at a ring at no other time). A
 * doorbell rung while no back-end served stays counted in the eventfd unless someone read it
 * first: a lost back-end's process holds the eventfd until it notices the hang-up, one that died
 * in the middle of a start had it too, and one may read a kick before the ring is enabled. A
 * guest waiting for the completions of what it submitted rings no more, so those requests would
 * wait for ever. Every start therefore ends with a kick on each started ring (QEMU's
 * vhost-user-blk start does the same); a back-end finds nothing new when there is nothing.
 *
 * <p>Device event loop thread; {@code describe} reads the volatile flag and counters from any
 * thread.
 */
final class RingControl {
    /**
     * How many reply timeouts a stop waits for the requests a back-end took to complete after
     * GET_VRING_BASE (a flush on a busy host disk takes a while; QEMU's own drain waits without a
     * bound, but a back-end that never completes them must not hang the VMM).
     */
    static final int DRAIN_REPLY_TIMEOUTS = 3;
    private final VhostUserDevice d;
    private final EventFd[] calls;
    private final DeviceEventLoop.Registration[] callRegs;
    private volatile boolean running;
    /**
     * A start sent a ring to the back-end (its kick eventfd with it) and did not finish: the
     * back-end may have taken requests, so a loss now is judged as a loss of running rings.
     */
    private boolean handedOver;
    private volatile long interrupts;
    private volatile long lastDrainMicros;
    /** A ring whose stop failed with requests out (their state unknown), for {@link #fallBackToUsedIndex}. */
    private String stopUnknown;
    /**
     * The rings the last start handed to the back-end, for the stop of a driver's reset: the
     * transport drops its queues at the status write, before the model's reset runs, so
     * {@link VirtioContext#queue} no longer finds rings the back-end still serves.
     */
    private final SplitVirtqueue[] handed;
    /** How many of the first queues the last start served (the features are gone after a reset). */
    private int handedCount;

    RingControl(VhostUserDevice device) {
        this.d = device;
        this.calls = new EventFd[device.backendQueues];
        this.callRegs = new DeviceEventLoop.Registration[device.backendQueues];
        this.handed = new SplitVirtqueue[device.backendQueues];
    }

    /** One call eventfd per back-end queue, read on the loop. Constructor thread; {@link #closeCalls} undoes it. */
    void openCalls() {
        for (int i = 0; i < calls.length; i++) {
            calls[i] = new EventFd(Linux.EFD_NONBLOCK);
            int q = i;
            callRegs[i] = d.loop.add(calls[i], () -> routeCallToInterrupt(q));
        }
    }

    /** Whether the back-end serves the rings now. */
    boolean running() {
        return running;
    }

    /** The rings are stopped (a reset that could not reach the back-end, or one it never served). */
    void markStopped() {
        running = false;
        handedOver = false;
        java.util.Arrays.fill(handed, null);
    }

    long interrupts() {
        return interrupts;
    }

    long lastDrainMicros() {
        return lastDrainMicros;
    }

    /**
     * The start sequence on the current connection, with the device's context and log. A ring
     * found served behind the front-end's back ({@link #servedBehindTheFrontEnd}) starts nothing:
     * the device goes NEEDS_RESET instead and the rings stay stopped.
     */
    void start() throws VhostUserException {
        VhostUserFrontend f = d.link.frontend();
        VirtioContext ctx = d.ctx;
        SharedDirtyLog log = d.log;
        String behind = servedBehindTheFrontEnd(ctx);
        if (behind != null) {
            d.ringStateUnknown(behind);
            return;
        }
        f.setFeatures(d.backendAcked(ctx.features()), log != null);
        f.setMemTable(d.memory);
        if (log != null) {
            f.setLogBase(log.fd(), log.size());
        }
        d.beforeRingsStart(f, ctx);
        int n = served(ctx);
        handedCount = n;
        for (int i = 0; i < n; i++) {
            SplitVirtqueue ring = ctx.queue(i);
            if (ring != null) {
                handedOver = true;
                handed[i] = ring;
                // A fresh doorbell at every start: a back-end dropped earlier may still hold the last one.
                f.startRing(i, ring.size(), ring.lastAvailIdx(), addresses(ring), log != null, ctx.renewKickFd(i).fd(),
                        calls[i].fd(), d.ringEnabled(i));
            }
        }
        f.setStatus(Virtio.STATUS_ACKNOWLEDGE | Virtio.STATUS_DRIVER | Virtio.STATUS_FEATURES_OK
                | Virtio.STATUS_DRIVER_OK);
        running = true;
        handedOver = false;
        for (int i = 0; i < n; i++) {
            if (ctx.queue(i) != null) {
                ctx.kickFd(i).signal(); // see "The kick after a start"
            }
        }
        d.afterStart(f, ctx);
    }

    /**
     * Before a start: a ring whose requests complete on their own and whose back-end keeps no
     * in-flight region must have its used index in guest RAM at the index the back-end is told
     * to resume from (SET_VRING_BASE): the front-end resumes there only after a stop that drained
     * the ring or a loss that fell back to the used index, so nothing is in flight. A used index
     * that moved since was moved by someone else — a back-end dropped while it still ran (its
     * process keeps the kick eventfd and guest memory until it sees the hang-up, and
     * qemu-storage-daemon completes what it took before it closes). libvhost-user would resume
     * at the base given and take the used index from RAM (SET_VRING_ADDR; it resumes from the
     * used index only for a device that completes in order, and its blk export does not), so it
     * would serve the requests between them a second time and every later stop would find the
     * used index past GET_VRING_BASE. Their state is unknown: returns why, naming the ring and
     * both indices, or null.
     */
    private String servedBehindTheFrontEnd(VirtioContext ctx) {
        if (d.resubmitSafe()) {
            return null; // the in-flight region tells the back-end what completed
        }
        for (int i = 0; i < served(ctx); i++) {
            SplitVirtqueue ring = ctx.queue(i);
            if (ring != null && d.completesOnItsOwn(i)) {
                int used = RingDrain.usedIdx(ctx, ring);
                if (used != ring.lastAvailIdx()) {
                    return "ring " + i + "'s used index in guest memory is 0x" + Integer.toHexString(used)
                            + " where the back-end was to resume at 0x" + Integer.toHexString(ring.lastAvailIdx())
                            + ": requests were completed while no back-end of this device served the ring"
                            + " (one dropped while it still ran), and it keeps no in-flight region";
                }
            }
        }
        return null;
    }

    /** How many of the device's first queues the back-end serves under the negotiated features. */
    private int served(VirtioContext ctx) {
        return Math.min(calls.length, d.backendRings(ctx.features()));
    }

    /** The ring's areas in this process's address space (what the back-end maps), and the used ring's GPA. */
    VhostUserFrontend.RingAddresses addresses(SplitVirtqueue ring) {
        QueueConfig c = ring.config();
        int n = c.size();
        return new VhostUserFrontend.RingAddresses(
                d.memory.hostAddress(Gpa.of(c.descGpa()), SplitRing.descTableBytes(n)),
                d.memory.hostAddress(Gpa.of(c.usedGpa()), SplitRing.usedBytes(n)),
                d.memory.hostAddress(Gpa.of(c.availGpa()), SplitRing.availBytes(n)),
                c.usedGpa());
    }

    /**
     * The back-end signalled queue {@code queue}'s call eventfd: raise the used-buffer interrupt.
     * On KVM this eventfd would be an irqfd on the device's GSI and never reach this loop (not
     * built: there is no in-kernel irqchip wiring yet, see docs/devices.md "Not built yet").
     */
    private void routeCallToInterrupt(int queue) {
        VirtioContext c = d.ctx;
        if (c != null) {
            interrupts++;
            c.interruptQueue(queue);
        }
    }

    /**
     * The rings stop: GET_VRING_BASE for every ring the back-end serves into the transport's
     * rings — at a driver's reset into the rings the transport has just dropped, so that the
     * back-end lets go of them (their kick eventfd, their requests) before the driver lays the
     * rings out afresh. Returns the first problem, or null; the caller drops the back-end on a
     * problem.
     */
    String stop() {
        running = false;
        handedOver = false;
        VirtioContext ctx = d.ctx;
        String problem = null;
        int n = ctx == null ? 0 : Math.max(served(ctx), handedCount);
        for (int k = 0; k < n; k++) {
            int i = d.stopOrder(k, n);
            SplitVirtqueue ring = ctx.queue(i);
            if (ring == null) {
                ring = handed[i];
            }
            handed[i] = null;
            if (ring == null) {
                continue;
            }
            int used = RingDrain.usedIdx(ctx, ring);
            if (problem != null) {
                ring.restore(used, used);
                continue;
            }
            try {
                if (d.completesOnItsOwn(i)) {
                    used = RingDrain.settle(ctx, i, ring, used, drainTimeoutMs());
                }
                int base = d.link.frontend().stopRing(i, d.disablesRingsAtStop());
                int inUse = (base - used) & 0xffff;
                if (inUse > ring.size()) {
                    problem = "GET_VRING_BASE for ring " + i + " returned 0x" + Integer.toHexString(base)
                            + " while the used index in guest memory is 0x" + Integer.toHexString(used)
                            + ": more requests in use than the ring holds (" + ring.size() + ")";
                    ring.restore(used, used);
                } else {
                    if (d.completesOnItsOwn(i)) {
                        used = awaitDrained(ctx, i, ring, base, used);
                    }
                    if (used != base && d.completesOnItsOwn(i)) {
                        problem = "ring " + i + ": " + ((base - used) & 0xffff) + " requests the back-end took "
                                + "were still not completed " + drainTimeoutMs() + " ms after GET_VRING_BASE";
                    }
                    ring.restore(base, used);
                }
            } catch (VhostUserException e) {
                problem = "stopping ring " + i + " (SET_VRING_ENABLE 0, GET_VRING_BASE): " + e.getMessage();
                int avail = RingDrain.availIdx(ctx, ring);
                if (used != avail && d.completesOnItsOwn(i) && !d.resubmitSafe()) {
                    stopUnknown = "ring " + i + " had " + ((avail - used) & 0xffff) + " requests out";
                }
                ring.restore(used, used); // QEMU: without the back-end's index, resume at the used index
            }
        }
        for (int i = 0; i < n; i++) {
            // completions the drain brought: their interrupt is part of stopping (the transport keeps it pending)
            if (calls[i] != null && calls[i].consumeOrZero() != 0 && ctx.queue(i) != null) {
                interrupts++;
                ctx.interruptQueue(i);
            }
        }
        return problem;
    }

    private int awaitDrained(VirtioContext ctx, int index, SplitVirtqueue ring, int base, int used) {
        long t0 = System.nanoTime();
        int u = RingDrain.awaitUsed(ctx, d.who(), index, ring, base, used, d.options.replyTimeoutMs(),
                drainTimeoutMs());
        lastDrainMicros = (System.nanoTime() - t0) / 1000;
        return u;
    }

    private long drainTimeoutMs() {
        return DRAIN_REPLY_TIMEOUTS * d.options.replyTimeoutMs();
    }

    /**
     * The back-end is gone: running rings — or rings a start that failed midway had handed it —
     * fall back to the used index in guest RAM and stop. Returns which ring had requests out
     * whose state is now unknown (they must not be offered again: see
     * {@link VhostUserDevice#resubmitSafe}), or null.
     */
    String fallBackToUsedIndex() {
        String unknown = stopUnknown;
        stopUnknown = null;
        VirtioContext ctx = d.ctx;
        if ((running || handedOver) && ctx != null) {
            for (int i = 0; i < served(ctx); i++) {
                SplitVirtqueue ring = ctx.queue(i);
                if (ring != null) {
                    int used = RingDrain.usedIdx(ctx, ring);
                    int avail = RingDrain.availIdx(ctx, ring);
                    if (used != avail && d.completesOnItsOwn(i) && !d.resubmitSafe()) {
                        unknown = "ring " + i + " had " + ((avail - used) & 0xffff) + " requests out";
                    }
                    ring.restore(used, used);
                }
            }
        }
        running = false;
        handedOver = false;
        java.util.Arrays.fill(handed, null);
        return unknown;
    }

    /** SET_VRING_ADDR for every running ring, with or without the used-ring log flag. */
    void setLogFlag(boolean on) throws VhostUserException {
        VirtioContext ctx = d.ctx;
        for (int i = 0; i < served(ctx); i++) {
            SplitVirtqueue ring = ctx.queue(i);
            if (ring != null) {
                d.link.frontend().setRingAddr(i, addresses(ring), on);
            }
        }
    }

    /** The call eventfds and their registrations, each closed once. */
    void closeCalls() {
        for (int i = 0; i < calls.length; i++) {
            if (callRegs[i] != null) {
                VhostUserDevice.closeQuietly(callRegs[i]);
                callRegs[i] = null;
            }
            if (calls[i] != null) {
                calls[i].close();
                calls[i] = null;
            }
        }
    }
}
