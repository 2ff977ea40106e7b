package dev.ferry.virtio.e2e;

import dev.ferry.core.machine.RunState;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.MemoryTransports;
import dev.ferry.virtio.guest.BlkDriverArea;
import dev.ferry.virtio.guest.DiskVerifier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A soft guest doing disk I/O at full speed migrates three hops through the real engine, both
 * sides on one shared image. After each hop: the destination's rings continue from the source's
 * indices, the interrupt the source's drain raised is pending on the destination and taken there,
 * no request is lost or completed twice, the image holds every acknowledged write, and I/O goes on.
 */
@Timeout(120)
class SoftDiskMigrationTest {
    @TempDir
    Path dir;

    @Test
    void threeHopsWithDiskIoRunning() throws Exception {
        Path img = SoftDiskIoTest.image(dir, 16 * SoftDiskVm.MiB);
        SoftDiskVm src = new SoftDiskVm("hop0", img, false);
        try {
            src.machine.vmStart();
            src.runFor(500);
            for (int hop = 1; hop <= 3; hop++) {
                byte[] stream = InMemoryMigration.save(src.machine);
                assertEquals(RunState.POSTMIGRATE, src.machine.runState());
                BlkDriverArea.Progress atSwitchover = src.progress();
                Map<String, Object> srcDev = src.describe();
                int srcPending = src.irqchip.pendingMask();

                SoftDiskVm dst = new SoftDiskVm("hop" + hop, img, true);
                try {
                    load(dst, stream);
                    assertEquals(RunState.PAUSED, dst.machine.runState());
                    assertEquals(srcDev.get("queues"), dst.describe().get("queues"),
                            "ring indices on the destination equal the source's at switchover");
                    assertEquals(Boolean.FALSE, dst.blk().get("active"), "the destination's image is inactive before it runs");
                    assertEquals(srcPending, dst.irqchip.pendingMask(), "interrupt lines pending at switchover");
                    long irqsBefore = dst.progress().interrupts();
                    dst.machine.vmStart();
                    dst.runFor(1500);
                    dst.machine.vmStop(RunState.PAUSED);
                    BlkDriverArea.Progress now = dst.progress();
                    List<String> problems = DiskVerifier.verifyContinuation(atSwitchover, now, 1000);
                    assertTrue(problems.isEmpty(), "hop " + hop + ": " + problems);
                    assertTrue(now.interrupts() > irqsBefore, "the destination's driver takes interrupts");
                    DiskVerifier.Verdict v = dst.verify(img);
                    assertTrue(v.ok(), "hop " + hop + ": " + v);
                    assertEquals(Boolean.TRUE, dst.blk().get("active"));
                    dst.machine.vmStart();
                } catch (Throwable t) {
                    dst.close();
                    throw t;
                }
                src.close();
                src = dst;
            }
        } finally {
            src.close();
        }
    }

    /**
     * The guest masks interrupts and keeps doing I/O by polling, so the device's line stays raised;
     * the VM migrates with it raised; on the destination the line is pending before the VM runs,
     * and when the guest unmasks, it takes that interrupt (InterruptStatus still says "used buffer").
     */
    @Test
    void interruptPendingAtSwitchoverIsDeliveredOnTheDestination() throws Exception {
        Path img = SoftDiskIoTest.image(dir, 16 * SoftDiskVm.MiB);
        try (SoftDiskVm src = new SoftDiskVm("src", img, false)) {
            src.machine.vmStart();
            src.runFor(200);
            src.machine.vmStop(RunState.PAUSED);
            src.driver.area().setInterruptsMasked(true);
            src.machine.vmStart();
            src.runFor(200);
            int gsi = src.disk.transport().irq().gsi();
            assertNotEquals(0, src.irqchip.pendingMask() & (1 << gsi), "the line is raised while the guest masks it");
            long irqsAtSwitchover = src.progress().interrupts();
            byte[] stream = InMemoryMigration.save(src.machine);
            try (SoftDiskVm dst = new SoftDiskVm("dst", img, true)) {
                load(dst, stream);
                assertNotEquals(0, dst.irqchip.pendingMask() & (1 << gsi), "pending on the destination before it runs");
                assertEquals(irqsAtSwitchover, dst.progress().interrupts());
                dst.driver.area().setInterruptsMasked(false);
                dst.machine.vmStart();
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (dst.progress().interrupts() == irqsAtSwitchover && System.nanoTime() < deadline) {
                    Thread.sleep(2);
                }
                assertTrue(dst.progress().interrupts() > irqsAtSwitchover, "the destination's guest took the interrupt");
                dst.runFor(500);
                dst.machine.vmStop(RunState.PAUSED);
                assertTrue(dst.verify(img).ok());
            }
        }
    }

    /** Loads {@code stream} into {@code dst} and leaves it paused (no autostart), as {@code -S} would. */
    static void load(SoftDiskVm dst, byte[] stream) throws Exception {
        MemoryTransports t = new MemoryTransports();
        t.serve(MemoryTransports.FILE_URI, stream);
        DestinationMigration d = new DestinationMigration(dst.machine, t, MigrationCapabilities.defaults(),
                MigrationEventSink.NONE, false);
        d.listen(MemoryTransports.FILE_URI);
        MigrationStatus st = d.await(InMemoryMigration.WAIT);
        assertEquals(MigrationStatus.COMPLETED, st, () -> "incoming: " + d.errorDesc());
    }

    static MigrationParameters unlimited() {
        return MigrationParameters.defaults().withMaxBandwidth(0);
    }
}
