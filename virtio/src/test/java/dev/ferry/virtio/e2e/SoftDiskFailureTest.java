package dev.ferry.virtio.e2e;

import dev.ferry.core.machine.RunState;
import dev.ferry.core.machine.VmChangeStateHandler;
import dev.ferry.core.machine.VmStateChangeException;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.core.testing.FdLeakCheck;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.transport.NettyMigrationTransports;
import dev.ferry.migration.testing.FaultyDevice;
import dev.ferry.migration.testing.FaultyDevice.Phase;
import dev.ferry.virtio.guest.BlkDriverArea;
import dev.ferry.virtio.guest.DiskVerifier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Failure is safe for a disk: with the guest driver doing I/O at full speed, a migration that
 * fails or is cancelled in any phase — setup, iteration, after the source VM stopped (the source
 * fails, or the destination refuses the disk's state), when the destination cannot start, or when
 * the destination dies mid-stream — leaves the source VM running with its disk serving: every
 * acknowledged write is in the image, I/O goes on, the driver saw no error. And the destination,
 * which opened the same image, never wrote it: its image stayed inactive and its device wrote no
 * byte, so the image only ever changed by the source (the source's record still proves it after
 * the source ran on). Migrations go over TCP with the return path, as between two hosts.
 */
@Timeout(120)
class SoftDiskFailureTest {
    static NettyMigrationTransports transports;

    @TempDir
    Path dir;

    /** What one failed migration left, and what the source's guest had in flight when it failed. */
    record Outcome(SourceMigration out, DestinationMigration in, BlkDriverArea.Progress atFault) {
    }

    /** How a case sets its pair up before migrating: participants, handlers, hooks. */
    record Setup(Phase sourceFails, Phase hookAt, Consumer<Context> hook, Consumer<SoftDiskVm> destination) {
        static Setup failing(Phase p) {
            return new Setup(p, p, c -> { }, d -> { });
        }
    }

    /** Handed to a hook on the migration thread. */
    record Context(SoftDiskVm source, SoftDiskVm destination, AtomicReference<SourceMigration> out,
                   AtomicReference<DestinationMigration> in) {
    }

    @BeforeAll
    static void warmUp() throws Exception {
        transports = new NettyMigrationTransports();
        // Every Netty event loop (each owns an epoll fd and an eventfd, made on first use) and
        // every lazily opened JDK file must exist before the case that counts fds: a completed
        // migration and a cancelled one, twice, so both loops served both kinds.
        Path d = Files.createTempDirectory("ferry-disk-warm-up");
        try {
            for (int i = 0; i < 2; i++) {
                Path img = SoftDiskIoTest.image(d, 16 * SoftDiskVm.MiB);
                try (SoftDiskVm src = new SoftDiskVm("warm-src", img, false);
                     SoftDiskVm dst = new SoftDiskVm("warm-dst", img, true)) {
                    src.machine.vmStart();
                    src.runFor(200);
                    Outcome o = migrate(src, dst, Setup.failing(Phase.NONE), MigrationEventSink.NONE, null);
                    assertEquals(MigrationStatus.COMPLETED, o.out.status(), () -> o.out.info().errorDesc());
                }
                try (SoftDiskVm src = new SoftDiskVm("warm-src", img, false);
                     SoftDiskVm dst = new SoftDiskVm("warm-dst", img, true)) {
                    src.machine.vmStart();
                    src.runFor(200);
                    AtomicReference<SourceMigration> ref = new AtomicReference<>();
                    Outcome o = migrate(src, dst, Setup.failing(Phase.NONE), cancelAtFirstPass(ref, new AtomicBoolean()),
                            ref);
                    assertEquals(MigrationStatus.CANCELLED, o.out.status(), () -> o.out.info().errorDesc());
                }
                Files.delete(img);
            }
        } finally {
            Files.deleteIfExists(d);
        }
    }

    @AfterAll
    static void closeTransports() {
        transports.close();
    }

    // ---- the cases ----

    @Test
    void saveSetupFails() throws Exception {
        Path img = SoftDiskIoTest.image(dir, 16 * SoftDiskVm.MiB);
        assertSourceKeepsTheDisk(img, img, Setup.failing(Phase.SAVE_SETUP), MigrationEventSink.NONE, null,
                MigrationStatus.FAILED, "fault-dev: injected failure in SAVE_SETUP");
    }

    /** Cancelled at the first MIGRATION_PASS, while the guest runs; no fd outlives the two VMs. */
    @Test
    void cancelWhileActive() throws Exception {
        Path img = SoftDiskIoTest.image(dir, 16 * SoftDiskVm.MiB);
        AtomicReference<SourceMigration> ref = new AtomicReference<>();
        AtomicBoolean cancelledWhileRunning = new AtomicBoolean();
        FdLeakCheck fds = FdLeakCheck.start();
        assertSourceKeepsTheDisk(img, img, Setup.failing(Phase.NONE), cancelAtFirstPass(ref, cancelledWhileRunning),
                ref, MigrationStatus.CANCELLED, "cancelled by the user");
        assertTrue(cancelledWhileRunning.get(), "the cancel came in the active phase, with the source VM running");
        assertNoFdLeak(fds);
    }

    /** The source fails in saveComplete: its VM had stopped and its disk drained for switchover. */
    @Test
    void sourceFailsAfterTheVmStopped() throws Exception {
        Path img = SoftDiskIoTest.image(dir, 16 * SoftDiskVm.MiB);
        assertSourceKeepsTheDisk(img, img, Setup.failing(Phase.SAVE_COMPLETE), MigrationEventSink.NONE, null,
                MigrationStatus.FAILED, "fault-dev: injected failure in SAVE_COMPLETE");
    }

    /**
     * The destination's disk is another size, so it refuses the disk's section (capacity in the
     * config space) after the source stopped; the source hears SHUT(1) and runs again.
     */
    @Test
    void destinationRefusesTheDisksState() throws Exception {
        Path img = SoftDiskIoTest.image(dir, 16 * SoftDiskVm.MiB);
        Path other = Files.createDirectory(dir.resolve("other"));
        Path otherImg = SoftDiskIoTest.image(other, 32 * SoftDiskVm.MiB);
        Outcome o = assertSourceKeepsTheDisk(img, otherImg, new Setup(Phase.NONE, Phase.SAVE_COMPLETE, c -> { },
                d -> { }), MigrationEventSink.NONE, null, MigrationStatus.FAILED, "the destination failed to load");
        String why = o.in.errorDesc();
        assertTrue(why != null && why.contains("the source's disk has 32768 sectors") && why.contains("65536"), why);
    }

    /**
     * Everything loaded, but a VM-change-state handler on the destination fails its start. With
     * the return path the source hears SHUT(1) and takes the guest back; the destination's guest
     * never ran and its disk never touched the image it shares with the source.
     */
    @Test
    void destinationFailsToStart() throws Exception {
        Path img = SoftDiskIoTest.image(dir, 16 * SoftDiskVm.MiB);
        AtomicReference<BlkDriverArea.Progress> loaded = new AtomicReference<>();
        Consumer<SoftDiskVm> failingStart = d -> d.machine.addVmChangeStateHandler(new VmChangeStateHandler() {
            @Override
            public void onChange(boolean running, RunState state) throws VmStateChangeException {
                if (running) {
                    throw new VmStateChangeException("nic0: cannot claim the tap device (EBUSY)");
                }
            }
        }, 0);
        Outcome o = assertSourceKeepsTheDisk(img, img, new Setup(Phase.NONE, Phase.SAVE_COMPLETE, c -> { },
                        failingStart), MigrationEventSink.NONE, null, MigrationStatus.FAILED,
                "the destination failed to load", loaded);
        assertTrue(o.in.errorDesc().startsWith("starting the VM after migration failed: nic0: cannot claim the tap device")
                && o.in.errorDesc().endsWith("the source keeps the guest"), o.in.errorDesc());
    }

    /** The destination VMM dies (its machine closes) in the middle of the stream. */
    @Test
    void destinationDiesMidStream() throws Exception {
        Path img = SoftDiskIoTest.image(dir, 16 * SoftDiskVm.MiB);
        assertSourceKeepsTheDisk(img, img, new Setup(Phase.NONE, Phase.SAVE_ITERATE, c -> c.destination().close(),
                d -> { }), MigrationEventSink.NONE, null, MigrationStatus.FAILED, "tcp:127.0.0.1:");
    }

    // ---- the checks ----

    private Outcome assertSourceKeepsTheDisk(Path srcImg, Path dstImg, Setup setup, MigrationEventSink events,
                                             AtomicReference<SourceMigration> ref, MigrationStatus expected,
                                             String reason) throws Exception {
        return assertSourceKeepsTheDisk(srcImg, dstImg, setup, events, ref, expected, reason, null);
    }

    /**
     * Runs one failing migration with the guest's disk busy and checks the source kept it, and the
     * destination never wrote it. {@code loaded} (optional) receives the destination driver's
     * progress as loaded, before the destination tried to start.
     */
    private Outcome assertSourceKeepsTheDisk(Path srcImg, Path dstImg, Setup setup, MigrationEventSink events,
                                             AtomicReference<SourceMigration> ref, MigrationStatus expected,
                                             String reason, AtomicReference<BlkDriverArea.Progress> loaded)
            throws Exception {
        try (SoftDiskVm src = new SoftDiskVm("src", srcImg, false);
             SoftDiskVm dst = new SoftDiskVm("dst", dstImg, true)) {
            src.machine.vmStart();
            src.runFor(300); // the driver is at full speed, 16 requests deep
            Outcome o = migrate(src, dst, setup, events, ref, loaded);
            SourceMigration out = o.out;
            assertEquals(expected, out.status(), () -> "source: " + out.info().errorDesc() + "; destination: "
                    + o.in.status().qapiName() + " " + o.in.errorDesc());
            String desc = out.info().errorDesc();
            assertNotNull(desc);
            assertTrue(desc.contains(reason), "reason '" + reason + "' in: " + desc);
            assertNotNull(o.atFault, "the fault hook ran");
            assertTrue(o.atFault.inFlight() > 0, "the guest had disk requests in flight when the migration failed: "
                    + o.atFault);

            // The destination never ran the guest and never wrote the image.
            assertNotEquals(RunState.RUNNING, dst.machine.runState());
            Map<String, Object> dstBlk = dst.blk();
            assertEquals(Boolean.FALSE, dstBlk.get("active"), "the destination's image stayed inactive: " + dstBlk);
            assertEquals(0L, dstBlk.get("bytes-written"), "the destination wrote nothing: " + dstBlk);
            if (loaded != null) {
                BlkDriverArea.Progress l = loaded.get();
                assertNotNull(l, "the destination loaded everything before it tried to start");
                BlkDriverArea.Progress now = dst.progress();
                assertEquals(l.submitted(), now.submitted(), "the destination's guest submitted nothing");
                assertEquals(l.completed(), now.completed(), "the destination's guest completed nothing");
            }

            // The source runs again: its disk serves, nothing acknowledged was lost, no error.
            assertEquals(RunState.RUNNING, src.machine.runState());
            src.machine.vmStop(RunState.PAUSED);
            BlkDriverArea.Progress afterFailure = src.progress();
            DiskVerifier.Verdict v = src.verify(srcImg);
            assertTrue(v.ok(), "right after the failure: " + v);
            src.machine.vmStart();
            src.runFor(500);
            src.machine.vmStop(RunState.PAUSED);
            BlkDriverArea.Progress p = src.progress();
            assertTrue(p.completed() >= afterFailure.completed() + 500, p.toString());
            assertEquals(0, p.errors(), () -> "driver errors: " + p);
            assertEquals(0, p.ioErrors(), () -> "I/O errors: " + p);
            assertEquals(0, p.readMismatches(), () -> "read mismatches: " + p);
            v = src.verify(srcImg);
            assertTrue(v.ok(), "after the source ran on: " + v);
            assertTrue(v.blocksWritten() > 100, v.toString());
            assertEquals(Boolean.TRUE, src.blk().get("active"));
            return o;
        }
    }

    private static Outcome migrate(SoftDiskVm src, SoftDiskVm dst, Setup setup, MigrationEventSink events,
                                   AtomicReference<SourceMigration> ref) throws Exception {
        return migrate(src, dst, setup, events, ref, null);
    }

    /**
     * Migrates {@code src} to {@code dst} over TCP with the return path, a {@link FaultyDevice}
     * on both sides (the source's fails or hooks as {@code setup} says). Waits for both ends.
     */
    private static Outcome migrate(SoftDiskVm src, SoftDiskVm dst, Setup setup, MigrationEventSink events,
                                   AtomicReference<SourceMigration> ref,
                                   AtomicReference<BlkDriverArea.Progress> loaded) throws Exception {
        AtomicReference<SourceMigration> out = ref != null ? ref : new AtomicReference<>();
        AtomicReference<DestinationMigration> in = new AtomicReference<>();
        AtomicReference<BlkDriverArea.Progress> atFault = new AtomicReference<>();
        Context ctx = new Context(src, dst, out, in);
        src.machine.migration().registerLive(new FaultyDevice(setup.sourceFails(), setup.hookAt(), () -> {
            atFault.set(src.progress());
            setup.hook().accept(ctx);
        }), MigrationPriority.DEVICE);
        dst.machine.migration().registerLive(FaultyDevice.healthy(), MigrationPriority.DEVICE);
        setup.destination().accept(dst);
        MigrationEventSink sink = new MigrationEventSink() {
            @Override
            public void status(MigrationStatus s) {
                events.status(s);
            }

            @Override
            public void pass(long pass) {
                if (atFault.get() == null && ref != null) {
                    atFault.set(src.progress());
                }
                events.pass(pass);
            }
        };
        DestinationMigration d = new DestinationMigration(dst.machine, transports, MigrationCapabilities.defaults(),
                MigrationEventSink.NONE, true);
        if (loaded != null) {
            d.beforeStart(() -> loaded.set(dst.progress()));
        }
        in.set(d);
        String bound = d.listen("tcp:127.0.0.1:0");
        SourceMigration s = new SourceMigration(src.machine, transports,
                MigrationParameters.defaults().withMaxBandwidth(0), MigrationCapabilities.defaults(), sink);
        out.set(s);
        s.start(bound);
        s.await(Duration.ofSeconds(60));
        try {
            d.await(Duration.ofSeconds(20));
        } catch (TimeoutException e) {
            d.abort();
            d.await(Duration.ofSeconds(20));
        }
        return new Outcome(s, d, atFault.get());
    }

    /** Cancels the migration at its first MIGRATION_PASS, noting whether the source VM was running then. */
    private static MigrationEventSink cancelAtFirstPass(AtomicReference<SourceMigration> ref, AtomicBoolean running) {
        return new MigrationEventSink() {
            private final AtomicBoolean done = new AtomicBoolean();

            @Override
            public void status(MigrationStatus s) {
            }

            @Override
            public void pass(long pass) {
                if (done.compareAndSet(false, true)) {
                    SourceMigration s = ref.get();
                    running.set(s.status() == MigrationStatus.ACTIVE);
                    s.cancel();
                }
            }
        };
    }

    /** A closing channel's fd goes on the event loop a moment later: a leak is what stays (bounded). */
    private static void assertNoFdLeak(FdLeakCheck fds) throws InterruptedException {
        for (int i = 0; i < 40 && !fds.leaked().isEmpty(); i++) {
            Thread.sleep(50);
        }
        fds.assertNoLeaks();
    }
}
