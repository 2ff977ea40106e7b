package dev.ferry.virtio.balloon;

import dev.ferry.core.migration.PrecopyNotifier.Step;
import dev.ferry.virtio.balloon.FreePageHinting.State;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Walks every cell of the free page hinting table in {@link FreePageHinting} (and docs/devices.md). */
class FreePageHintingTableTest {
    private static final int ID = FreePageHinting.CMD_ID_MIN + 5;

    /** A machine in {@code s}, its current id {@link #ID} (the next one ID + 1). */
    private static FreePageHinting in(State s) {
        FreePageHinting h = new FreePageHinting();
        h.restore(ID - 1);
        h.onPrecopy(Step.AFTER_BITMAP_SYNC, false); // REQUESTED(ID)
        switch (s) {
            case REQUESTED -> { }
            case START -> h.onDriverId(ID);
            case STOP -> h.onPrecopy(Step.BEFORE_BITMAP_SYNC, false);
            case DONE -> h.onPrecopy(Step.CLEANUP, false);
        }
        assertEquals(s, h.state());
        assertEquals(ID, h.cmdId());
        return h;
    }

    private record Cell(State from, String event, State to, boolean configChange, String outcome) {
    }

    @Test
    void everyCell() {
        List<Cell> table = new ArrayList<>();
        for (State s : State.values()) {
            boolean notDone = s != State.DONE;
            table.add(new Cell(s, "before-sync", State.STOP, s != State.STOP, null));
            table.add(new Cell(s, "after-sync-running", State.REQUESTED, true, null));
            table.add(new Cell(s, "after-sync-stopped", State.DONE, notDone, null));
            table.add(new Cell(s, "cleanup", State.DONE, notDone, null));
            boolean live = s == State.REQUESTED || s == State.START;
            table.add(new Cell(s, "driver-current-id", live ? State.START : s, false, live ? "STARTED" : "IGNORED"));
            table.add(new Cell(s, "driver-other-id", s == State.START ? State.STOP : s, false,
                    s == State.START ? "STOPPED" : "IGNORED"));
            table.add(new Cell(s, "driver-stop", s == State.START ? State.STOP : s, false,
                    s == State.START ? "STOPPED" : "IGNORED"));
            table.add(new Cell(s, "hint", s, false, s == State.START ? "APPLIED" : "IGNORED"));
            table.add(new Cell(s, "reset", State.DONE, false, null));
        }
        assertEquals(36, table.size());
        for (Cell c : table) {
            FreePageHinting h = in(c.from());
            int published = h.publishedCmdId();
            long[] cleared = {0};
            List<long[]> sunk = new ArrayList<>();
            Object outcome = null;
            boolean changed = false;
            switch (c.event()) {
                case "before-sync" -> changed = h.onPrecopy(Step.BEFORE_BITMAP_SYNC, false);
                case "after-sync-running" -> changed = h.onPrecopy(Step.AFTER_BITMAP_SYNC, false);
                case "after-sync-stopped" -> changed = h.onPrecopy(Step.AFTER_BITMAP_SYNC, true);
                case "cleanup" -> changed = h.onPrecopy(Step.CLEANUP, true);
                case "driver-current-id" -> outcome = h.onDriverId(ID);
                case "driver-other-id" -> outcome = h.onDriverId(ID - 1);
                case "driver-stop" -> outcome = h.onDriverId(FreePageHinting.CMD_ID_STOP);
                case "hint" -> outcome = h.applyHint(0x1000, 0x2000, (g, l) -> {
                    sunk.add(new long[] {g, l});
                    return l / 4096;
                }, cleared);
                case "reset" -> h.reset();
                default -> throw new AssertionError(c.event());
            }
            String where = c.from() + " × " + c.event();
            assertEquals(c.to(), h.state(), where);
            assertEquals(c.configChange(), changed, where + ": config change");
            if (c.outcome() != null) {
                assertEquals(c.outcome(), String.valueOf(outcome), where);
            }
            if (c.event().equals("hint")) {
                assertEquals(c.from() == State.START ? 1 : 0, sunk.size(), where + ": sink calls");
                assertEquals(c.from() == State.START ? 2 : 0, cleared[0], where + ": pages cleared");
            }
            if (c.event().equals("after-sync-running")) {
                assertEquals(ID + 1, h.cmdId(), where + ": a fresh id");
                assertEquals(ID + 1, h.publishedCmdId());
            } else {
                assertEquals(ID, h.cmdId(), where + ": the id stays");
            }
            int expectPublished = switch (h.state()) {
                case REQUESTED, START -> h.cmdId();
                case STOP -> FreePageHinting.CMD_ID_STOP;
                case DONE -> FreePageHinting.CMD_ID_DONE;
            };
            assertEquals(expectPublished, h.publishedCmdId(), where + ": published id");
            if (c.event().startsWith("before") || c.event().startsWith("after") || c.event().equals("cleanup")) {
                assertEquals(changed, published != h.publishedCmdId(), where + ": changed iff the published id moved");
            }
        }
    }

    @Test
    void idsWrapWithinTheCommandRange() {
        FreePageHinting h = new FreePageHinting();
        h.restore(-1); // 0xffffffff
        h.onPrecopy(Step.AFTER_BITMAP_SYNC, false);
        assertEquals(FreePageHinting.CMD_ID_MIN, h.cmdId(), "after 0xffffffff comes 0x80000000, never STOP or DONE");
        h.restore(7); // a hostile id below the range
        h.onPrecopy(Step.AFTER_BITMAP_SYNC, false);
        assertEquals(FreePageHinting.CMD_ID_MIN, h.cmdId());
        assertEquals(State.REQUESTED, h.state());
    }
}
