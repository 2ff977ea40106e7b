package dev.ferry.virtio.net;

import java.util.concurrent.TimeUnit;
import java.util.function.IntConsumer;

/**
 * One announce schedule of a migrated NIC: QEMU's announce timer with its default parameters
 * (initial 50 ms, max 550 ms, 5 rounds, step 100 ms). Round {@code k} (0-based) runs at once for
 * k = 0 and then {@link #gapMillis}(k) after the previous one: at about 0, 50, 200, 450 and
 * 800 ms. Two kinds:
 * <ul>
 *   <li><b>self</b> (no ack): each round is a RARP the device sends for its MAC — QEMU's
 *       {@code qemu_announce_self} on the destination;
 *   <li><b>guest</b> (ack required, GUEST_ANNOUNCE with CTRL_VQ): each round sets
 *       {@code VIRTIO_NET_S_ANNOUNCE} and raises the config interrupt; the next round is armed
 *       only when the driver acks on the control queue (VIRTIO_NET_CTRL_ANNOUNCE_ACK).
 * </ul>
 * <pre>
 *   state         begin()            expired()                       acked()                 stop()
 *   IDLE          ARMED (round 0,    IDLE (stale expiry ignored)     IDLE (refused: false)   IDLE
 *                 fires at once)
 *   ARMED         ARMED (restarts    self: run round; ARMED with the ARMED (refused: false)   IDLE (disarmed)
 *                 at round 0)        next gap, IDLE after round 4;
 *                                    guest: run round; AWAITING_ACK
 *   AWAITING_ACK  ARMED (restarts    AWAITING_ACK (ignored)          ARMED with the next gap IDLE
 *                 at round 0)                                        (true); IDLE after round 4
 * </pre>
 * {@code stop} is the VM stopping, the driver resetting the device, or the device closing: a
 * schedule never outlives the run it began in. Only {@code begin} starts one, and only a
 * destination whose device state came from a migration calls it, so a source that runs on after a
 * failed or cancelled migration never announces.
 *
 * <p>Not thread-safe: the device's event loop drives it (the {@link Scheduler} is its timer).
 */
public final class AnnounceTimer {
    public static final int ROUNDS = 5;
    public static final long INITIAL_MS = 50;
    public static final long MAX_MS = 550;
    public static final long STEP_MS = 100;

    public enum State { IDLE, ARMED, AWAITING_ACK }

    /** Where the timer's expiry comes from: the device loop's timer, or a test's stepped clock. */
    public interface Scheduler {
        /** Fire {@link #expired()} once, {@code delayNanos} from now, replacing an earlier arming. */
        void arm(long delayNanos);

        void cancel();

        /** A scheduler on a device loop's timer. */
        static Scheduler of(dev.ferry.core.device.DeviceEventLoop.Timer t) {
            return new Scheduler() {
                @Override
                public void arm(long delayNanos) {
                    t.arm(delayNanos);
                }

                @Override
                public void cancel() {
                    t.cancel();
                }
            };
        }
    }

    private final boolean ackRequired;
    private final Scheduler scheduler;
    private final IntConsumer round;
    private State state = State.IDLE;
    private int next;

    /**
     * @param ackRequired a guest announce (waits for the driver's ack between rounds)
     * @param round       runs round {@code k} (send a RARP; set S_ANNOUNCE and interrupt)
     */
    public AnnounceTimer(boolean ackRequired, Scheduler scheduler, IntConsumer round) {
        this.ackRequired = ackRequired;
        this.scheduler = scheduler;
        this.round = round;
    }

    /** The gap after round {@code k} before round k + 1: min(initial + k × step, max) ms. */
    public static long gapMillis(int k) {
        return Math.min(INITIAL_MS + k * STEP_MS, MAX_MS);
    }

    /** When round {@code k} runs, in ms after the schedule began: 0, 50, 200, 450, 800. */
    public static long offsetMillis(int k) {
        long t = 0;
        for (int i = 0; i < k; i++) {
            t += gapMillis(i);
        }
        return t;
    }

    public State state() {
        return state;
    }

    /** The round that runs next (0..ROUNDS). */
    public int nextRound() {
        return next;
    }

    public void begin() {
        next = 0;
        state = State.ARMED;
        scheduler.arm(0);
    }

    public void expired() {
        if (state != State.ARMED) {
            return;
        }
        int k = next++;
        if (ackRequired) {
            state = State.AWAITING_ACK;
            round.accept(k);
            return;
        }
        round.accept(k); // as QEMU: send, then arm the next round from now
        armNextOrFinish(k);
    }

    /** The driver acked the announce; false (nothing changes) when none was awaited. */
    public boolean acked() {
        if (state != State.AWAITING_ACK) {
            return false;
        }
        armNextOrFinish(next - 1);
        return true;
    }

    public void stop() {
        if (state == State.ARMED) {
            scheduler.cancel();
        }
        state = State.IDLE;
    }

    private void armNextOrFinish(int done) {
        if (done + 1 >= ROUNDS) {
            state = State.IDLE;
            return;
        }
        state = State.ARMED;
        scheduler.arm(TimeUnit.MILLISECONDS.toNanos(gapMillis(done)));
    }
}
