package dev.ferry.vhostuser.frontend;

import dev.ferry.core.machine.RunState;
import dev.ferry.core.machine.VmStateChangeException;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.MemoryTransports;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.virtio.queue.QueueConfig;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A real qemu-storage-daemon killed (or frozen) at each phase of a migration of a guest doing disk
 * I/O: setup, iteration, the stop's GET_VRING_BASE, and the destination's start. Each ends as a
 * failed migration (or a refused start) whose reason names the device and what the back-end did;
 * the source VM runs on, reconnects once its daemon is back, and the image holds every write the
 * guest saw acknowledged.
 */
@Timeout(120)
class QsdFailureTest {
    @TempDir
    Path dir;

    @BeforeAll
    static void peer() {
        Qsd.assumeInstalled();
    }

    /** How a source migration ended. */
    record Outcome(MigrationStatus status, String error) {
    }

    static Outcome migrate(VhostDiskVm src, MigrationParameters params, Runnable whileRunning) throws Exception {
        return migrate(src, params, MigrationEventSink.NONE, new AtomicReference<>(), whileRunning);
    }

    /** As above, with {@code events} told of the migration's progress ({@code ref} set before it starts). */
    static Outcome migrate(VhostDiskVm src, MigrationParameters params, MigrationEventSink events,
                           AtomicReference<SourceMigration> ref) throws Exception {
        return migrate(src, params, events, ref, () -> { });
    }

    private static Outcome migrate(VhostDiskVm src, MigrationParameters params, MigrationEventSink events,
                                   AtomicReference<SourceMigration> ref, Runnable whileRunning) throws Exception {
        SourceMigration m = new SourceMigration(src.machine, new MemoryTransports(), params,
                MigrationCapabilities.defaults(), events);
        ref.set(m);
        m.start(MemoryTransports.FILE_URI);
        whileRunning.run();
        MigrationStatus st = m.await(InMemoryMigration.WAIT);
        return new Outcome(st, m.info().errorDesc());
    }

    static void awaitTrue(String what, java.util.function.BooleanSupplier c) throws InterruptedException {
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (!c.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting until " + what);
            }
            Thread.sleep(10);
        }
    }

    /**
     * The source after a failed migration: running, reconnected to its (restarted) daemon, and
     * every write the guest saw acknowledged on the image, none overwritten by an older one.
     * (qemu-storage-daemon 7.2 offers no in-flight region: a daemon lost with requests out leaves
     * their state unknown, so the device goes NEEDS_RESET rather than run a completed write
     * again over a newer one; the guest driver resets it, retrying while the daemon is away, and
     * submits those requests again.)
     */
    private static void sourceRunsOn(VhostDiskVm src, Qsd qsd, Path img) throws Exception {
        assertEquals(RunState.RUNNING, src.machine.runState(), "the source VM runs on");
        if (!qsd.alive()) {
            qsd.start();
        }
        awaitTrue("the device reconnected: " + src.vub(), () -> Boolean.TRUE.equals(src.vub().get("connected")));
        assertTrue(((Number) src.vub().get("reconnects")).longValue() >= 1, src.vub().toString());
        // The stop after the restart succeeds: the ring resumed where the used index in guest RAM
        // stands, so GET_VRING_BASE and the used index agree (docs/vhost-user.md, "A used index
        // one past GET_VRING_BASE").
        src.machine.vmStop(RunState.PAUSED);
        DiskVerifierCheck.assertImageSafeAfterDeviceReset(src, img);
    }

    /**
     * Once the daemon answers again the device is connected and the guest's disk I/O goes on: at
     * least 32 more requests complete (whatever losses and reconnects came in between, none may
     * leave the guest's requests waiting for ever).
     */
    static void guestIoGoesOn(VhostDiskVm src) throws Exception {
        awaitTrue("the device reconnected: " + src.vub(), () -> Boolean.TRUE.equals(src.vub().get("connected")));
        src.runFor(32);
    }

    @Test
    void backendDeadAtSetupCancelsTheMigration() throws Exception {
        Path img = QsdDiskTest.image(dir, 16 * VhostDiskVm.MiB);
        try (Qsd qsd = new Qsd(img, dir.resolve("a.sock")); VhostDiskVm src = new VhostDiskVm("src", qsd.socket, false)) {
            src.machine.vmStart();
            src.runFor(300);
            qsd.kill();
            awaitTrue("the hang-up was seen", () -> Boolean.FALSE.equals(src.vub().get("connected")));
            Outcome o = migrate(src, MigrationParameters.defaults().withMaxBandwidth(0), () -> { });
            assertEquals(MigrationStatus.FAILED, o.status());
            assertTrue(o.error().contains("disk0 (vhost-user-blk)") && o.error().contains("not connected"), o.error());
            sourceRunsOn(src, qsd, img);
        }
    }

    /**
     * The daemon is killed from the engine's own MIGRATION_PASS event, on the migration thread, so
     * the kill lands while RAM iterates whatever the speed of the run (a kill on a timer could come
     * after a fast migration had completed); the event returns once the device saw the hang-up, so
     * the next sync (or the switchover's stop) cannot miss it.
     */
    @Test
    void backendKilledWhileIteratingFailsTheMigration() throws Exception {
        Path img = QsdDiskTest.image(dir, 16 * VhostDiskVm.MiB);
        try (Qsd qsd = new Qsd(img, dir.resolve("a.sock")); VhostDiskVm src = new VhostDiskVm("src", qsd.socket, false)) {
            src.machine.vmStart();
            src.runFor(300);
            AtomicReference<SourceMigration> ref = new AtomicReference<>();
            AtomicReference<MigrationStatus> statusAtKill = new AtomicReference<>();
            AtomicReference<RunState> vmAtKill = new AtomicReference<>();
            MigrationEventSink killAtFirstPass = new MigrationEventSink() {
                @Override
                public void status(MigrationStatus status) {
                }

                @Override
                public void pass(long pass) {
                    if (statusAtKill.get() != null) {
                        return;
                    }
                    statusAtKill.set(ref.get().status());
                    vmAtKill.set(src.machine.runState());
                    try {
                        qsd.kill();
                        awaitTrue("the hang-up was seen", () -> Boolean.FALSE.equals(src.vub().get("connected")));
                    } catch (InterruptedException e) {
                        throw new AssertionError(e);
                    }
                }
            };
            // 8 MiB/s against the guest's dirtying: passes of seconds; the loss shows at the next sync
            Outcome o = migrate(src, MigrationParameters.defaults().withMaxBandwidth(8L << 20), killAtFirstPass, ref);
            assertEquals(MigrationStatus.ACTIVE, statusAtKill.get(), "the daemon was killed while RAM iterated");
            assertEquals(RunState.RUNNING, vmAtKill.get(), "... with the source VM running");
            assertEquals(MigrationStatus.FAILED, o.status());
            assertTrue(o.error().contains("disk0 (vhost-user-blk)") && o.error().contains("hung up"), o.error());
            assertFalse(o.error().contains("internal error"), "the device's reason, not an internal error: " + o.error());
            // The daemon had requests out and keeps no in-flight region: the disk went NEEDS_RESET.
            // Once the daemon is back, the guest's driver resets the disk, submits those requests
            // again and its I/O goes on.
            qsd.start();
            awaitTrue("the guest's driver brought the disk back: " + src.progress(),
                    () -> src.progress().resets() >= 1 && !src.progress().resetPending());
            src.runFor(100);
            assertEquals(0, src.progress().errors(), src.progress().toString());
            sourceRunsOn(src, qsd, img);
        }
    }

    @Test
    void backendKilledAtGetVringBaseFailsTheSwitchover() throws Exception {
        Path img = QsdDiskTest.image(dir, 16 * VhostDiskVm.MiB);
        try (Qsd qsd = new Qsd(img, dir.resolve("a.sock")); VhostDiskVm src = new VhostDiskVm("src", qsd.socket, false)) {
            src.machine.vmStart();
            src.runFor(300);
            AtomicBoolean killed = onFirst(src, VhostUser.GET_VRING_BASE, qsd::kill);
            Outcome o = migrate(src, MigrationParameters.defaults().withMaxBandwidth(0), () -> { });
            assertTrue(killed.get());
            assertEquals(MigrationStatus.FAILED, o.status());
            assertTrue(o.error().contains("stopping the VM for switchover failed")
                    && o.error().contains("disk0 (vhost-user-blk)") && o.error().contains("GET_VRING_BASE"), o.error());
            sourceRunsOn(src, qsd, img);
        }
    }

    @Test
    void backendThatStopsAnsweringAtGetVringBaseTimesOut() throws Exception {
        Path img = QsdDiskTest.image(dir, 16 * VhostDiskVm.MiB);
        try (Qsd qsd = new Qsd(img, dir.resolve("a.sock")); VhostDiskVm src = new VhostDiskVm("src", qsd.socket, false)) {
            src.machine.vmStart();
            src.runFor(300);
            onFirst(src, VhostUser.GET_VRING_BASE, () -> qsd.freeze(true));
            Outcome o = migrate(src, MigrationParameters.defaults().withMaxBandwidth(0), () -> { });
            assertEquals(MigrationStatus.FAILED, o.status());
            assertTrue(o.error().contains("disk0 (vhost-user-blk)") && o.error().contains("GET_VRING_BASE"), o.error());
            qsd.freeze(false);
            guestIoGoesOn(src);
            sourceRunsOn(src, qsd, img);
        }
    }

    /**
     * The daemon dies in the middle of a reconnect's start, after its ring (and the ring's
     * doorbell) went to it, with the guest's requests out: what it took is unknown (it keeps no
     * in-flight region), so the disk goes NEEDS_RESET — not a silent resubmission from the used
     * index — and once the daemon is back the guest's driver resets the disk and its I/O goes on.
     * (The loss that comes first leaves nothing out: the switchover's stop drained the ring.)
     */
    @Test
    void backendLostInTheMiddleOfAReconnectsStartNeedsAReset() throws Exception {
        Path img = QsdDiskTest.image(dir, 16 * VhostDiskVm.MiB);
        try (Qsd qsd = new Qsd(img, dir.resolve("a.sock")); VhostDiskVm src = new VhostDiskVm("src", qsd.socket, false)) {
            src.machine.vmStart();
            src.runFor(300);
            AtomicBoolean killed = onFirst(src, VhostUser.GET_VRING_BASE, qsd::kill);
            Outcome o = migrate(src, MigrationParameters.defaults().withMaxBandwidth(0), () -> { });
            assertEquals(MigrationStatus.FAILED, o.status());
            assertEquals(0, src.progress().resets(), "lost with nothing out: no reset yet");
            awaitTrue("the guest waits with its queue full: " + src.progress(), () -> src.progress().inFlight() == 16);
            AtomicBoolean killedAtEnable = new AtomicBoolean();
            src.model().link.observeLaterConnections(r -> {
                if (r == VhostUser.SET_VRING_ENABLE && killedAtEnable.compareAndSet(false, true)) {
                    try {
                        qsd.kill();
                    } catch (InterruptedException e) {
                        throw new AssertionError(e);
                    }
                }
            });
            qsd.start();
            awaitTrue("the daemon died in the reconnect's start", () -> killedAtEnable.get() && !qsd.alive());
            awaitTrue("the disk went NEEDS_RESET and the driver reset it: " + src.progress(),
                    () -> src.progress().resets() >= 1);
            qsd.start();
            awaitTrue("the guest's driver brought the disk back: " + src.progress(),
                    () -> !src.progress().resetPending() && Boolean.TRUE.equals(src.vub().get("connected")));
            src.runFor(32);
            assertEquals(0, src.progress().errors(), src.progress().toString());
            sourceRunsOn(src, qsd, img);
        }
    }

    /**
     * A daemon restarted while the guest's queue is full, six times: the VM stops (the rings
     * drained, nothing out), the daemon is killed, the VM runs on without it and the guest fills
     * its queue and rings; the restarted daemon gets the ring with 16 requests and a kick already
     * counted, which libvhost-user serves the moment SET_VRING_KICK arrives. Its first completion
     * notifies at once, so its call eventfd must be there before: each restart must go on without
     * a reset and without the daemon panicking (with KICK before CALL it wrote to no eventfd in
     * about one restart in four, dropped the completions that followed and hung up).
     */
    @Test
    void aRestartWithTheQueueFullKeepsTheDaemon() throws Exception {
        Path img = QsdDiskTest.image(dir, 16 * VhostDiskVm.MiB);
        // a 5 s reply timeout: a slow reply on a loaded machine must not pass for a lost daemon (a reset)
        try (Qsd qsd = new Qsd(img, dir.resolve("a.sock"));
             VhostDiskVm src = new VhostDiskVm("src", qsd.socket, false, 5_000)) {
            src.machine.vmStart();
            src.runFor(100);
            for (int round = 1; round <= 6; round++) {
                src.machine.vmStop(RunState.PAUSED);
                qsd.kill();
                VmStateChangeException e = assertThrows(VmStateChangeException.class, src.machine::vmStart);
                assertTrue(e.getMessage().contains("disk0 (vhost-user-blk)"), e.getMessage());
                awaitTrue("round " + round + ": the guest waits with its queue full: " + src.progress(),
                        () -> waiting(src) == 16);
                qsd.start();
                guestIoGoesOn(src);
                assertEquals(0, src.progress().resets(), "round " + round + ": no reset: " + src.progress()
                        + "; daemon: " + qsd.log());
                assertFalse(qsd.log().contains("vu_panic"), "round " + round + ": " + qsd.log());
            }
            assertEquals(0, src.progress().errors(), src.progress().toString());
            src.machine.vmStop(RunState.PAUSED);
            DiskVerifierCheck.assertAcknowledgedWritesOnImage(src, img);
        }
    }

    /**
     * A request completed while no back-end of the device served its ring — as by a daemon the
     * front-end dropped while it still ran, which keeps the kick eventfd and guest memory until it
     * sees the hang-up and completes what it took. The test plays that daemon for one request
     * (served on the image, its completion published in the used ring) while the device is lost
     * and the guest paused. The restarted daemon must not be told to resume at the index the
     * front-end kept (libvhost-user would take the used index from RAM, serve that request a
     * second time, and every later stop would find the used index one past GET_VRING_BASE): the
     * start refuses, the disk goes NEEDS_RESET, the driver resets it and its I/O goes on; the
     * next stop succeeds and the image holds every acknowledged write.
     */
    @Test
    void aRingServedWhileNoBackEndServedItNeedsAReset() throws Exception {
        Path img = QsdDiskTest.image(dir, 16 * VhostDiskVm.MiB);
        // a 5 s reply timeout: a slow reply on a loaded machine must not pass for a lost daemon (a reset)
        try (Qsd qsd = new Qsd(img, dir.resolve("a.sock"));
             VhostDiskVm src = new VhostDiskVm("src", qsd.socket, false, 5_000)) {
            src.machine.vmStart();
            src.runFor(100);
            src.machine.vmStop(RunState.PAUSED);
            qsd.kill();
            assertThrows(VmStateChangeException.class, src.machine::vmStart);
            awaitTrue("the guest waits with its queue full: " + src.progress(), () -> waiting(src) == 16);
            src.machine.vmStop(RunState.PAUSED);
            completeOneAsADroppedDaemon(src, img);
            assertThrows(VmStateChangeException.class, src.machine::vmStart);
            assertEquals(0, src.progress().resets(), src.progress().toString());
            qsd.start();
            guestIoGoesOn(src);
            src.machine.vmStop(RunState.PAUSED); // GET_VRING_BASE and the used index agree
            assertEquals(1, src.progress().resets(), "the reconnect's start refused the ring: " + src.progress());
            assertEquals(0, src.progress().errors(), src.progress().toString());
            DiskVerifierCheck.assertAcknowledgedWritesOnImage(src, img);
            assertFalse(qsd.log().contains("vu_panic"), qsd.log());
        }
    }

    /**
     * Requests the guest made available on the disk's ring and no device completed yet (avail
     * index minus used index in guest RAM). The driver's own count of requests in flight is not
     * it: a stop completes requests the driver reaps only once it runs again.
     */
    static int waiting(VhostDiskVm src) {
        QueueConfig c = src.machine.eventLoop().call(() -> {
            VhostUserBlk m = src.model();
            return m.ctx == null || m.ctx.queue(0) == null ? null : m.ctx.queue(0).config();
        });
        if (c == null) {
            return -1; // the device is not started (or needs a reset): no ring to look at
        }
        DeviceMemory mem = src.machine.deviceMemory();
        return (mem.loadU16Acquire(c.availGpa() + 2) - mem.loadU16Acquire(c.usedGpa() + 2)) & 0xffff;
    }

    /**
     * Serves the request at the used index of the disk's ring on {@code img} and publishes its
     * completion, as qemu-storage-daemon does (virtio-blk: a 16-byte header, a 4 KiB buffer for a
     * read or write, a status byte; the used element's length counts the bytes written into guest
     * buffers). Test thread, VM paused.
     */
    private static void completeOneAsADroppedDaemon(VhostDiskVm src, Path img) throws Exception {
        QueueConfig c = src.machine.eventLoop().call(() -> src.model().ctx.queue(0).config());
        DeviceMemory mem = src.machine.deviceMemory();
        int n = c.size();
        int used = mem.loadU16Acquire(c.usedGpa() + 2);
        assertTrue(mem.loadU16Acquire(c.availGpa() + 2) != used, "a request is waiting");
        int head = mem.readU16(c.availGpa() + 4 + 2L * (used % n));
        List<long[]> chain = new ArrayList<>(); // addr, len, flags
        for (int d = head, k = 0; k < 3; k++) {
            long at = c.descGpa() + 16L * d;
            long[] e = {mem.readU64(at), mem.readU32(at + 8), mem.readU16(at + 12)};
            chain.add(e);
            if ((e[2] & 1) == 0) {
                break;
            }
            d = mem.readU16(at + 14);
        }
        long hdr = chain.get(0)[0];
        int type = mem.readU32(hdr);
        long offset = mem.readU64(hdr + 8) * 512;
        int written = 1;
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            if (type == 0 || type == 1) {
                long[] data = chain.get(1);
                byte[] b = new byte[(int) data[1]];
                if (type == 1) {
                    mem.read(data[0], b, 0, b.length);
                    ch.write(ByteBuffer.wrap(b), offset);
                } else {
                    ch.read(ByteBuffer.wrap(b), offset);
                    mem.write(data[0], b, 0, b.length);
                    written += b.length;
                }
            }
            ch.force(false);
        }
        mem.writeU8(chain.get(chain.size() - 1)[0], 0);
        long elem = c.usedGpa() + 4 + 8L * (used % n);
        mem.writeU32(elem, head);
        mem.writeU32(elem + 4, written);
        mem.storeU16Release(c.usedGpa() + 2, (used + 1) & 0xffff);
    }

    @Test
    void destinationBackendDeadAtStartLeavesTheGuestToTheSource() throws Exception {
        Path img = QsdDiskTest.image(dir, 16 * VhostDiskVm.MiB);
        try (Qsd a = new Qsd(img, dir.resolve("a.sock")); Qsd b = new Qsd(img, dir.resolve("b.sock"));
             VhostDiskVm src = new VhostDiskVm("src", a.socket, false)) {
            src.machine.vmStart();
            src.runFor(300);
            byte[] stream = InMemoryMigration.save(src.machine);
            try (VhostDiskVm dst = new VhostDiskVm("dst", b.socket, true)) {
                QsdMigrationTest.Loaded l = QsdMigrationTest.load(dst, stream);
                assertEquals(MigrationStatus.COMPLETED, l.status(), l.error());
                b.kill(); // the destination's loop is paused until it runs: the start finds the daemon gone
                VmStateChangeException e = assertThrows(VmStateChangeException.class,
                        () -> dst.machine.vmStartOrStayStopped(RunState.PAUSED));
                assertTrue(e.getMessage().contains("disk0 (vhost-user-blk): starting the back-end failed"),
                        e.getMessage());
                assertEquals(RunState.PAUSED, dst.machine.runState());
            }
            // the source takes the guest back (QMP cont) and goes on from where it stopped
            src.machine.vmStart();
            src.runFor(500);
            src.machine.vmStop(RunState.PAUSED);
            DiskVerifierCheck.assertAcknowledgedWritesOnImage(src, img);
            assertEquals(0, src.progress().errors(), src.progress().toString());
        }
    }

    /** A step of a test that may throw anything. */
    interface Step {
        void run() throws Exception;
    }

    /**
     * Runs {@code step} on the device's loop the first time its front-end is about to send
     * {@code request} (the daemon killed or frozen at that message); the flag says whether it ran.
     */
    private static AtomicBoolean onFirst(VhostDiskVm src, int request, Step step) {
        AtomicBoolean done = new AtomicBoolean();
        src.model().withFrontend(f -> f.requestObserver(r -> {
            if (r == request && done.compareAndSet(false, true)) {
                try {
                    step.run();
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            }
        }));
        return done;
    }
}
