package dev.ferry.virtio.balloon;

import dev.ferry.core.migration.PrecopyNotifier;

/**
 * virtio-balloon's free page hinting as a state machine, with QEMU's states and command ids:
 * RAM migration asks for hints after each dirty sync under a fresh command id, stops them before
 * the next sync and ends them when migration ends; the driver answers a published id with that id,
 * then buffers of free pages, then STOP. Only hints that arrive while the current id is started
 * are applied; everything else is stale and ignored.
 *
 * <pre>
 *  state \ event  BEFORE_SYNC  AFTER_SYNC      AFTER_SYNC     CLEANUP  driver: current  driver: other id  hint buffer
 *                              (VM running)    (VM stopped)            id               (incl. STOP 0)
 *  DONE           STOP *       REQUESTED(n) *  DONE           DONE     ignored          ignored           ignored
 *  STOP           STOP         REQUESTED(n) *  DONE *         DONE *   ignored          ignored           ignored
 *  REQUESTED      STOP *       REQUESTED(n) *  DONE *         DONE *   START            ignored           ignored
 *  START          STOP *       REQUESTED(n) *  DONE *         DONE *   START            STOP              applied
 *  (* = the config space changed: config interrupt; n = a fresh id, 0x80000000 upwards, wrapping)
 * </pre>
 * The published {@code free_page_hint_cmd_id} is the id in REQUESTED and START, 0 (STOP) in STOP
 * and 1 (DONE) in DONE. A device reset returns to DONE.
 *
 * <h2>Threads</h2>
 * Precopy events come on the migration thread, driver messages on the device's event loop.
 * {@link #applyHint} runs the clearing under the same lock as the events, so once
 * BEFORE_BITMAP_SYNC returned no hint of the old id reaches the migration: a hint taken before
 * the sync could otherwise clear a page the guest wrote after hinting it, which only this sync
 * found in the dirty log.
 */
public final class FreePageHinting {
    /** The command ids with a meaning of their own. */
    public static final int CMD_ID_STOP = 0;
    public static final int CMD_ID_DONE = 1;
    /** QEMU's first command id (VIRTIO_BALLOON_FREE_PAGE_HINT_CMD_ID_MIN). */
    public static final int CMD_ID_MIN = 0x80000000;

    /** QEMU's FREE_PAGE_HINT_S_* values, as they travel in the device state. */
    public enum State {
        REQUESTED(0), START(1), STOP(2), DONE(3);

        public final int wire;

        State(int wire) {
            this.wire = wire;
        }

        public static State ofWire(int v) {
            for (State s : values()) {
                if (s.wire == v) {
                    return s;
                }
            }
            return null;
        }
    }

    /** What the driver's message did, for counters and tests. */
    public enum Outcome {
        STARTED, STOPPED, IGNORED, APPLIED
    }

    /** Clears a hinted range from the migration; returns the pages cleared. */
    @FunctionalInterface
    public interface HintSink {
        long clear(long gpa, long length);
    }

    private State state = State.DONE;
    private int cmdId = CMD_ID_MIN;
    private int nextId = CMD_ID_MIN;

    /** The state now. */
    public synchronized State state() {
        return state;
    }

    /** The current (last issued) command id. */
    public synchronized int cmdId() {
        return cmdId;
    }

    /** The value the config space's {@code free_page_hint_cmd_id} shows now. */
    public synchronized int publishedCmdId() {
        return switch (state) {
            case REQUESTED, START -> cmdId;
            case STOP -> CMD_ID_STOP;
            case DONE -> CMD_ID_DONE;
        };
    }

    /** A RAM migration step. Returns true when the published id changed (config interrupt). */
    public synchronized boolean onPrecopy(PrecopyNotifier.Step step, boolean vmStopped) {
        int before = publishedCmdId();
        switch (step) {
            case BEFORE_BITMAP_SYNC -> state = State.STOP;
            case AFTER_BITMAP_SYNC -> {
                if (vmStopped) {
                    state = State.DONE;
                } else {
                    cmdId = nextId;
                    nextId = nextId == -1 ? CMD_ID_MIN : nextId + 1;
                    state = State.REQUESTED;
                }
            }
            case CLEANUP -> state = State.DONE;
        }
        return publishedCmdId() != before;
    }

    /** The driver's out buffer carrying command id {@code id}. */
    public synchronized Outcome onDriverId(int id) {
        if (id == cmdId && (state == State.REQUESTED || state == State.START)) {
            state = State.START;
            return Outcome.STARTED;
        }
        if (state == State.START) {
            // Any other id — STOP or a stale one — ends this round; a stale stop for an older id
            // cannot end a round the driver has not started yet (QEMU's rule).
            state = State.STOP;
            return Outcome.STOPPED;
        }
        return Outcome.IGNORED;
    }

    /**
     * A hint buffer {@code [gpa, gpa + length)}: cleared from the migration through {@code sink}
     * when hinting is started, ignored otherwise. The sink runs under this object's lock.
     *
     * @throws IllegalArgumentException from the sink when the range is not inside guest RAM
     */
    public synchronized Outcome applyHint(long gpa, long length, HintSink sink, long[] clearedOut) {
        if (state != State.START) {
            return Outcome.IGNORED;
        }
        clearedOut[0] = sink.clear(gpa, length);
        return Outcome.APPLIED;
    }

    /** A device reset: hinting is done. */
    public synchronized void reset() {
        state = State.DONE;
    }

    /**
     * A migration destination takes the source's id counter but never a round in progress: the
     * destination runs no migration, so hinting there is DONE (as Firecracker restores it).
     */
    public synchronized void restore(int cmdId) {
        this.cmdId = cmdId;
        this.nextId = Integer.compareUnsigned(cmdId, CMD_ID_MIN) >= 0 ? (cmdId == -1 ? CMD_ID_MIN : cmdId + 1)
                : CMD_ID_MIN;
        this.state = State.DONE;
    }
}
