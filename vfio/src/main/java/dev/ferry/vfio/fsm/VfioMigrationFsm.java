package dev.ferry.vfio.fsm;

import dev.ferry.vfio.uapi.VfioDeviceState;

import static dev.ferry.vfio.uapi.VfioDeviceState.ERROR;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The VFIO migration v2 state machine as the kernel runs it in {@code vfio_mig_get_next_state()}
 * ({@code drivers/vfio/vfio_main.c}): which single arc a driver takes next on its way from the
 * current state to a requested one, for a device with given {@link MigCapabilities}.
 *
 * <p>Ferry uses it to predict what one {@code VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE} SET does to a
 * device (and so where a failed SET may have left it), to keep forbidden requests from reaching
 * the kernel, and in fake devices that must refuse exactly what the kernel refuses.
 *
 * <h2>The arc table: next step = table[current][target]</h2>
 * <pre>
 * current \ target | STOP        RUNNING     STOP_COPY    RESUMING    RUNNING_P2P PRE_COPY    PRE_COPY_P2P
 * -----------------+-----------------------------------------------------------------------------------------
 * STOP             | STOP        RUNNING_P2P STOP_COPY    RESUMING    RUNNING_P2P RUNNING_P2P RUNNING_P2P
 * RUNNING          | RUNNING_P2P RUNNING     RUNNING_P2P  RUNNING_P2P RUNNING_P2P PRE_COPY    RUNNING_P2P
 * STOP_COPY        | STOP        STOP        STOP_COPY    STOP        STOP        ERROR       ERROR
 * RESUMING         | STOP        STOP        STOP         RESUMING    STOP        STOP        STOP
 * RUNNING_P2P      | STOP        RUNNING     STOP         STOP        RUNNING_P2P RUNNING     PRE_COPY_P2P
 * PRE_COPY         | RUNNING     RUNNING     PRE_COPY_P2P RUNNING     RUNNING     PRE_COPY    PRE_COPY_P2P
 * PRE_COPY_P2P     | RUNNING_P2P RUNNING_P2P STOP_COPY    RUNNING_P2P RUNNING_P2P PRE_COPY    PRE_COPY_P2P
 * ERROR            | ERROR       ERROR       ERROR        ERROR       ERROR       ERROR       ERROR
 * (target ERROR: ERROR in every row)
 * </pre>
 * The diagonal maps a state to itself, as in the kernel's table; drivers never ask for it because
 * they loop {@code while (state != target)}.
 *
 * <h2>Which states a device has</h2>
 * <pre>
 * STOP, RUNNING, STOP_COPY, RESUMING   need STOP_COPY
 * RUNNING_P2P                          needs STOP_COPY | P2P
 * PRE_COPY                             needs STOP_COPY | PRE_COPY
 * PRE_COPY_P2P                         needs STOP_COPY | P2P | PRE_COPY
 * ERROR                                never supported (cannot be requested, cannot be stepped from)
 * </pre>
 *
 * <h2>The algorithm</h2>
 * <ol>
 *   <li>Refuse if the current or the target state is unsupported (this covers target ERROR).</li>
 *   <li>{@code next = table[current][target]}.</li>
 *   <li>While {@code next} is an unsupported optional state, {@code next = table[next][target]}:
 *       the driver sees one arc that skips the missing state.</li>
 *   <li>{@code next == ERROR} means the request is refused.</li>
 * </ol>
 * The only ERROR entries reachable from supported states are STOP_COPY→PRE_COPY and
 * STOP_COPY→PRE_COPY_P2P. In the kernel's own loop ERROR counts as unsupported, so on a
 * PRE_COPY-capable device those two requests loop forever ({@code table[ERROR][*] == ERROR})
 * until the 2026 fix; this class stops at ERROR and refuses, and {@link #path} refuses them up
 * front with their own reason so Ferry never sends them.
 *
 * <p>All methods are pure and thread-safe.
 */
public final class VfioMigrationFsm {
    /** Longest walk in the table is 4 arcs (PRE_COPY→RUNNING→RUNNING_P2P→STOP→RESUMING). */
    private static final int MAX_PATH = VfioDeviceState.values().length;

    /** {@code NEXT[current.ordinal()][target.ordinal()]}; ordinals equal the kernel's values. */
    private static final VfioDeviceState[][] NEXT = new VfioDeviceState[VfioDeviceState.values().length][];

    static {
        //            target: ERROR, STOP,        RUNNING,     STOP_COPY,    RESUMING,    RUNNING_P2P, PRE_COPY,    PRE_COPY_P2P
        row(ERROR,            ERROR, ERROR,       ERROR,       ERROR,        ERROR,       ERROR,       ERROR,       ERROR);
        row(STOP,             ERROR, STOP,        RUNNING_P2P, STOP_COPY,    RESUMING,    RUNNING_P2P, RUNNING_P2P, RUNNING_P2P);
        row(RUNNING,          ERROR, RUNNING_P2P, RUNNING,     RUNNING_P2P,  RUNNING_P2P, RUNNING_P2P, PRE_COPY,    RUNNING_P2P);
        row(STOP_COPY,        ERROR, STOP,        STOP,        STOP_COPY,    STOP,        STOP,        ERROR,       ERROR);
        row(RESUMING,         ERROR, STOP,        STOP,        STOP,         RESUMING,    STOP,        STOP,        STOP);
        row(RUNNING_P2P,      ERROR, STOP,        RUNNING,     STOP,         STOP,        RUNNING_P2P, RUNNING,     PRE_COPY_P2P);
        row(PRE_COPY,         ERROR, RUNNING,     RUNNING,     PRE_COPY_P2P, RUNNING,     RUNNING,     PRE_COPY,    PRE_COPY_P2P);
        row(PRE_COPY_P2P,     ERROR, RUNNING_P2P, RUNNING_P2P, STOP_COPY,    RUNNING_P2P, RUNNING_P2P, PRE_COPY,    PRE_COPY_P2P);
    }

    private VfioMigrationFsm() {
    }

    private static void row(VfioDeviceState current, VfioDeviceState... nextByTarget) {
        NEXT[current.ordinal()] = nextByTarget;
    }

    /** The flags a device must report for {@code state} to exist; ERROR has none that suffice. */
    private static long requiredFlags(VfioDeviceState state) {
        return switch (state) {
            case ERROR -> -1L;
            case STOP, RUNNING, STOP_COPY, RESUMING -> MigCapabilities.STOP_COPY;
            case RUNNING_P2P -> MigCapabilities.STOP_COPY | MigCapabilities.P2P;
            case PRE_COPY -> MigCapabilities.STOP_COPY | MigCapabilities.PRE_COPY;
            case PRE_COPY_P2P -> MigCapabilities.STOP_COPY | MigCapabilities.P2P | MigCapabilities.PRE_COPY;
        };
    }

    /** True if a device with {@code caps} has {@code state}. ERROR is never supported. */
    public static boolean supported(VfioDeviceState state, MigCapabilities caps) {
        return state != ERROR && caps.hasAll(requiredFlags(state));
    }

    /**
     * The state the kernel moves a device to in its next single arc when the device is in
     * {@code current} and {@code target} was requested; empty if the kernel refuses the request
     * ({@code -EINVAL}). For {@code current == target} this is {@code current}, as in the kernel.
     */
    public static Optional<VfioDeviceState> nextStep(VfioDeviceState current, VfioDeviceState target, MigCapabilities caps) {
        Decision d = decide(current, target, caps);
        return Optional.ofNullable(d.next());
    }

    /** Why the kernel refuses {@code current→target} on a device with {@code caps}; empty if it doesn't. */
    public static Optional<String> refusal(VfioDeviceState current, VfioDeviceState target, MigCapabilities caps) {
        return Optional.ofNullable(decide(current, target, caps).reason());
    }

    /**
     * True if {@code from→to} is one arc the kernel hands a driver as a single step, which is what a
     * fake device must accept for one step and refuse otherwise. A state to itself is not an arc.
     */
    public static boolean isLegalArc(VfioDeviceState from, VfioDeviceState to, MigCapabilities caps) {
        return from != to && nextStep(from, to, caps).filter(to::equals).isPresent();
    }

    /** {@link #isLegalArc(VfioDeviceState, VfioDeviceState, MigCapabilities)} for an arc record. */
    public static boolean isLegalArc(VfioArc arc, MigCapabilities caps) {
        return isLegalArc(arc.from(), arc.to(), caps);
    }

    /**
     * The states a device passes through, in order, when a SET asks for {@code target} while it is
     * in {@code current}: each element is the end of one arc, the last is {@code target}. Empty
     * when {@code current == target}.
     *
     * @throws RefusedStateRequestException if the kernel would refuse the request, if it asks for
     *         STOP_COPY→PRE_COPY or STOP_COPY→PRE_COPY_P2P (which Ferry never sends: some kernels
     *         spin forever on them), or if the walk would reach ERROR; also for
     *         {@code current == target} when that state is ERROR or one the device lacks
     */
    public static List<VfioDeviceState> path(VfioDeviceState current, VfioDeviceState target, MigCapabilities caps) {
        // Checked even for current == target: Ferry never asks for ERROR or a state the device lacks.
        Decision first = decide(current, target, caps);
        if (first.next() == null && !isForbidden(current, target)) {
            throw new RefusedStateRequestException(current, target, caps, first.reason());
        }
        List<VfioDeviceState> states = new ArrayList<>(MAX_PATH);
        VfioDeviceState state = current;
        while (state != target) {
            if (isForbidden(state, target)) {
                throw new RefusedStateRequestException(current, target, caps,
                        "STOP_COPY\u2192" + target + " is forbidden by VFIO migration v2, and kernels"
                                + " with PRE_COPY support before the 2026 fix loop forever on it;"
                                + " request STOP (or RUNNING) first");
            }
            Decision d = decide(state, target, caps);
            if (d.next() == null) {
                throw new RefusedStateRequestException(current, target, caps,
                        state == current ? d.reason() : "at " + state + ": " + d.reason());
            }
            state = d.next();
            states.add(state);
            if (states.size() > MAX_PATH) {
                throw new IllegalStateException("VFIO arc table does not converge for " + current
                        + "\u2192" + target + " on " + caps + ": " + states);
            }
        }
        return List.copyOf(states);
    }

    /** {@link #path} as the arcs the driver takes, starting at {@code current}. */
    public static List<VfioArc> arcs(VfioDeviceState current, VfioDeviceState target, MigCapabilities caps) {
        List<VfioArc> arcs = new ArrayList<>(MAX_PATH);
        VfioDeviceState from = current;
        for (VfioDeviceState to : path(current, target, caps)) {
            arcs.add(new VfioArc(from, to));
            from = to;
        }
        return List.copyOf(arcs);
    }

    /** True for the two requests the v2 protocol forbids and Ferry must never send. */
    public static boolean isForbidden(VfioDeviceState current, VfioDeviceState target) {
        return current == STOP_COPY && (target == PRE_COPY || target == PRE_COPY_P2P);
    }

    private static Decision decide(VfioDeviceState current, VfioDeviceState target, MigCapabilities caps) {
        if (!supported(current, caps)) {
            return Decision.refused(current == ERROR
                    ? "the device is in ERROR; only VFIO_DEVICE_RESET leaves it"
                    : "current state " + current + " is not supported by " + caps);
        }
        if (!supported(target, caps)) {
            return Decision.refused(target == ERROR
                    ? "ERROR cannot be requested"
                    : "target state " + target + " is not supported by " + caps);
        }
        VfioDeviceState next = NEXT[current.ordinal()][target.ordinal()];
        // Skip optional states the device lacks; stop at ERROR, where the kernel would spin.
        for (int hops = 0; next != ERROR && !supported(next, caps); hops++) {
            if (hops > MAX_PATH) {
                throw new IllegalStateException("VFIO arc table skip loop does not end for "
                        + current + "\u2192" + target + " on " + caps);
            }
            next = NEXT[next.ordinal()][target.ordinal()];
        }
        if (next == ERROR) {
            return Decision.refused(current + "\u2192" + target + " has no path in the arc table");
        }
        return new Decision(next, null);
    }

    /** Either the next state or the reason for refusing. */
    private record Decision(VfioDeviceState next, String reason) {
        static Decision refused(String reason) {
            return new Decision(null, reason);
        }
    }
}
