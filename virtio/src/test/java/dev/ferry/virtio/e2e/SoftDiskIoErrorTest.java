package dev.ferry.virtio.e2e;

import dev.ferry.core.machine.RunState;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.virtio.guest.BlkDriverArea;
import dev.ferry.virtio.guest.DiskVerifier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A disk whose writes fail for real: the image is a sparse file larger than the small tmpfs it
 * lives on, so once the tmpfs is full every write to a block not yet allocated fails with ENOSPC.
 * Under {@code werror=stop} the failing write is parked, the VM stops in {@code io-error} with a
 * BLOCK_IO_ERROR event, and the guest never sees an error; the parked writes are retried by
 * {@code cont} on the same VMM, or carried in the migration stream and retried by the destination
 * — after the tmpfs grew. Under {@code werror=report} the guest gets IOERR and the VM runs on.
 *
 * <p>Needs root (CAP_SYS_ADMIN) to mount the tmpfs; skipped with the reason otherwise.
 */
@Timeout(120)
class SoftDiskIoErrorTest {
    /** Room for 1024 of the 4096 blocks the driver uses: ENOSPC after a few thousand requests. */
    private static final String SMALL = "4m";
    /** Room for every block the driver uses (16 MiB) and more. */
    private static final String LARGE = "64m";
    /** The sparse image: four times the driver's blocks, sixteen times the small tmpfs. */
    private static final long IMAGE_BYTES = 64 * SoftDiskVm.MiB;

    @TempDir
    Path dir;
    private Path mnt;
    private boolean mounted;

    @BeforeEach
    void mountSmallTmpfs() throws Exception {
        mnt = Files.createDirectory(dir.resolve("tmpfs"));
        Result r = run("mount", "-t", "tmpfs", "-o", "size=" + SMALL, "tmpfs", mnt.toString());
        Assumptions.assumeTrue(r.exit == 0, () -> "needs a tmpfs of " + SMALL + " to make writes fail with ENOSPC, and "
                + "mounting one needs root (CAP_SYS_ADMIN): mount exited " + r.exit + ": " + r.output.trim());
        mounted = true;
    }

    @AfterEach
    void unmount() throws Exception {
        if (mounted) {
            Result r = run("umount", mnt.toString());
            if (r.exit != 0) {
                run("umount", "-l", mnt.toString()); // an fd still open after a failed test
            }
            mounted = false;
        }
    }

    private static Map<String, Object> options(Path image, String policy) {
        return Map.of("image", image.toString(), "werror", policy, "rerror", policy);
    }

    private Path sparseImage() throws IOException {
        Path p = mnt.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(IMAGE_BYTES);
        }
        return p;
    }

    private void grow() throws Exception {
        Result r = run("mount", "-o", "remount,size=" + LARGE, mnt.toString());
        assertEquals(0, r.exit, () -> "remount " + mnt + " with size=" + LARGE + ": " + r.output);
    }

    /**
     * Runs the guest until its disk stops the VM on ENOSPC and checks what the stop left: a
     * BLOCK_IO_ERROR event for a write, no error seen by the guest, parked requests, an image
     * that holds every acknowledged write.
     */
    private static BlkDriverArea.Progress runUntilIoErrorStop(SoftDiskVm vm, Path img) throws Exception {
        vm.machine.vmStart();
        vm.awaitStopped(RunState.IO_ERROR);
        List<String> events = vm.stopEvents;
        assertTrue(!events.isEmpty() && events.stream().allMatch(e -> e.startsWith("BLOCK_IO_ERROR ")), events::toString);
        String first = events.get(0);
        assertTrue(first.contains("operation=write") && first.contains("action=stop") && first.contains("nospace=true")
                && first.contains("No space left on device") && first.contains(img.toString()), first);
        BlkDriverArea.Progress p = vm.progress();
        assertEquals(0, p.ioErrors(), () -> "the guest saw no error: " + p);
        assertEquals(0, p.errors(), p::toString);
        assertTrue(p.inFlight() > 0, () -> "the failed write is still in flight for the guest: " + p);
        Map<String, Object> blk = vm.blk();
        assertTrue(((Number) blk.get("parked")).intValue() > 0, blk::toString);
        assertEquals(0, ((Number) blk.get("in-flight")).intValue(), blk::toString);
        DiskVerifier.Verdict v = vm.verify(img);
        assertTrue(v.ok(), "at the io-error stop: " + v);
        return p;
    }

    /** {@code cont} on the same VMM, once the tmpfs has room, retries the parked writes; the guest goes on. */
    @Test
    void stopParksTheWriteAndContRetriesIt() throws Exception {
        Path img = sparseImage();
        try (SoftDiskVm vm = new SoftDiskVm("vm", options(img, "stop"), false, 16)) {
            BlkDriverArea.Progress atStop = runUntilIoErrorStop(vm, img);
            int parked = ((Number) vm.blk().get("parked")).intValue();
            grow();
            vm.machine.vmStart(); // cont
            vm.runFor(1000);
            vm.machine.vmStop(RunState.PAUSED);
            BlkDriverArea.Progress now = vm.progress();
            List<String> problems = DiskVerifier.verifyContinuation(atStop, now, 1000);
            assertTrue(problems.isEmpty(), "every request in flight at the stop completed, I/O went on: " + problems);
            assertEquals(0, now.ioErrors(), now::toString);
            Map<String, Object> blk = vm.blk();
            assertEquals(0, ((Number) blk.get("parked")).intValue(), blk::toString);
            assertTrue(((Number) blk.get("io-errors")).longValue() >= parked, blk::toString);
            DiskVerifier.Verdict v = vm.verify(img);
            assertTrue(v.ok(), v.toString());
            assertEquals(RunState.PAUSED, vm.machine.runState(), "no late stop request came after cont");
        }
    }

    /**
     * The VM stopped on io-error migrates as it is (QEMU migrates a stopped VM): the parked
     * requests travel in virtio-blk's part of the device state, the destination retries them when
     * it starts — after the tmpfs grew — and the guest continues there.
     */
    @Test
    void ioErrorStoppedVmMigratesWithItsParkedRequests() throws Exception {
        Path img = sparseImage();
        try (SoftDiskVm src = new SoftDiskVm("src", options(img, "stop"), false, 16)) {
            BlkDriverArea.Progress atStop = runUntilIoErrorStop(src, img);
            int parked = ((Number) src.blk().get("parked")).intValue();
            byte[] stream = InMemoryMigration.save(src.machine);
            assertEquals(RunState.POSTMIGRATE, src.machine.runState());
            assertEquals(parked, ((Number) src.blk().get("carried-out")).intValue(), () -> src.blk().toString());
            try (SoftDiskVm dst = new SoftDiskVm("dst", options(img, "stop"), true, 16)) {
                SoftDiskMigrationTest.load(dst, stream);
                assertEquals(RunState.IO_ERROR, dst.machine.runState(),
                        "globalstate: the destination stays stopped on the source's I/O error until cont");
                Map<String, Object> loaded = dst.blk();
                assertEquals(parked, ((Number) loaded.get("parked")).intValue(), loaded::toString);
                assertEquals(parked, ((Number) loaded.get("carried-in")).intValue(), loaded::toString);
                assertEquals(Boolean.FALSE, loaded.get("active"), loaded::toString);
                assertEquals(atStop.completed(), dst.progress().completed());
                grow();
                dst.machine.vmStart();
                dst.runFor(1000);
                dst.machine.vmStop(RunState.PAUSED);
                BlkDriverArea.Progress now = dst.progress();
                List<String> problems = DiskVerifier.verifyContinuation(atStop, now, 1000);
                assertTrue(problems.isEmpty(), "the parked requests completed on the destination: " + problems);
                assertEquals(0, now.ioErrors(), now::toString);
                Map<String, Object> blk = dst.blk();
                assertEquals(0, ((Number) blk.get("parked")).intValue(), blk::toString);
                assertEquals(Boolean.TRUE, blk.get("active"));
                assertTrue(dst.stopEvents.isEmpty(), dst.stopEvents::toString);
                DiskVerifier.Verdict v = dst.verify(img);
                assertTrue(v.ok(), v.toString());
            }
        }
    }

    /** {@code werror=report}: the failed write completes with IOERR, the VM runs on, the image still proves out. */
    @Test
    void reportCompletesTheWriteWithIoErr() throws Exception {
        Path img = sparseImage();
        try (SoftDiskVm vm = new SoftDiskVm("vm", options(img, "report"), false, 16)) {
            vm.machine.vmStart();
            long deadline = System.nanoTime() + 20_000_000_000L;
            while (vm.progress().ioErrors() == 0 && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            assertTrue(vm.progress().ioErrors() > 0, () -> "the guest saw IOERR: " + vm.progress());
            assertEquals(RunState.RUNNING, vm.machine.runState());
            vm.runFor(500);
            vm.machine.vmStop(RunState.PAUSED);
            BlkDriverArea.Progress p = vm.progress();
            assertTrue(p.ioErrors() > 0, p::toString);
            assertEquals(0, p.errors(), p::toString);
            assertEquals(0, p.readMismatches(), "a failed write left the acknowledged data readable: " + p);
            assertTrue(vm.stopEvents.isEmpty(), vm.stopEvents::toString);
            assertEquals(0, ((Number) vm.blk().get("parked")).intValue());
            assertTrue(!DiskVerifier.verifyImage(vm.driver.area(), img).ok(), "the strict check names the IOERRs");
            DiskVerifier.Verdict v = DiskVerifier.verifyImage(vm.driver.area(), img, true);
            assertTrue(v.ok(), v.toString());
        }
    }

    private record Result(int exit, String output) {
    }

    private static Result run(String... cmd) throws Exception {
        Process p;
        try {
            p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        } catch (IOException e) {
            return new Result(-1, cmd[0] + " could not run: " + e.getMessage());
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            return new Result(-1, String.join(" ", cmd) + " did not finish in 30 s: " + out);
        }
        return new Result(p.exitValue(), out);
    }
}
