package dev.ferry.vfio.migration;

import dev.ferry.core.machine.RunState;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.transport.NettyMigrationTransports;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;
import dev.ferry.vfio.uapi.VfioDeviceState;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

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
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every injected fault ends the way QEMU's handlers end it. For each capability set, each state
 * the source sequence enters is made to fail (fail-set: the arc fails, the device stays; error-set:
 * the device falls into ERROR), alone and with a failing reset: the source VM runs again with its
 * VF RUNNING — recovered, or reset once per failed SET that QEMU answers with a reset — or, when
 * the reset fails too, the VF is lost and the VM runs anyway; the migration's error names the
 * device, the arc and the errno. Each case states the exact device history QEMU's policy
 * produces. Faults at the destination, failed reads and cancels in every phase follow.
 */
@Timeout(300)
class VfioMigrationFaultTest {
    static NettyMigrationTransports transports;
    static final MigrationCapabilities ACK = MigrationCapabilities.defaults().withSwitchoverAck(true);
    static final String STATE = ",state=128K";

    @BeforeAll
    static void transports() {
        transports = new NettyMigrationTransports();
    }

    @AfterAll
    static void close() {
        transports.close();
    }

    /**
     * One injected source fault and QEMU's outcome.
     *
     * @param arc     the failing arc as the error names it ("A->B")
     * @param history the source VF's states, in order
     * @param resets  successful resets of the source VF
     * @param lost    the reset failed: the device is lost
     * @param status  how the migration ends (COMPLETED when only cleanup failed)
     */
    record Case(String caps, String fault, String arc, List<VfioDeviceState> history, int resets, boolean lost,
                MigrationStatus status) {
        @Override
        public String toString() {
            return caps + " " + fault;
        }
    }

    static Case failed(String caps, String fault, String arc, int resets, VfioDeviceState... history) {
        return new Case(caps, fault, arc, List.of(history), resets, false, MigrationStatus.FAILED);
    }

    static Case lost(String caps, String fault, String arc, VfioDeviceState... history) {
        return new Case(caps, fault + ",fault=fail-reset", arc, List.of(history), 0, true, MigrationStatus.FAILED);
    }

    static Case completed(String caps, String fault, String arc, int resets, boolean lost, VfioDeviceState... history) {
        return new Case(caps, fault, arc, List.of(history), resets, lost, MigrationStatus.COMPLETED);
    }

    static final String SC = "stop-copy";
    static final String P2P = "stop-copy,p2p";
    static final String PRE = "stop-copy,pre-copy";
    static final String ALL = "stop-copy,p2p,pre-copy";

    /*
     * How to read the histories. A failure after the VM stopped restarts it (prepare → RUNNING_P2P
     * for a P2P device, main → RUNNING); a VM-change-state or notifier SET that fails resets the
     * device at once; a SET in save setup or complete tries its recover state first (RUNNING,
     * STOP), which from ERROR the kernel refuses, so it too ends in a reset. A fault on a state
     * hits every entry into it, so a handler that runs again after a reset can fail again.
     */
    static Stream<Case> sourceFaults() {
        return Stream.of(
                // STOP_COPY only: R, S, SC, S
                failed(SC, "fail-set:STOP", "RUNNING->STOP", 1, RUNNING, RUNNING),
                failed(SC, "fail-set:STOP_COPY", "STOP->STOP_COPY", 0, RUNNING, STOP, RUNNING),
                failed(SC, "error-set:STOP", "RUNNING->STOP", 1, RUNNING, ERROR, RUNNING),
                failed(SC, "error-set:STOP_COPY", "STOP->STOP_COPY", 1, RUNNING, STOP, ERROR, RUNNING),
                lost(SC, "fail-set:STOP", "RUNNING->STOP", RUNNING),
                failed(SC, "fail-set:STOP_COPY,fault=fail-reset", "STOP->STOP_COPY", 0, RUNNING, STOP, RUNNING),
                lost(SC, "error-set:STOP", "RUNNING->STOP", RUNNING, ERROR),
                lost(SC, "error-set:STOP_COPY", "STOP->STOP_COPY", RUNNING, STOP, ERROR),
                // + P2P: R, RP, S, SC, S
                failed(P2P, "fail-set:RUNNING_P2P", "RUNNING->RUNNING_P2P", 3, RUNNING, RUNNING, RUNNING, RUNNING),
                failed(P2P, "fail-set:STOP", "RUNNING_P2P->STOP", 1, RUNNING, RUNNING_P2P, RUNNING, RUNNING_P2P,
                        RUNNING),
                failed(P2P, "fail-set:STOP_COPY", "STOP->STOP_COPY", 0, RUNNING, RUNNING_P2P, STOP, RUNNING_P2P,
                        RUNNING),
                failed(P2P, "error-set:RUNNING_P2P", "RUNNING->RUNNING_P2P", 3, RUNNING, ERROR, RUNNING, ERROR,
                        RUNNING, ERROR, RUNNING),
                failed(P2P, "error-set:STOP", "RUNNING_P2P->STOP", 1, RUNNING, RUNNING_P2P, ERROR, RUNNING,
                        RUNNING_P2P, RUNNING),
                failed(P2P, "error-set:STOP_COPY", "STOP->STOP_COPY", 1, RUNNING, RUNNING_P2P, STOP, ERROR, RUNNING,
                        RUNNING_P2P, RUNNING),
                lost(P2P, "fail-set:RUNNING_P2P", "RUNNING->RUNNING_P2P", RUNNING),
                lost(P2P, "fail-set:STOP", "RUNNING_P2P->STOP", RUNNING, RUNNING_P2P),
                lost(P2P, "error-set:RUNNING_P2P", "RUNNING->RUNNING_P2P", RUNNING, ERROR),
                lost(P2P, "error-set:STOP", "RUNNING_P2P->STOP", RUNNING, RUNNING_P2P, ERROR),
                lost(P2P, "error-set:STOP_COPY", "STOP->STOP_COPY", RUNNING, RUNNING_P2P, STOP, ERROR),
                // + PRE_COPY: R, PC, SC, S
                failed(PRE, "fail-set:PRE_COPY", "RUNNING->PRE_COPY", 0, RUNNING),
                failed(PRE, "fail-set:STOP_COPY", "PRE_COPY->STOP_COPY", 1, RUNNING, PRE_COPY, RUNNING),
                completed(PRE, "fail-set:STOP", "STOP_COPY->STOP", 1, false, RUNNING, PRE_COPY, STOP_COPY, RUNNING),
                failed(PRE, "error-set:PRE_COPY", "RUNNING->PRE_COPY", 1, RUNNING, ERROR, RUNNING),
                failed(PRE, "error-set:STOP_COPY", "PRE_COPY->STOP_COPY", 1, RUNNING, PRE_COPY, ERROR, RUNNING),
                completed(PRE, "error-set:STOP", "STOP_COPY->STOP", 1, false, RUNNING, PRE_COPY, STOP_COPY, ERROR,
                        RUNNING),
                failed(PRE, "fail-set:PRE_COPY,fault=fail-reset", "RUNNING->PRE_COPY", 0, RUNNING),
                lost(PRE, "fail-set:STOP_COPY", "PRE_COPY->STOP_COPY", RUNNING, PRE_COPY),
                lost(PRE, "error-set:PRE_COPY", "RUNNING->PRE_COPY", RUNNING, ERROR),
                completed(PRE, "fail-set:STOP,fault=fail-reset", "STOP_COPY->STOP", 0, true, RUNNING, PRE_COPY,
                        STOP_COPY),
                // all three: R, PC, PCP, SC, S
                failed(ALL, "fail-set:PRE_COPY", "RUNNING->PRE_COPY", 0, RUNNING),
                failed(ALL, "fail-set:PRE_COPY_P2P", "PRE_COPY->PRE_COPY_P2P", 1, RUNNING, PRE_COPY, RUNNING,
                        RUNNING_P2P, STOP, RUNNING_P2P, RUNNING),
                failed(ALL, "fail-set:STOP_COPY", "PRE_COPY_P2P->STOP_COPY", 1, RUNNING, PRE_COPY, PRE_COPY_P2P,
                        RUNNING, RUNNING_P2P, RUNNING),
                completed(ALL, "fail-set:STOP", "STOP_COPY->STOP", 1, false, RUNNING, PRE_COPY, PRE_COPY_P2P,
                        STOP_COPY, RUNNING),
                failed(ALL, "error-set:PRE_COPY", "RUNNING->PRE_COPY", 1, RUNNING, ERROR, RUNNING),
                failed(ALL, "error-set:PRE_COPY_P2P", "PRE_COPY->PRE_COPY_P2P", 1, RUNNING, PRE_COPY, ERROR, RUNNING,
                        RUNNING_P2P, STOP, RUNNING_P2P, RUNNING),
                failed(ALL, "error-set:STOP_COPY", "PRE_COPY_P2P->STOP_COPY", 1, RUNNING, PRE_COPY, PRE_COPY_P2P,
                        ERROR, RUNNING, RUNNING_P2P, RUNNING),
                completed(ALL, "error-set:STOP", "STOP_COPY->STOP", 1, false, RUNNING, PRE_COPY, PRE_COPY_P2P,
                        STOP_COPY, ERROR, RUNNING),
                lost(ALL, "fail-set:PRE_COPY_P2P", "PRE_COPY->PRE_COPY_P2P", RUNNING, PRE_COPY),
                lost(ALL, "fail-set:STOP_COPY", "PRE_COPY_P2P->STOP_COPY", RUNNING, PRE_COPY, PRE_COPY_P2P),
                lost(ALL, "error-set:PRE_COPY_P2P", "PRE_COPY->PRE_COPY_P2P", RUNNING, PRE_COPY, ERROR),
                lost(ALL, "error-set:STOP_COPY", "PRE_COPY_P2P->STOP_COPY", RUNNING, PRE_COPY, PRE_COPY_P2P, ERROR),
                completed(ALL, "error-set:STOP,fault=fail-reset", "STOP_COPY->STOP", 0, true, RUNNING, PRE_COPY,
                        PRE_COPY_P2P, STOP_COPY, ERROR));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("sourceFaults")
    void sourceFaultEndsAsQemuEndsIt(Case c) throws Exception {
        try (VfioVmPair pair = VfioVmPair.builder().vf(c.caps() + STATE + ",fault=" + c.fault()).build()) {
            VfioVmPair.Outcome o = pair.migrate(transports, ACK);
            EmulatedVfioDevice vf = pair.srcVfs.get(0);
            VfioMigration m = pair.srcMigs.get(0);
            assertEquals(c.status(), o.source(), o::toString);
            assertEquals(c.history(), vf.stateHistory(), "source vf0 history");
            assertEquals(c.resets(), vf.resets(), "source vf0 resets");
            assertEquals(c.lost(), m.lost(), "lost");
            assertEquals(c.lost(), m.stats().lost());
            String failure = c.status() == MigrationStatus.FAILED ? o.sourceError()
                    : String.join("; ", m.stats().errors());
            assertTrue(failure.contains("vf0: SET MIG_DEVICE_STATE " + c.arc() + ": EIO"),
                    "the error names device, arc and errno: " + failure);
            if (c.lost()) {
                assertTrue(failure.contains("VFIO_DEVICE_RESET failed too") && failure.contains("vf0 is lost"), failure);
                assertTrue(m.blocker().orElseThrow().reason().contains("vf0: device lost"));
                assertTrue(pair.source.machine().migration().blockers().contains(m.blocker().get()),
                        "a lost device blocks the next migration");
            } else {
                assertEquals(RUNNING, vf.currentState());
                assertEquals(RUNNING, m.deviceState());
                assertFalse(pair.source.machine().migration().blockers().stream()
                        .anyMatch(b -> b.reason().contains("lost")));
                if (c.resets() > 0) {
                    assertTrue(failure.contains("vf0 reset, now RUNNING"), failure);
                }
            }
            if (c.status() == MigrationStatus.FAILED) {
                assertEquals(RunState.RUNNING, pair.source.machine().runState(), "the source VM runs again");
                assertNotEquals(RunState.RUNNING, pair.destination.machine().runState(), "the destination must not run");
            } else {
                assertEquals(MigrationStatus.COMPLETED, o.destination(), o::toString);
                assertEquals(RunState.POSTMIGRATE, pair.source.machine().runState());
                assertEquals(RunState.RUNNING, pair.destination.machine().runState());
                assertEquals(RUNNING, pair.dstVfs.get(0).currentState());
            }
        }
    }

    @Test
    void aFailedReadInStopCopyRestartsTheSource() throws Exception {
        try (VfioVmPair pair = VfioVmPair.builder().vf(ALL + STATE + ",fault=fail-read").build()) {
            VfioVmPair.Outcome o = pair.migrate(transports, ACK);
            assertEquals(MigrationStatus.FAILED, o.source(), o::toString);
            assertTrue(o.sourceError().contains("vf0: read(data_fd): EIO (injected fault: fail-read) with the device"
                    + " in STOP_COPY"), o.sourceError());
            assertRestarted(pair, RUNNING, PRE_COPY, PRE_COPY_P2P, STOP_COPY, STOP, RUNNING_P2P, RUNNING);
        }
    }

    @Test
    void aStopCopyThatNeverEndsIsADeviceErrorNotASpin() throws Exception {
        try (VfioVmPair pair = VfioVmPair.builder().vf(P2P + STATE + ",fault=no-eof").build()) {
            VfioVmPair.Outcome o = pair.migrate(transports, ACK);
            assertEquals(MigrationStatus.FAILED, o.source(), o::toString);
            assertTrue(o.sourceError().contains("vf0: read(data_fd) in STOP_COPY answered ENOMSG "
                    + VfioSaveSide.STOP_COPY_NO_DATA_LIMIT + " times in a row"), o.sourceError());
            assertRestarted(pair, RUNNING, RUNNING_P2P, STOP, STOP_COPY, STOP, RUNNING_P2P, RUNNING);
        }
    }

    /**
     * The destination VF refuses the state at RESUMING→STOP. The destination drives that arc when
     * the stream is loaded, before it answers the source: the load fails, the source keeps the
     * guest — with {@code -S} exactly as without it (the verdict does not wait for {@code cont}).
     */
    @ParameterizedTest(name = "autostart {0}")
    @org.junit.jupiter.params.provider.ValueSource(booleans = {true, false})
    void destinationRejectingTheStateFailsTheLoadAndTheSourceRuns(boolean autostart) throws Exception {
        try (VfioVmPair pair = VfioVmPair.builder().vf(ALL + STATE, "fault=reject-load").build()) {
            VfioVmPair.Outcome o = pair.migrate(transports, ACK, autostart);
            assertEquals(MigrationStatus.FAILED, o.destination(), o::toString);
            assertTrue(o.destinationError().startsWith("vf0: SET MIG_DEVICE_STATE RESUMING->STOP: EINVAL")
                    && o.destinationError().contains("reject-load")
                    && o.destinationError().contains("vf0 reset, now RUNNING"), o.destinationError());
            EmulatedVfioDevice dst = pair.dstVfs.get(0);
            assertEquals(1, dst.resets(), "QEMU resets the device whose resume failed");
            assertEquals(List.of(RUNNING, RUNNING_P2P, STOP, RESUMING, RUNNING), dst.stateHistory(),
                    "the VM never started: the device went no further than the reset");
            assertEquals(RunState.INMIGRATE, pair.destination.machine().runState());
            assertEquals(MigrationStatus.FAILED, o.source(), o::toString);
            assertTrue(o.sourceError().contains("the destination failed to load"), o.sourceError());
            assertRestarted(pair, RUNNING, PRE_COPY, PRE_COPY_P2P, STOP_COPY, STOP, RUNNING_P2P, RUNNING);
        }
    }

    /** A paused ({@code -S}) destination whose VF took the state holds it in STOP; cont runs it. */
    @Test
    void aPausedDestinationHoldsItsValidatedVfInStopUntilCont() throws Exception {
        try (VfioVmPair pair = VfioVmPair.builder().vf(ALL + STATE).build()) {
            VfioVmPair.Outcome o = pair.migrate(transports, ACK, false);
            assertEquals(MigrationStatus.COMPLETED, o.destination(), o::toString);
            assertEquals(MigrationStatus.COMPLETED, o.source(), o::toString);
            EmulatedVfioDevice dst = pair.dstVfs.get(0);
            assertEquals(STOP, dst.currentState(), "validated before the answer, not yet running");
            assertEquals(RunState.PAUSED, pair.destination.machine().runState());
            pair.destination.machine().vmStart();
            assertEquals(List.of(RUNNING, RUNNING_P2P, STOP, RESUMING, STOP, RUNNING_P2P, RUNNING), dst.stateHistory());
        }
    }

    /** Corrupt device data: the destination device refuses the write; the load fails naming the device. */
    @Test
    void destinationRefusingCorruptDataFailsTheLoad() throws Exception {
        try (VfioVmPair pair = VfioVmPair.builder().vf(ALL + STATE + ",fault=corrupt-data").build()) {
            VfioVmPair.Outcome o = pair.migrate(transports, ACK);
            assertEquals(MigrationStatus.FAILED, o.destination(), o::toString);
            assertTrue(o.destinationError().contains("vf0: write(data_fd): EINVAL")
                    && o.destinationError().contains("digest mismatch (corrupt data)")
                    && o.destinationError().contains("with the device in RESUMING"), o.destinationError());
            assertEquals(RunState.INMIGRATE, pair.destination.machine().runState());
            assertEquals(MigrationStatus.FAILED, o.source(), o::toString);
            assertRestarted(pair, RUNNING, PRE_COPY, PRE_COPY_P2P, STOP_COPY, STOP, RUNNING_P2P, RUNNING);
        }
    }

    static Stream<Object[]> cancels() {
        List<Object[]> l = new ArrayList<>();
        l.add(new Object[] {ALL, PhaseHook.Phase.SETUP, new VfioDeviceState[] {RUNNING, PRE_COPY, RUNNING}});
        l.add(new Object[] {ALL, PhaseHook.Phase.ITERATE, new VfioDeviceState[] {RUNNING, PRE_COPY, RUNNING}});
        l.add(new Object[] {ALL, PhaseHook.Phase.COMPLETE, new VfioDeviceState[] {RUNNING, PRE_COPY, PRE_COPY_P2P,
                STOP_COPY, STOP, RUNNING_P2P, RUNNING}});
        l.add(new Object[] {SC, PhaseHook.Phase.SETUP, new VfioDeviceState[] {RUNNING}});
        l.add(new Object[] {SC, PhaseHook.Phase.ITERATE, new VfioDeviceState[] {RUNNING}});
        l.add(new Object[] {SC, PhaseHook.Phase.COMPLETE, new VfioDeviceState[] {RUNNING, STOP, STOP_COPY, STOP,
                RUNNING}});
        l.add(new Object[] {PRE, PhaseHook.Phase.COMPLETE, new VfioDeviceState[] {RUNNING, PRE_COPY, STOP_COPY, STOP,
                RUNNING}});
        return l.stream();
    }

    /** A cancel right after the VFIO handlers went through setup, an iteration, or the complete step. */
    @ParameterizedTest(name = "{0} cancelled in {1}")
    @MethodSource("cancels")
    void cancelInEveryPhaseLeavesTheVfRunning(String caps, PhaseHook.Phase phase, VfioDeviceState[] history)
            throws Exception {
        VfioVmPair[] ref = new VfioVmPair[1];
        try (VfioVmPair pair = VfioVmPair.builder().vf(caps + STATE).hook(phase, () -> ref[0].current().cancel())
                .build()) {
            ref[0] = pair;
            VfioVmPair.Outcome o = pair.migrate(transports, ACK);
            assertEquals(MigrationStatus.CANCELLED, o.source(), o::toString);
            assertTrue(o.sourceError().startsWith("migration cancelled by the user"), o.sourceError());
            assertRestarted(pair, history);
            assertNotEquals(RunState.RUNNING, pair.destination.machine().runState());
            // The destination saw the stream end early: its VF went at most as far as RESUMING
            // (not at all when the source hung up before the destination read the header).
            List<VfioDeviceState> dst = pair.dstVfs.get(0).stateHistory();
            List<VfioDeviceState> upToResuming = VfioMigrationEndToEndTest.destinationSequence(caps).subList(0,
                    VfioMigrationEndToEndTest.destinationSequence(caps).indexOf(RESUMING) + 1);
            assertTrue(dst.equals(List.of(RUNNING)) || dst.equals(upToResuming), dst::toString);
        }
    }

    private static void assertRestarted(VfioVmPair pair, VfioDeviceState... history) {
        EmulatedVfioDevice vf = pair.srcVfs.get(0);
        assertEquals(RunState.RUNNING, pair.source.machine().runState(), "the source VM runs again");
        assertEquals(Arrays.asList(history), vf.stateHistory(), "source vf0 history");
        assertEquals(RUNNING, vf.currentState());
        assertEquals(0, vf.resets());
        assertFalse(pair.srcMigs.get(0).lost());
        assertEquals(RUNNING, pair.srcMigs.get(0).stats().finalState());
        // the VF works: it churns again
        long steps = vf.churnSteps();
        vf.advance(10);
        assertEquals(steps + 10, vf.churnSteps());
    }
}
