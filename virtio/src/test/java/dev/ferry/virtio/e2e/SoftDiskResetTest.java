package dev.ferry.virtio.e2e;

import dev.ferry.core.machine.RunState;
import dev.ferry.core.machine.VmChangeStateHandler;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.virtio.DeviceFaults;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.guest.BlkDriverArea;
import dev.ferry.virtio.guest.DiskVerifier;
import dev.ferry.virtio.guest.HostileBlkRequest;
import dev.ferry.virtio.guest.SoftBlkDriver;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The soft guest's disk driver recovers from NEEDS_RESET as the virtio specification asks: it
 * resets the device, initialises it again and submits again the requests that had no completion,
 * and the image then verifies with no excuse while I/O goes on — after a hostile request broke the
 * device mid-I/O, and on a migration destination that loaded a device broken at the source's
 * stop-copy. A device that needs resets without end stops the driver at its {@link
 * SoftBlkDriver.ResetLimit}. Without the recovery every case here fails (the driver stops at the
 * first NEEDS_RESET and no I/O completes after it).
 */
@Timeout(120)
class SoftDiskResetTest {
    @TempDir
    Path dir;

    /** The device takes one request at a time, so at a pause the driver's others wait in the ring. */
    private Map<String, Object> oneAtATime(Path img) {
        return Map.of("image", img.toString(), "depth", 1);
    }

    @Test
    void needsResetMidIoIsRecoveredAndIoGoesOn() throws Exception {
        Path img = SoftDiskIoTest.image(dir, 16 * SoftDiskVm.MiB);
        try (SoftDiskVm vm = new SoftDiskVm("vm", oneAtATime(img), false, 16)) {
            vm.machine.vmStart();
            vm.runFor(300);
            vm.machine.vmStop(RunState.PAUSED);
            BlkDriverArea.Progress before = vm.progress();
            assertTrue(before.inFlight() > 0, before.toString());
            HostileBlkRequest.plantNext(vm.driver.area());
            vm.machine.vmStart();
            await(vm, "the driver reset the device", p -> p.resets() == 1 && !p.resetPending());
            vm.runFor(500);
            vm.machine.vmStop(RunState.PAUSED);

            BlkDriverArea.Progress p = vm.progress();
            assertEquals(1, p.resets(), p.toString());
            assertEquals(0, p.errors(), "a recovered driver has no error: " + p);
            assertTrue(p.resubmitted() >= 1, "requests without a completion went out again: " + p);
            assertEquals(0, p.resetFailures(), p.toString());
            assertNull(vm.disk.transport().brokenReason(), "the device serves again");
            assertEquals(0, status(vm) & Virtio.STATUS_NEEDS_RESET);
            assertTrue((status(vm) & Virtio.STATUS_DRIVER_OK) != 0);
            List<String> cont = DiskVerifier.verifyContinuation(before, p, 500);
            assertTrue(cont.isEmpty(), "every request in flight before the reset completed, I/O went on: " + cont);
            DiskVerifier.Verdict v = DiskVerifier.verifyImage(vm.driver.area(), img);
            assertTrue(v.ok(), "verified with no excuse: " + v);
        }
    }

    @Test
    void aDeviceThatKeepsNeedingResetsStopsTheDriverAtItsLimit() throws Exception {
        Path img = SoftDiskIoTest.image(dir, 16 * SoftDiskVm.MiB);
        AtomicLong clock = new AtomicLong();
        SoftBlkDriver.ResetLimit limit = new SoftBlkDriver.ResetLimit(2, TimeUnit.MINUTES.toNanos(1), 0, clock::get);
        try (SoftDiskVm vm = new SoftDiskVm("vm", oneAtATime(img), false, 16, limit, null)) {
            vm.machine.vmStart();
            vm.runFor(200);
            for (int reset = 1; reset <= 4; reset++) {
                if (reset == 3) {
                    clock.addAndGet(TimeUnit.SECONDS.toNanos(61)); // the first two left the window
                }
                breakOnce(vm);
                int n = reset;
                await(vm, "reset " + n, p -> p.resets() == n && !p.resetPending());
                vm.runFor(50);
            }
            breakOnce(vm); // a third within the minute: the driver gives up
            await(vm, "the driver stopped", p -> p.errors() != 0);
            vm.machine.vmStop(RunState.PAUSED);

            BlkDriverArea.Progress p = vm.progress();
            assertEquals(4, p.resets(), "no reset past the limit: " + p);
            assertEquals(HostileBlkRequest.ERR_RESET_LIMIT, p.firstError(), p.toString());
            assertTrue(p.deviceNeedsReset(), p.toString());
            assertNotNull(vm.disk.transport().brokenReason(), "the device was left needing its reset");
            DiskVerifier.Verdict strict = DiskVerifier.verifyImage(vm.driver.area(), img);
            assertFalse(strict.ok(), "a driver that gave up is not a healthy disk: " + strict);
            DiskVerifier.Verdict v = DiskVerifier.verifyImage(vm.driver.area(), img, false, true);
            assertTrue(v.ok(), "every acknowledged write is still on the image: " + v);
        }
    }

    /**
     * The source's device goes NEEDS_RESET as the VM stops for switchover (before its drain, so
     * what was in flight gets no completion); the destination loads it broken, its driver resets
     * it, submits those requests again, and goes on.
     */
    @Test
    void needsResetAtStopCopyIsRecoveredOnTheDestination() throws Exception {
        Path img = SoftDiskIoTest.image(dir, 16 * SoftDiskVm.MiB);
        try (SoftDiskVm src = new SoftDiskVm("src", img, false)) {
            src.machine.addVmChangeStateHandler(new VmChangeStateHandler() {
                @Override
                public void onChange(boolean running, RunState state) {
                    if (!running && state == RunState.FINISH_MIGRATE) {
                        DeviceFaults.needsReset(src.disk.transport(), "test: the device broke at switchover");
                    }
                }
            }, 1000); // stop handlers run by descending priority: before the disk's drain
            src.machine.vmStart();
            src.runFor(300);
            byte[] stream = InMemoryMigration.save(src.machine);
            BlkDriverArea.Progress atSwitchover = src.progress();
            assertNotNull(src.disk.transport().brokenReason());
            try (SoftDiskVm dst = new SoftDiskVm("dst", img, true)) {
                SoftDiskMigrationTest.load(dst, stream);
                assertTrue((status(dst) & Virtio.STATUS_NEEDS_RESET) != 0, "loaded as it was saved: broken");
                dst.machine.vmStart();
                dst.runFor(1000);
                dst.machine.vmStop(RunState.PAUSED);
                BlkDriverArea.Progress now = dst.progress();
                assertEquals(1, now.resets(), now.toString());
                assertEquals(0, now.errors(), now.toString());
                List<String> cont = DiskVerifier.verifyContinuation(atSwitchover, now, 1000);
                assertTrue(cont.isEmpty(), "no request lost across the switchover and the reset: " + cont);
                DiskVerifier.Verdict v = DiskVerifier.verifyImage(dst.driver.area(), img);
                assertTrue(v.ok(), v.toString());
                System.out.println("destination: " + atSwitchover.inFlight() + " in flight at switchover, "
                        + now.resubmitted() + " submitted again after the reset");
            }
        }
    }

    static void breakOnce(SoftDiskVm vm) throws Exception {
        vm.machine.vmStop(RunState.PAUSED);
        HostileBlkRequest.plantNext(vm.driver.area());
        vm.machine.vmStart();
    }

    static long status(SoftDiskVm vm) {
        return vm.machine.mmio().read(vm.disk.transport().base() + 0x070, 4);
    }

    static void await(SoftDiskVm vm, String what, Predicate<BlkDriverArea.Progress> done)
            throws InterruptedException {
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (!done.test(vm.progress())) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError(vm.machine.name() + ": timed out waiting until " + what + ": " + vm.progress()
                        + "; device " + vm.describe());
            }
            Thread.sleep(2);
        }
    }
}
