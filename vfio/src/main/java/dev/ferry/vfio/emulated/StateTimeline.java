package dev.ferry.vfio.emulated;

import dev.ferry.vfio.uapi.VfioDeviceState;

import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * What an {@link EmulatedVfioDevice} went through, for tests and reports: every state entered
 * (a reset shows as RUNNING), the time spent in each, and the time its arcs into each took.
 * Written under the device lock; {@link #history()} may be read without it.
 */
final class StateTimeline {
    private final List<VfioDeviceState> history = new CopyOnWriteArrayList<>();
    private final Map<VfioDeviceState, Long> nanosIn = new EnumMap<>(VfioDeviceState.class);
    private final Map<VfioDeviceState, Long> arcNanos = new EnumMap<>(VfioDeviceState.class);
    private long enteredAt = System.nanoTime();

    StateTimeline(VfioDeviceState initial) {
        history.add(initial);
    }

    /** The device left {@code from} for {@code to}. */
    void entered(VfioDeviceState from, VfioDeviceState to) {
        long now = System.nanoTime();
        nanosIn.merge(from, now - enteredAt, Long::sum);
        enteredAt = now;
        history.add(to);
    }

    /** An arc into {@code to} took {@code nanos}. */
    void arcTook(VfioDeviceState to, long nanos) {
        arcNanos.merge(to, nanos, Long::sum);
    }

    List<VfioDeviceState> history() {
        return List.copyOf(history);
    }

    /** Time in each state so far, counting the time in {@code current} up to now. */
    Map<VfioDeviceState, Long> nanosIn(VfioDeviceState current) {
        Map<VfioDeviceState, Long> m = new EnumMap<>(nanosIn);
        m.merge(current, System.nanoTime() - enteredAt, Long::sum);
        return m;
    }

    Map<VfioDeviceState, Long> arcNanos() {
        return new EnumMap<>(arcNanos);
    }
}
