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
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Walks every (current, target) cell of {@link VfioMigrationFsm} for every capability set against
 * matrices worked out by hand from the reference arc table and the skip rule.
 *
 * <p>Matrix notation: rows are the current state, columns the target, both in kernel order
 * (ERROR, STOP, RUN, SC, RES, P2P, PC, PCP); a cell is the kernel's next single arc, {@code x}
 * where the kernel refuses. STOP_COPY→PRE_COPY(_P2P) is {@code x}: the request has no path.
 */
class VfioMigrationFsmTest {

    private static final MigCapabilities SC = MigCapabilities.STOP_COPY_ONLY;
    private static final MigCapabilities SC_P2P = MigCapabilities.STOP_COPY_P2P;
    private static final MigCapabilities SC_PRE = MigCapabilities.STOP_COPY_PRE_COPY;
    private static final MigCapabilities ALL = MigCapabilities.ALL;

    private static final String STOP_COPY_ONLY = """
                   ERROR STOP  RUN   SC    RES   P2P   PC    PCP
            ERROR  x     x     x     x     x     x     x     x
            STOP   x     STOP  RUN   SC    RES   x     x     x
            RUN    x     STOP  RUN   STOP  STOP  x     x     x
            SC     x     STOP  STOP  SC    STOP  x     x     x
            RES    x     STOP  STOP  STOP  RES   x     x     x
            P2P    x     x     x     x     x     x     x     x
            PC     x     x     x     x     x     x     x     x
            PCP    x     x     x     x     x     x     x     x
            """;

    private static final String STOP_COPY_AND_P2P = """
                   ERROR STOP  RUN   SC    RES   P2P   PC    PCP
            ERROR  x     x     x     x     x     x     x     x
            STOP   x     STOP  P2P   SC    RES   P2P   x     x
            RUN    x     P2P   RUN   P2P   P2P   P2P   x     x
            SC     x     STOP  STOP  SC    STOP  STOP  x     x
            RES    x     STOP  STOP  STOP  RES   STOP  x     x
            P2P    x     STOP  RUN   STOP  STOP  P2P   x     x
            PC     x     x     x     x     x     x     x     x
            PCP    x     x     x     x     x     x     x     x
            """;

    private static final String STOP_COPY_AND_PRE_COPY = """
                   ERROR STOP  RUN   SC    RES   P2P   PC    PCP
            ERROR  x     x     x     x     x     x     x     x
            STOP   x     STOP  RUN   SC    RES   x     RUN   x
            RUN    x     STOP  RUN   STOP  STOP  x     PC    x
            SC     x     STOP  STOP  SC    STOP  x     x     x
            RES    x     STOP  STOP  STOP  RES   x     STOP  x
            P2P    x     x     x     x     x     x     x     x
            PC     x     RUN   RUN   SC    RUN   x     PC    x
            PCP    x     x     x     x     x     x     x     x
            """;

    private static final String ALL_THREE = """
                   ERROR STOP  RUN   SC    RES   P2P   PC    PCP
            ERROR  x     x     x     x     x     x     x     x
            STOP   x     STOP  P2P   SC    RES   P2P   P2P   P2P
            RUN    x     P2P   RUN   P2P   P2P   P2P   PC    P2P
            SC     x     STOP  STOP  SC    STOP  STOP  x     x
            RES    x     STOP  STOP  STOP  RES   STOP  STOP  STOP
            P2P    x     STOP  RUN   STOP  STOP  P2P   RUN   PCP
            PC     x     RUN   RUN   PCP   RUN   RUN   PC    PCP
            PCP    x     P2P   P2P   SC    P2P   P2P   PC    PCP
            """;

    private static final String NOTHING = """
                   ERROR STOP  RUN   SC    RES   P2P   PC    PCP
            ERROR  x     x     x     x     x     x     x     x
            STOP   x     x     x     x     x     x     x     x
            RUN    x     x     x     x     x     x     x     x
            SC     x     x     x     x     x     x     x     x
            RES    x     x     x     x     x     x     x     x
            P2P    x     x     x     x     x     x     x     x
            PC     x     x     x     x     x     x     x     x
            PCP    x     x     x     x     x     x     x     x
            """;

    static Stream<Arguments> capabilitySets() {
        return Stream.of(
                Arguments.of(SC, STOP_COPY_ONLY),
                Arguments.of(SC_P2P, STOP_COPY_AND_P2P),
                Arguments.of(SC_PRE, STOP_COPY_AND_PRE_COPY),
                Arguments.of(ALL, ALL_THREE),
                // bits a newer kernel may add change nothing
                Arguments.of(new MigCapabilities(ALL.flags() | 1L << 9), ALL_THREE),
                // without STOP_COPY a device is not migratable: every request is refused
                Arguments.of(new MigCapabilities(0), NOTHING),
                Arguments.of(new MigCapabilities(MigCapabilities.P2P), NOTHING),
                Arguments.of(new MigCapabilities(MigCapabilities.PRE_COPY), NOTHING),
                Arguments.of(new MigCapabilities(MigCapabilities.P2P | MigCapabilities.PRE_COPY), NOTHING));
    }

    static Stream<MigCapabilities> validCapabilitySets() {
        return Stream.of(SC, SC_P2P, SC_PRE, ALL);
    }

    // ---- (1) every cell ---------------------------------------------------------------------

    @ParameterizedTest(name = "{0}")
    @MethodSource("capabilitySets")
    void nextStepMatchesTheHandWrittenMatrixInEveryCell(MigCapabilities caps, String matrix) {
        Map<VfioDeviceState, Map<VfioDeviceState, Optional<VfioDeviceState>>> expected = parse(matrix);
        List<String> wrong = new ArrayList<>();
        for (VfioDeviceState current : VfioDeviceState.values()) {
            for (VfioDeviceState target : VfioDeviceState.values()) {
                Optional<VfioDeviceState> want = expected.get(current).get(target);
                Optional<VfioDeviceState> got = VfioMigrationFsm.nextStep(current, target, caps);
                if (!want.equals(got)) {
                    wrong.add(current + "\u2192" + target + ": expected " + want + ", got " + got);
                }
                assertEquals(got.isEmpty(), VfioMigrationFsm.refusal(current, target, caps).isPresent(),
                        current + "\u2192" + target + ": refusal reason iff refused");
            }
        }
        assertTrue(wrong.isEmpty(), caps + " differs from the matrix:\n" + String.join("\n", wrong));
    }

    @Test
    void supportedStatesFollowTheFlags() {
        assertEquals(Set.of(STOP, RUNNING, STOP_COPY, RESUMING), supportedStates(SC));
        assertEquals(Set.of(STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P), supportedStates(SC_P2P));
        assertEquals(Set.of(STOP, RUNNING, STOP_COPY, RESUMING, PRE_COPY), supportedStates(SC_PRE));
        assertEquals(Set.of(STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P),
                supportedStates(ALL));
        assertEquals(Set.of(), supportedStates(new MigCapabilities(MigCapabilities.P2P | MigCapabilities.PRE_COPY)));
        assertFalse(VfioMigrationFsm.supported(ERROR, new MigCapabilities(-1L)),
                "ERROR is never supported, whatever the flags");
    }

    /** The arcs each driver must implement, as listed in the kernel's own comment. */
    @Test
    void legalArcsAreExactlyTheArcsTheKernelMakesDriversImplement() {
        assertEquals(arcs(STOP, RUNNING, STOP, STOP_COPY, STOP, RESUMING,
                        RUNNING, STOP, STOP_COPY, STOP, RESUMING, STOP),
                legalArcs(SC));
        assertEquals(arcs(STOP, STOP_COPY, STOP, RESUMING, STOP_COPY, STOP, RESUMING, STOP,
                        RUNNING, RUNNING_P2P, RUNNING_P2P, RUNNING, RUNNING_P2P, STOP, STOP, RUNNING_P2P),
                legalArcs(SC_P2P));
        assertEquals(arcs(STOP, RUNNING, STOP, STOP_COPY, STOP, RESUMING,
                        RUNNING, STOP, STOP_COPY, STOP, RESUMING, STOP,
                        RUNNING, PRE_COPY, PRE_COPY, RUNNING, PRE_COPY, STOP_COPY),
                legalArcs(SC_PRE));
        assertEquals(arcs(STOP, STOP_COPY, STOP, RESUMING, STOP_COPY, STOP, RESUMING, STOP,
                        RUNNING, RUNNING_P2P, RUNNING_P2P, RUNNING, RUNNING_P2P, STOP, STOP, RUNNING_P2P,
                        RUNNING, PRE_COPY, PRE_COPY, RUNNING, PRE_COPY, PRE_COPY_P2P,
                        PRE_COPY_P2P, PRE_COPY, PRE_COPY_P2P, RUNNING_P2P, PRE_COPY_P2P, STOP_COPY,
                        RUNNING_P2P, PRE_COPY_P2P),
                legalArcs(ALL));
        assertFalse(VfioMigrationFsm.isLegalArc(STOP, STOP, ALL), "a state to itself is not an arc");
        assertTrue(VfioMigrationFsm.isLegalArc(new VfioArc(PRE_COPY_P2P, STOP_COPY), ALL));
    }

    // ---- (2) the reference's example paths -------------------------------------------------

    @Test
    void referenceExamplePaths() {
        assertEquals(List.of(STOP, STOP_COPY), VfioMigrationFsm.path(RUNNING, STOP_COPY, SC));
        assertEquals(List.of(RUNNING_P2P, STOP, RESUMING), VfioMigrationFsm.path(RUNNING, RESUMING, ALL));
        assertEquals(List.of(PRE_COPY_P2P, STOP_COPY), VfioMigrationFsm.path(PRE_COPY, STOP_COPY, ALL));
        assertEquals(List.of(new VfioArc(PRE_COPY, PRE_COPY_P2P), new VfioArc(PRE_COPY_P2P, STOP_COPY)),
                VfioMigrationFsm.arcs(PRE_COPY, STOP_COPY, ALL));
        assertEquals(List.of(), VfioMigrationFsm.path(STOP, STOP, SC));
    }

    @Test
    void longestWalksFromTheKernelComment() {
        assertEquals(List.of(RUNNING, RUNNING_P2P, STOP, RESUMING), VfioMigrationFsm.path(PRE_COPY, RESUMING, ALL));
        assertEquals(List.of(STOP, RUNNING_P2P, RUNNING, PRE_COPY), VfioMigrationFsm.path(RESUMING, PRE_COPY, ALL));
        assertEquals(List.of(STOP, RUNNING, PRE_COPY), VfioMigrationFsm.path(RESUMING, PRE_COPY, SC_PRE));
        assertEquals(List.of(STOP, RUNNING_P2P, PRE_COPY_P2P), VfioMigrationFsm.path(RESUMING, PRE_COPY_P2P, ALL));
    }

    // ---- (3) the forbidden requests ----------------------------------------------------------

    @ParameterizedTest(name = "{0}")
    @MethodSource("validCapabilitySets")
    void pathRefusesStopCopyToPreCopy(MigCapabilities caps) {
        for (VfioDeviceState target : List.of(PRE_COPY, PRE_COPY_P2P)) {
            RefusedStateRequestException e = assertThrows(RefusedStateRequestException.class,
                    () -> VfioMigrationFsm.path(STOP_COPY, target, caps));
            assertTrue(e.getMessage().contains("forbidden"), e.getMessage());
            assertEquals(STOP_COPY, e.current());
            assertEquals(target, e.target());
            assertTrue(VfioMigrationFsm.nextStep(STOP_COPY, target, caps).isEmpty(),
                    "nextStep must refuse, not spin, on STOP_COPY\u2192" + target);
            assertTrue(VfioMigrationFsm.isForbidden(STOP_COPY, target));
        }
    }

    @Test
    void pathRefusesErrorAsTargetAndAsStart() {
        RefusedStateRequestException toError = assertThrows(RefusedStateRequestException.class,
                () -> VfioMigrationFsm.path(RUNNING, ERROR, ALL));
        assertTrue(toError.getMessage().contains("ERROR cannot be requested"), toError.getMessage());
        RefusedStateRequestException fromError = assertThrows(RefusedStateRequestException.class,
                () -> VfioMigrationFsm.path(ERROR, RUNNING, ALL));
        assertTrue(fromError.getMessage().contains("VFIO_DEVICE_RESET"), fromError.getMessage());
        RefusedStateRequestException missing = assertThrows(RefusedStateRequestException.class,
                () -> VfioMigrationFsm.path(RUNNING, PRE_COPY, SC_P2P));
        assertTrue(missing.getMessage().contains("PRE_COPY is not supported"), missing.getMessage());
    }

    // ---- (4) every path is made of legal arcs ------------------------------------------------

    @ParameterizedTest(name = "{0}")
    @MethodSource("validCapabilitySets")
    void everyPathIsLegalArcsEndingAtTheTarget(MigCapabilities caps) {
        for (VfioDeviceState current : VfioDeviceState.values()) {
            for (VfioDeviceState target : VfioDeviceState.values()) {
                boolean accepted = VfioMigrationFsm.nextStep(current, target, caps).isPresent()
                        && !VfioMigrationFsm.isForbidden(current, target);
                if (!accepted) {
                    assertThrows(RefusedStateRequestException.class,
                            () -> VfioMigrationFsm.path(current, target, caps), current + "\u2192" + target);
                    continue;
                }
                List<VfioArc> arcs = VfioMigrationFsm.arcs(current, target, caps);
                if (current == target) {
                    assertTrue(arcs.isEmpty());
                    continue;
                }
                assertTrue(arcs.size() <= 4, current + "\u2192" + target + " too long: " + arcs);
                assertEquals(current, arcs.get(0).from());
                assertEquals(target, arcs.get(arcs.size() - 1).to());
                VfioDeviceState at = current;
                for (VfioArc arc : arcs) {
                    assertEquals(at, arc.from(), "arcs chain");
                    assertTrue(VfioMigrationFsm.isLegalArc(arc, caps), arc + " on " + caps);
                    assertTrue(VfioMigrationFsm.supported(arc.to(), caps), arc + " ends in an unsupported state");
                    assertFalse(arc.to() == ERROR, "path through ERROR");
                    assertFalse(VfioMigrationFsm.isForbidden(arc.from(), arc.to()), arc + " is forbidden");
                    at = arc.to();
                }
            }
        }
    }

    // ---- (5) QEMU's sequences ------------------------------------------------------------------

    @Test
    void qemuSourceAndDestinationWithAllThreeFlags() {
        // save_setup → PRE_COPY; prepare → PRE_COPY_P2P; main → STOP_COPY; cleanup → STOP
        assertEquals(List.of(PRE_COPY, PRE_COPY_P2P, STOP_COPY, STOP),
                drive(ALL, RUNNING, PRE_COPY, PRE_COPY_P2P, STOP_COPY, STOP));
        for (VfioDeviceState[] pair : new VfioDeviceState[][] {
                {RUNNING, PRE_COPY}, {PRE_COPY, PRE_COPY_P2P}, {PRE_COPY_P2P, STOP_COPY}, {STOP_COPY, STOP}}) {
            assertTrue(VfioMigrationFsm.isLegalArc(pair[0], pair[1], ALL), pair[0] + "\u2192" + pair[1]);
        }
        // load_setup → RESUMING (kernel walks RUNNING_P2P, STOP); prepare → RUNNING_P2P; main → RUNNING
        assertEquals(List.of(RUNNING_P2P, STOP, RESUMING, STOP, RUNNING_P2P, RUNNING),
                drive(ALL, RUNNING, RESUMING, RUNNING_P2P, RUNNING));
        // cancel after switchover: VM restarts (prepare → RUNNING_P2P, main → RUNNING)
        assertEquals(List.of(STOP, RUNNING_P2P, RUNNING), drive(ALL, STOP_COPY, RUNNING_P2P, RUNNING));
        // cancel before switchover: the failed-migration notifier moves PRE_COPY → RUNNING
        assertEquals(List.of(RUNNING), drive(ALL, PRE_COPY, RUNNING));
    }

    @Test
    void qemuDegradedSequencesForDevicesWithoutTheOptionalFlags() {
        // STOP_COPY only: no pre-copy phase, no prepare handler
        assertEquals(List.of(STOP, STOP_COPY, STOP), drive(SC, RUNNING, STOP_COPY, STOP));
        assertEquals(List.of(STOP, RESUMING, STOP, RUNNING), drive(SC, RUNNING, RESUMING, RUNNING));
        assertEquals(List.of(STOP, RUNNING), drive(SC, STOP_COPY, RUNNING));
        // STOP_COPY | P2P: prepare quiesces P2P before the stop
        assertEquals(List.of(RUNNING_P2P, STOP, STOP_COPY, STOP),
                drive(SC_P2P, RUNNING, RUNNING_P2P, STOP_COPY, STOP));
        assertEquals(List.of(RUNNING_P2P, STOP, RESUMING, STOP, RUNNING_P2P, RUNNING),
                drive(SC_P2P, RUNNING, RESUMING, RUNNING_P2P, RUNNING));
        // STOP_COPY | PRE_COPY: PRE_COPY goes straight to STOP_COPY
        assertEquals(List.of(PRE_COPY, STOP_COPY, STOP), drive(SC_PRE, RUNNING, PRE_COPY, STOP_COPY, STOP));
        assertEquals(List.of(STOP, RESUMING, STOP, RUNNING), drive(SC_PRE, RUNNING, RESUMING, RUNNING));
    }

    @Test
    void statesAndFlagsKeepTheKernelNumbers() {
        for (VfioDeviceState s : VfioDeviceState.values()) {
            assertEquals(s, VfioDeviceState.fromValue(s.value()));
        }
        assertEquals(6, PRE_COPY.value());
        assertThrows(IllegalArgumentException.class, () -> VfioDeviceState.fromValue(8));
        assertEquals("{STOP_COPY|P2P|PRE_COPY}", ALL.toString());
        assertEquals(7L, ALL.flags());
        assertFalse(new MigCapabilities(MigCapabilities.P2P).migratable());
    }

    // ---- helpers ---------------------------------------------------------------------------------

    /**
     * Issues one SET per target, as QEMU does, and returns every state the device passes through;
     * each SET's walk must consist of legal arcs.
     */
    private static List<VfioDeviceState> drive(MigCapabilities caps, VfioDeviceState start, VfioDeviceState... targets) {
        List<VfioDeviceState> visited = new ArrayList<>();
        VfioDeviceState state = start;
        for (VfioDeviceState target : targets) {
            for (VfioArc arc : VfioMigrationFsm.arcs(state, target, caps)) {
                if (!VfioMigrationFsm.isLegalArc(arc, caps)) {
                    fail("SET " + target + " from " + state + " takes illegal arc " + arc + " on " + caps);
                }
                visited.add(arc.to());
            }
            state = target;
        }
        return visited;
    }

    private static Set<VfioDeviceState> supportedStates(MigCapabilities caps) {
        Set<VfioDeviceState> states = new HashSet<>();
        for (VfioDeviceState s : VfioDeviceState.values()) {
            if (VfioMigrationFsm.supported(s, caps)) {
                states.add(s);
            }
        }
        return states;
    }

    private static Set<VfioArc> legalArcs(MigCapabilities caps) {
        Set<VfioArc> arcs = new HashSet<>();
        for (VfioDeviceState from : VfioDeviceState.values()) {
            for (VfioDeviceState to : VfioDeviceState.values()) {
                if (VfioMigrationFsm.isLegalArc(from, to, caps)) {
                    arcs.add(new VfioArc(from, to));
                }
            }
        }
        return arcs;
    }

    private static Set<VfioArc> arcs(VfioDeviceState... fromTo) {
        Set<VfioArc> arcs = new HashSet<>();
        for (int i = 0; i < fromTo.length; i += 2) {
            arcs.add(new VfioArc(fromTo[i], fromTo[i + 1]));
        }
        return arcs;
    }

    private static final Map<String, VfioDeviceState> ABBREVIATIONS = Map.of(
            "ERROR", ERROR, "STOP", STOP, "RUN", RUNNING, "SC", STOP_COPY, "RES", RESUMING,
            "P2P", RUNNING_P2P, "PC", PRE_COPY, "PCP", PRE_COPY_P2P);

    private static Map<VfioDeviceState, Map<VfioDeviceState, Optional<VfioDeviceState>>> parse(String matrix) {
        List<String[]> lines = matrix.lines().map(String::strip).filter(l -> !l.isEmpty())
                .map(l -> l.split("\\s+")).toList();
        String[] header = lines.get(0);
        assertEquals(VfioDeviceState.values().length, header.length, "header");
        assertEquals(VfioDeviceState.values().length + 1, lines.size(), "rows");
        Map<VfioDeviceState, Map<VfioDeviceState, Optional<VfioDeviceState>>> cells = new EnumMap<>(VfioDeviceState.class);
        for (String[] row : lines.subList(1, lines.size())) {
            assertEquals(header.length + 1, row.length, "cells in row " + row[0]);
            VfioDeviceState current = state(row[0]);
            Map<VfioDeviceState, Optional<VfioDeviceState>> byTarget = new EnumMap<>(VfioDeviceState.class);
            for (int c = 0; c < header.length; c++) {
                byTarget.put(state(header[c]), row[c + 1].equals("x") ? Optional.empty() : Optional.of(state(row[c + 1])));
            }
            cells.put(current, byTarget);
        }
        assertEquals(VfioDeviceState.values().length, cells.size());
        return cells;
    }

    private static VfioDeviceState state(String abbreviation) {
        VfioDeviceState s = ABBREVIATIONS.get(abbreviation);
        if (s == null) {
            throw new IllegalArgumentException("unknown state abbreviation " + abbreviation);
        }
        return s;
    }
}
