package dev.ferry.migration.e2e;

import dev.ferry.core.cpu.soft.SoftCpuEngine;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.machine.VmChangeStateHandler;
import dev.ferry.core.machine.VmStateChangeException;
import dev.ferry.core.migration.MigrationEvent;
import dev.ferry.core.migration.MigrationNotifier;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.testing.FaultyDevice;
import dev.ferry.migration.testing.FaultyDevice.Phase;
import dev.ferry.migration.transport.NettyMigrationTransports;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.File;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.never;
import static org.mockito.Mockito.verify;

/**
 * Failure is safe: a fault or a cancel in any phase — setup, iteration, after the source VM
 * stopped, before the destination's ack — leaves the source VM running with its memory intact,
 * runs the failed/cancelled notifiers, frees every fd, and says why.
 */
@Timeout(60)
class MigrationFailureTest {
    static final long MiB = 1L << 20;
    static NettyMigrationTransports transports;

    @BeforeAll
    static void transports() throws Exception {
        transports = new NettyMigrationTransports();
        mock(MigrationNotifier.class); // Mockito opens its boot jar once, on first use
        // Warm up every event loop (each owns an epoll fd and an eventfd, made on first use) so
        // that they exist before any test counts fds.
        for (int i = 0; i < 4; i++) {
            try (SoftVmPair pair = new SoftVmPair(4 * MiB, SoftWorkload.of(1, 1_000_000, MiB, 1))) {
                Outcome o = migrate(pair, MigrationCapabilities.defaults(), null);
                assertEquals(MigrationStatus.COMPLETED, o.src.status(), () -> o.src.info().errorDesc()
                        + "; destination: " + o.dst.status() + " " + o.dst.errorDesc());
            }
        }
    }

    @AfterAll
    static void close() {
        transports.close();
    }

    record Outcome(SourceMigration src, DestinationMigration dst) {
    }

    /** The capabilities both sides use in this test (the multifd variants turn multifd on). */
    private MigrationCapabilities caps = MigrationCapabilities.defaults();

    static Outcome migrate(SoftVmPair pair, MigrationCapabilities caps, AtomicReference<SourceMigration> ref)
            throws Exception {
        pair.startSource();
        DestinationMigration dst = pair.destination(transports, caps);
        String bound = dst.listen("tcp:127.0.0.1:0");
        SourceMigration src = pair.source(transports, MigrationParameters.defaults().withMaxBandwidth(0), caps,
                MigrationEventSink.NONE);
        if (ref != null) {
            ref.set(src);
        }
        src.start(bound);
        src.await(Duration.ofSeconds(30));
        try {
            dst.await(Duration.ofSeconds(10));
        } catch (java.util.concurrent.TimeoutException e) {
            dst.abort();
            dst.await(Duration.ofSeconds(10));
        }
        return new Outcome(src, dst);
    }

    /** Open fds and what they point at, to name a leak. */
    static java.util.Map<String, String> openFds() {
        java.util.Map<String, String> m = new java.util.TreeMap<>();
        String[] l = new File("/proc/self/fd").list();
        for (String fd : l == null ? new String[0] : l) {
            try {
                m.put(fd, java.nio.file.Files.readSymbolicLink(Path.of("/proc/self/fd", fd)).toString());
            } catch (java.io.IOException e) {
                // closed while listing (the listing's own fd)
            }
        }
        return m;
    }

    static void assertNoFdLeak(java.util.Map<String, String> before) {
        java.util.Map<String, String> after = openFds();
        after.keySet().removeAll(before.keySet());
        // an event loop may still be closing a failed connect's channel: a leak is what stays
        for (int i = 0; i < 20 && !after.isEmpty(); i++) {
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            after = openFds();
            after.keySet().removeAll(before.keySet());
        }
        StringBuilder sockets = new StringBuilder();
        for (String target : after.values()) {
            if (target.startsWith("socket:[")) {
                String inode = target.substring(8, target.length() - 1);
                try {
                    Process p = new ProcessBuilder("ss", "-tanpe").redirectErrorStream(true).start();
                    for (String line : new String(p.getInputStream().readAllBytes()).split("\n")) {
                        if (line.contains("ino:" + inode)) {
                            sockets.append("\n  ").append(line.trim());
                        }
                    }
                } catch (java.io.IOException e) {
                    sockets.append(" (ss unavailable)");
                }
            }
        }
        assertTrue(after.isEmpty(), "fds leaked: " + after + sockets);
    }

    /** Runs one migration with a faulty participant on both sides and checks the source survived. */
    private void assertSafe(Phase failSource, Phase failDest, Phase hookPhase, boolean hookOnSource,
                            boolean cancel, MigrationStatus expected, String reason) throws Exception {
        AtomicReference<SourceMigration> src = new AtomicReference<>();
        AtomicReference<DestinationMigration> dstRef = new AtomicReference<>();
        Runnable hook = cancel ? () -> src.get().cancel() : () -> dstRef.get().abort();
        assertSafeWith(src, dstRef, failSource, failDest, hookPhase, hookOnSource, hook, expected, reason);
    }

    private void assertSafeWith(AtomicReference<SourceMigration> src, Phase failSource, Phase failDest,
                                Phase hookPhase, boolean hookOnSource, Runnable hook, MigrationStatus expected,
                                String reason) throws Exception {
        assertSafeWith(src, new AtomicReference<>(), failSource, failDest, hookPhase, hookOnSource, hook, expected,
                reason);
    }

    private void assertSafeWith(AtomicReference<SourceMigration> src, AtomicReference<DestinationMigration> dstRef,
                                Phase failSource, Phase failDest, Phase hookPhase, boolean hookOnSource, Runnable hook,
                                MigrationStatus expected, String reason) throws Exception {
        var fdsBefore = openFds();
        MigrationNotifier notifier = mock(MigrationNotifier.class);
        SoftWorkload w = SoftWorkload.of(2, 20_000_000, 16 * MiB, 3);
        FaultyDevice[] devices = new FaultyDevice[2];
        int[] n = {0};
        try (SoftVmPair pair = new SoftVmPair(64 * MiB, w, m -> {
            boolean source = n[0]++ == 0;
            FaultyDevice d = new FaultyDevice(source ? failSource : failDest,
                    source == hookOnSource ? hookPhase : Phase.NONE, hook);
            devices[source ? 0 : 1] = d;
            m.migration().registerLive(d, MigrationPriority.DEVICE);
        })) {
            pair.source.migration().addNotifier(notifier);
            pair.startSource();
            DestinationMigration dst = pair.destination(transports, caps);
            dstRef.set(dst);
            String bound = dst.listen("tcp:127.0.0.1:0");
            SourceMigration s = pair.source(transports, MigrationParameters.defaults().withMaxBandwidth(0),
                    caps, MigrationEventSink.NONE);
            src.set(s);
            s.start(bound);
            assertEquals(expected, s.await(Duration.ofSeconds(30)), () -> "source: " + s.info().errorDesc());
            String desc = s.info().errorDesc();
            assertNotNull(desc);
            assertTrue(desc.contains(reason), "reason '" + reason + "' in: " + desc);

            // The source runs again, its guest makes progress, its memory is intact.
            assertEquals(RunState.RUNNING, pair.source.runState());
            long p = pair.sourceCpus.pagesWritten();
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (pair.sourceCpus.pagesWritten() <= p && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            assertTrue(pair.sourceCpus.pagesWritten() > p, "the source guest runs");
            pair.source.vmStop(RunState.PAUSED);
            assertTrue(SoftCpuEngine.verifyWorkingSet(pair.source.memory(), w).intact());
            assertEquals(1, devices[0].cleanups.get(), "save cleanup ran once");

            verify(notifier).onMigrationEvent(MigrationEvent.SETUP);
            verify(notifier).onMigrationEvent(expected == MigrationStatus.CANCELLED
                    ? MigrationEvent.CANCELLED : MigrationEvent.FAILED);
            verify(notifier, never()).onMigrationEvent(MigrationEvent.COMPLETED);

            // The destination never runs a half-loaded guest.
            if (dst.status() != MigrationStatus.NONE) {
                try {
                    dst.await(Duration.ofSeconds(10));
                } catch (java.util.concurrent.TimeoutException e) {
                    dst.abort();
                    dst.await(Duration.ofSeconds(10));
                }
            }
            assertTrue(pair.destination.runState() != RunState.RUNNING, "destination must not run");
        }
        assertNoFdLeak(fdsBefore);
    }

    @ParameterizedTest
    @EnumSource(value = Phase.class, names = {"SAVE_SETUP", "SAVE_ITERATE", "SAVE_COMPLETE"})
    void sourceFaultInEveryPhase(Phase phase) throws Exception {
        assertSafe(phase, Phase.NONE, Phase.NONE, true, false, MigrationStatus.FAILED,
                "fault-dev: injected failure in " + phase);
    }

    @ParameterizedTest
    @EnumSource(value = Phase.class, names = {"SAVE_SETUP", "SAVE_ITERATE", "SAVE_COMPLETE"})
    void cancelInEveryPhase(Phase phase) throws Exception {
        assertSafe(Phase.NONE, Phase.NONE, phase, true, true, MigrationStatus.CANCELLED, "cancelled by the user");
    }

    /**
     * Cancel after the source sent everything, while it waits for the destination's ack: the
     * source runs again and the destination, which sees the source hang up, does not start.
     */
    @Test
    void cancelWhileAwaitingTheDestinationsAck() throws Exception {
        AtomicReference<SourceMigration> src = new AtomicReference<>();
        assertSafeWith(src, Phase.NONE, Phase.NONE, Phase.LOAD_CLEANUP, false, () -> {
            src.get().cancel();
            sleepQuietly(300); // lets the destination's event loop see the hang-up before it decides
        }, MigrationStatus.CANCELLED, "cancelled by the user");
    }

    /** The same faults and cancels with RAM on two multifd channels: every channel open when it strikes. */
    @ParameterizedTest
    @EnumSource(value = Phase.class, names = {"SAVE_SETUP", "SAVE_ITERATE", "SAVE_COMPLETE"})
    void multifdSourceFaultInEveryPhase(Phase phase) throws Exception {
        caps = caps.withMultifd(true);
        assertSafe(phase, Phase.NONE, Phase.NONE, true, false, MigrationStatus.FAILED,
                "fault-dev: injected failure in " + phase);
    }

    @ParameterizedTest
    @EnumSource(value = Phase.class, names = {"SAVE_SETUP", "SAVE_ITERATE", "SAVE_COMPLETE"})
    void multifdCancelInEveryPhase(Phase phase) throws Exception {
        caps = caps.withMultifd(true);
        assertSafe(Phase.NONE, Phase.NONE, phase, true, true, MigrationStatus.CANCELLED, "cancelled by the user");
    }

    @Test
    void multifdCancelWhileAwaitingTheDestinationsAck() throws Exception {
        caps = caps.withMultifd(true);
        cancelWhileAwaitingTheDestinationsAck();
    }

    @Test
    void multifdDestinationRejectsTheStateAfterTheSourceStopped() throws Exception {
        caps = caps.withMultifd(true);
        destinationRejectsTheStateAfterTheSourceStopped();
    }

    @Test
    void multifdDestinationDiesDuringIteration() throws Exception {
        caps = caps.withMultifd(true);
        destinationDiesDuringIteration();
    }

    @Test
    void multifdDestinationDiesBeforeItsAck() throws Exception {
        caps = caps.withMultifd(true);
        destinationDiesBeforeItsAck();
    }

    static void sleepQuietly(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Test
    void destinationRejectsTheStateAfterTheSourceStopped() throws Exception {
        assertSafe(Phase.NONE, Phase.LOAD_STATE_END, Phase.NONE, true, false, MigrationStatus.FAILED,
                "the destination failed to load");
    }

    /** A participant that refuses what it loaded once the stream ended: no ack, the source keeps the guest. */
    @Test
    void destinationRefusesTheLoadedStateBeforeItsAck() throws Exception {
        assertSafe(Phase.NONE, Phase.LOAD_COMPLETE, Phase.NONE, true, false, MigrationStatus.FAILED,
                "the destination failed to load");
    }

    @Test
    void destinationDiesBeforeItsAck() throws Exception {
        assertSafe(Phase.NONE, Phase.NONE, Phase.LOAD_CLEANUP, false, false, MigrationStatus.FAILED,
                "the destination did not confirm it runs");
    }

    /**
     * The source notices either on a write or, when everything already sat in socket buffers, when
     * the destination's ack never comes; both name the connection.
     */
    @Test
    void destinationDiesDuringIteration() throws Exception {
        assertSafe(Phase.NONE, Phase.NONE, Phase.SAVE_ITERATE, true, false, MigrationStatus.FAILED,
                "tcp:127.0.0.1:");
    }

    @Test
    void destinationUnreachableAtSetup() throws Exception {
        var fdsBefore = openFds();
        SoftWorkload w = SoftWorkload.of(1, 5_000_000, 4 * MiB, 5);
        try (SoftVmPair pair = new SoftVmPair(16 * MiB, w)) {
            pair.startSource();
            SourceMigration s = pair.source(transports, MigrationParameters.defaults(), MigrationCapabilities.defaults(),
                    MigrationEventSink.NONE);
            s.start("tcp:127.0.0.1:1");
            assertEquals(MigrationStatus.FAILED, s.await(Duration.ofSeconds(30)));
            assertTrue(s.info().errorDesc().contains("tcp:127.0.0.1:1"), s.info().errorDesc());
            assertEquals(RunState.RUNNING, pair.source.runState());
        }
        assertNoFdLeak(fdsBefore);
    }

    @Test
    void vmChangeStateHandlerFailingAtStopRestartsTheSource() throws Exception {
        SoftWorkload w = SoftWorkload.of(1, 5_000_000, 4 * MiB, 5);
        try (SoftVmPair pair = new SoftVmPair(16 * MiB, w)) {
            pair.source.addVmChangeStateHandler(new VmChangeStateHandler() {
                @Override
                public void onChange(boolean running, RunState state) throws VmStateChangeException {
                    if (!running && state == RunState.FINISH_MIGRATE) {
                        throw new VmStateChangeException("dev0: STOP failed (EIO)");
                    }
                }
            }, 0);
            Outcome o = migrate(pair, MigrationCapabilities.defaults(), null);
            assertEquals(MigrationStatus.FAILED, o.src.status());
            assertTrue(o.src.info().errorDesc().contains("dev0: STOP failed (EIO)"), o.src.info().errorDesc());
            assertEquals(RunState.RUNNING, pair.source.runState());
        }
    }

    @Test
    void blockerRefusesAtOnce() throws Exception {
        SoftWorkload w = SoftWorkload.of(1, 5_000_000, 4 * MiB, 5);
        try (SoftVmPair pair = new SoftVmPair(16 * MiB, w)) {
            pair.source.migration().addBlocker(new dev.ferry.core.migration.MigrationBlocker("vfio0: device lacks STOP_COPY"));
            SourceMigration s = pair.source(transports, MigrationParameters.defaults(), MigrationCapabilities.defaults(),
                    MigrationEventSink.NONE);
            var e = org.junit.jupiter.api.Assertions.assertThrows(dev.ferry.core.migration.MigrationException.class,
                    () -> s.start("tcp:127.0.0.1:1"));
            assertTrue(e.getMessage().contains("vfio0: device lacks STOP_COPY"));
            assertEquals(MigrationStatus.NONE, s.status());
        }
    }
}
