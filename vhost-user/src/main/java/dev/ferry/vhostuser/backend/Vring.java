package dev.ferry.vhostuser.backend;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.sys.EventFd;
import dev.ferry.vhostuser.proto.Payloads.VringAddr;
import dev.ferry.virtio.queue.SplitVirtqueue;

/**
 * One vring as the front-end configured it, and its run state. A ring is <em>started</em> from
 * SET_VRING_KICK (it then has a {@link SplitVirtqueue} over the mapped memory) until
 * GET_VRING_BASE stops it; it is served only while started <em>and</em> enabled. Table in
 * {@code docs/vhost-user.md} ("Back-end library: ring states"):
 * <pre>
 *   state              SET_VRING_KICK      SET_VRING_ENABLE 1  SET_VRING_ENABLE 0   GET_VRING_BASE
 *   STOPPED            STARTED_x (*)       STOPPED (flag on)   STOPPED (flag off)   STOPPED, base replied
 *   STARTED_DISABLED   STARTED_DISABLED    STARTED_ENABLED     STARTED_DISABLED     STOPPED
 *                      (kick fd replaced)
 *   STARTED_ENABLED    STARTED_ENABLED     STARTED_ENABLED     STARTED_DISABLED     STOPPED
 *                      (kick fd replaced)                      (drained first)      (drained first)
 *   (*) ENABLED when PROTOCOL_FEATURES was not negotiated, else as the enable flag stands.
 * </pre>
 * SET_VRING_NUM/BASE are refused on a started ring; SET_VRING_ADDR on a started ring may only
 * change the log flag and address (QEMU turns logging on that way while the ring runs).
 *
 * <p>Loop thread only. Owns its kick, call and err eventfds.
 */
final class Vring {
    final int index;
    int num;
    VringAddr addr;
    /** The next avail index to serve from when the ring starts (SET_VRING_BASE, or where it stopped). */
    int base;
    boolean enabled;
    EventFd kick;
    EventFd call;
    EventFd err;
    DeviceEventLoop.Registration kickRegistration;
    /** Non-null while started. */
    SplitVirtqueue queue;
    /** The used ring's guest-physical range while started, for the log-omit fault's test. */
    long usedGpa;
    long usedBytes;

    Vring(int index) {
        this.index = index;
    }

    boolean started() {
        return queue != null;
    }

    String state() {
        return !started() ? "STOPPED" : enabled ? "STARTED_ENABLED" : "STARTED_DISABLED";
    }

    /** Forgets the run state and closes the fds (session end, RESET_DEVICE). */
    void clear() {
        if (kickRegistration != null) {
            kickRegistration.close();
            kickRegistration = null;
        }
        queue = null;
        closeQuietly(kick);
        closeQuietly(call);
        closeQuietly(err);
        kick = null;
        call = null;
        err = null;
        num = 0;
        addr = null;
        base = 0;
        enabled = false;
    }

    static void closeQuietly(EventFd e) {
        if (e != null) {
            e.close();
        }
    }
}
