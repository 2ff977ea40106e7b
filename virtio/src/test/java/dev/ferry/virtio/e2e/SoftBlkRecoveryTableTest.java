package dev.ferry.virtio.e2e;

import dev.ferry.core.machine.RunState;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.guest.BlkDriverArea;
import dev.ferry.virtio.guest.DiskVerifier;
import dev.ferry.virtio.guest.HostileBlkRequest;
import dev.ferry.virtio.guest.SoftBlkDriver;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static dev.ferry.virtio.e2e.SoftDiskResetTest.await;
import static dev.ferry.virtio.e2e.SoftDiskResetTest.breakOnce;
import static dev.ferry.virtio.e2e.SoftDiskResetTest.status;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Walks every cell of the soft disk driver's recovery table (docs/devices.md, "Guest driver
 * recovery"), with a stepped clock: a device that breaks (a hostile request, NEEDS_RESET), one
 * that refuses to start after its reset (as a vhost-user disk with its back-end gone), one that
 * lies in its used ring. The cells marked — cannot occur: a reset is only attempted while one is
 * pending, and a driver with a reset pending or stopped reads neither the status nor the rings.
 */
@Timeout(120)
class SoftBlkRecoveryTableTest {
    static final long SECOND = TimeUnit.SECONDS.toNanos(1);

    @TempDir
    Path dir;

    /**
     * RUNNING × NEEDS_RESET → an attempt at once; PENDING × refused (twice, the backoff doubling);
     * PENDING × backoff not over; PENDING × device runs → RUNNING, requests resubmitted;
     * PENDING × limit reached → STOPPED; STOPPED × NEEDS_RESET → nothing.
     */
    @Test
    void resetRefusedBackedOffRecoveredThenLimited() throws Exception {
        Path img = SoftDiskIoTest.image(dir, 16 * SoftDiskVm.MiB);
        AtomicLong clock = new AtomicLong(-5 * SECOND); // a nanosecond clock may well be negative
        SoftBlkDriver.ResetLimit limit = new SoftBlkDriver.ResetLimit(3, 60 * SECOND, SECOND, clock::get);
        StartRefusingModel[] model = new StartRefusingModel[1];
        try (SoftDiskVm vm = new SoftDiskVm("vm", Map.of("image", img.toString(), "depth", 1), false, 16, limit,
                m -> model[0] = new StartRefusingModel(m))) {
            BlkDriverArea area = vm.driver.area();
            vm.machine.vmStart();
            vm.runFor(200);
            BlkDriverArea.Progress before = vm.progress();

            // RUNNING × NEEDS_RESET → attempt 1; PENDING × refused
            model[0].refuseAfterReset = true;
            breakOnce(vm);
            await(vm, "the first attempt was refused", p -> p.resetFailures() == 1);
            assertEquals(1, vm.progress().resets());
            assertTrue(vm.progress().resetPending());
            assertEquals(1, model[0].refusedStarts);

            // PENDING × backoff not over (the clock stands): no attempt
            Thread.sleep(50);
            assertEquals(1, model[0].refusedStarts, "no attempt before the backoff is over");
            assertEquals(1, vm.progress().resets());

            // the backoff (1 s) is over: attempt 2, refused; the backoff doubles to 2 s
            clock.addAndGet(SECOND);
            await(vm, "the second attempt was refused", p -> p.resetFailures() == 2);
            clock.addAndGet(SECOND);
            Thread.sleep(50);
            assertEquals(2, model[0].refusedStarts, "1 s into a 2 s backoff: no attempt");

            // PENDING × device runs: attempt 3 works, the requests without completion go out again
            model[0].refuseAfterReset = false;
            clock.addAndGet(SECOND);
            await(vm, "the device runs again", p -> p.resets() == 3 && !p.resetPending());
            vm.runFor(300);
            BlkDriverArea.Progress p = vm.progress();
            assertEquals(0, p.errors(), p.toString());
            assertEquals(2, p.resetFailures(), p.toString());
            assertTrue(p.resubmitted() >= 1, p.toString());
            assertTrue(DiskVerifier.verifyContinuation(before, p, 300).isEmpty(),
                    DiskVerifier.verifyContinuation(before, p, 300).toString());

            // PENDING × limit reached: three resets (attempts) within the minute → STOPPED
            breakOnce(vm);
            await(vm, "the driver stopped at its limit", q -> q.errors() != 0);
            assertEquals(HostileBlkRequest.ERR_RESET_LIMIT, vm.progress().firstError());
            assertEquals(3, vm.progress().resets());

            // STOPPED × NEEDS_RESET: the device is left needing its reset; the driver does nothing
            clock.addAndGet(120 * SECOND);
            Thread.sleep(50);
            assertEquals(3, vm.progress().resets());
            assertNotNull(vm.disk.transport().brokenReason());
            assertTrue((status(vm) & Virtio.STATUS_NEEDS_RESET) != 0);
            vm.machine.vmStop(RunState.PAUSED);
            assertTrue(DiskVerifier.verifyImage(area, img, false, true).ok());
        }
    }

    /** RUNNING × NEEDS_RESET with interrupts masked: the driver finds it by polling the status. */
    @Test
    void needsResetIsFoundByPollingWithInterruptsMasked() throws Exception {
        Path img = SoftDiskIoTest.image(dir, 16 * SoftDiskVm.MiB);
        try (SoftDiskVm vm = new SoftDiskVm("vm", Map.of("image", img.toString(), "depth", 1), false, 16)) {
            vm.machine.vmStart();
            vm.runFor(200);
            vm.machine.vmStop(RunState.PAUSED);
            vm.driver.area().setInterruptsMasked(true);
            long irqs = vm.progress().interrupts();
            breakOnce(vm);
            await(vm, "the driver reset the device", p -> p.resets() == 1 && !p.resetPending());
            vm.runFor(300);
            vm.machine.vmStop(RunState.PAUSED);
            assertEquals(irqs, vm.progress().interrupts(), "no interrupt was taken");
            assertEquals(0, vm.progress().errors());
            assertNull(vm.disk.transport().brokenReason());
            assertTrue(DiskVerifier.verifyImage(vm.driver.area(), img).ok());
        }
    }

    /** RUNNING × a used ring that runs ahead → STOPPED on that error; no reset is tried. */
    @Test
    void aLyingUsedRingStopsTheDriverWithoutAReset() throws Exception {
        Path img = SoftDiskIoTest.image(dir, 16 * SoftDiskVm.MiB);
        try (SoftDiskVm vm = new SoftDiskVm("vm", img, false)) { // the device takes all 16: idle at the pause
            vm.machine.vmStart();
            vm.runFor(200);
            vm.machine.vmStop(RunState.PAUSED);
            HostileBlkRequest.usedIndexAhead(vm.driver.area(), 100);
            vm.machine.vmStart();
            await(vm, "the driver stopped", p -> p.errors() != 0);
            Thread.sleep(20);
            vm.machine.vmStop(RunState.PAUSED);
            BlkDriverArea.Progress p = vm.progress();
            assertEquals(HostileBlkRequest.ERR_USED_AHEAD, p.firstError(), p.toString());
            assertEquals(0, p.resets(), p.toString());
        }
    }
}
