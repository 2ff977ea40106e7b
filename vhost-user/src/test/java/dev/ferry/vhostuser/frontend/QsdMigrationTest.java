package dev.ferry.vhostuser.frontend;

import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.DirtyLogSource;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.MemoryTransports;
import dev.ferry.virtio.guest.BlkDriverArea;
import dev.ferry.virtio.guest.DiskVerifier;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A soft guest doing disk I/O at full speed through vhost-user-blk migrates between two real
 * qemu-storage-daemons on one image (A → B → A). After each hop: guest RAM on the destination
 * when loading finished equals the source's at switchover — including the read buffers and used
 * rings only the daemon wrote, which only its shared dirty log reports —, the rings resume at the
 * index GET_VRING_BASE returned, no request is lost or completed twice, the image holds every
 * acknowledged write, and I/O goes on. Without the daemon's log the same migration does not
 * arrive intact.
 */
@Timeout(120)
class QsdMigrationTest {
    @TempDir
    Path dir;

    @BeforeAll
    static void peer() {
        Qsd.assumeInstalled();
    }

    /** How a destination ended its load: the status, its error and the RAM digest when loading finished. */
    record Loaded(MigrationStatus status, String error, Long digest) {
    }

    /** Loads {@code stream} into {@code dst} and leaves it paused, digesting RAM when loading finished. */
    static Loaded load(VhostDiskVm dst, byte[] stream) throws Exception {
        MemoryTransports t = new MemoryTransports();
        t.serve(MemoryTransports.FILE_URI, stream);
        DestinationMigration d = new DestinationMigration(dst.machine, t, MigrationCapabilities.defaults(),
                MigrationEventSink.NONE, false);
        d.digestMemoryAtLoad(true);
        d.listen(MemoryTransports.FILE_URI);
        MigrationStatus st = d.await(InMemoryMigration.WAIT);
        return new Loaded(st, d.errorDesc(), d.memoryDigestAtLoad());
    }

    /** The first pages (as GPAs) whose contents differ between two VMs' RAM, for a failure message. */
    static List<String> differingPages(VhostDiskVm a, VhostDiskVm b) {
        List<String> out = new java.util.ArrayList<>();
        byte[] pa = new byte[4096];
        byte[] pb = new byte[4096];
        for (long gpa = 0; gpa < VhostDiskVm.RAM && out.size() < 20; gpa += 4096) {
            a.machine.memory().read(dev.ferry.core.memory.Gpa.of(gpa), pa, 0, 4096);
            b.machine.memory().read(dev.ferry.core.memory.Gpa.of(gpa), pb, 0, 4096);
            if (!java.util.Arrays.equals(pa, pb)) {
                out.add(gpa >= VhostDiskVm.DRIVER_AREA ? "area+0x" + Long.toHexString(gpa - VhostDiskVm.DRIVER_AREA)
                        : "0x" + Long.toHexString(gpa));
            }
        }
        return out;
    }

    @Test
    void migratesBetweenTwoDaemonsWithDiskIoRunning() throws Exception {
        Path img = QsdDiskTest.image(dir, 16 * VhostDiskVm.MiB);
        try (Qsd a = new Qsd(img, dir.resolve("a.sock")); Qsd b = new Qsd(img, dir.resolve("b.sock"))) {
            migrateHops(img, a.socket, b.socket, (hop, src) -> assertTrue(src.model().loggedPages() > 0,
                    "the daemon's log reported pages: " + src.vub()));
        }
    }

    /** A check of the source VM just after it saved its state, before the destination loads it. */
    interface SourceCheck {
        void check(int hop, VhostDiskVm source);
    }

    /**
     * A soft guest doing disk I/O on {@code img} through the back-end at {@code a} migrates to the
     * one at {@code b} and back (two hops). After each: the destination's RAM at load equals the
     * source's at switchover, the rings resume at GET_VRING_BASE's index, the guest's I/O goes on
     * with no request lost or completed twice, and the image holds every acknowledged write.
     */
    static void migrateHops(Path img, Path a, Path b, SourceCheck afterSave) throws Exception {
        VhostDiskVm src = new VhostDiskVm("hop0", a, false);
        try {
            src.machine.vmStart();
            src.runFor(500);
            for (int hop = 1; hop <= 2; hop++) {
                byte[] stream = InMemoryMigration.save(src.machine);
                assertEquals(RunState.POSTMIGRATE, src.machine.runState());
                long srcDigest = src.machine.memory().digest();
                BlkDriverArea.Progress atSwitchover = src.progress();
                Map<String, Object> srcDev = src.describe();
                afterSave.check(hop, src);

                VhostDiskVm dst = new VhostDiskVm("hop" + hop, hop % 2 == 1 ? b : a, true);
                try {
                    Loaded l = load(dst, stream);
                    assertEquals(MigrationStatus.COMPLETED, l.status(), () -> "incoming: " + l.error());
                    assertNotNull(l.digest());
                    VhostDiskVm from = src;
                    assertEquals(srcDigest, l.digest().longValue(),
                            () -> "guest RAM on the destination equals the source's at switchover; pages that differ: "
                                    + differingPages(from, dst));
                    assertEquals(srcDev.get("queues"), dst.describe().get("queues"),
                            "ring indices on the destination equal GET_VRING_BASE's on the source");
                    dst.machine.vmStart();
                    dst.runFor(1000);
                    dst.machine.vmStop(RunState.PAUSED);
                    List<String> problems = DiskVerifier.verifyContinuation(atSwitchover, dst.progress(), 500);
                    assertTrue(problems.isEmpty(), "hop " + hop + ": " + problems);
                    DiskVerifier.Verdict v = dst.verify(img);
                    assertTrue(v.ok(), "hop " + hop + ": " + v);
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
     * The same migration with the daemon's log left out of RAM migration: pages only the daemon
     * wrote after they were sent (read buffers, status bytes, the used ring) stay stale on the
     * destination, so its RAM differs from the source's — or the rings no longer check.
     */
    @Test
    void withoutTheDaemonsLogTheDestinationIsWrong() throws Exception {
        Path img = QsdDiskTest.image(dir, 16 * VhostDiskVm.MiB);
        try (Qsd a = new Qsd(img, dir.resolve("a.sock")); Qsd b = new Qsd(img, dir.resolve("b.sock"));
             VhostDiskVm src = new VhostDiskVm("src", a.socket, false)) {
            DirtyLogSource log = src.machine.migration().dirtyLogSources().stream()
                    .filter(s -> s.name().equals("disk0 vhost-user log")).findFirst().orElseThrow();
            src.machine.migration().removeDirtyLogSource(log);
            src.machine.vmStart();
            src.runFor(500);
            byte[] stream = InMemoryMigration.save(src.machine);
            long srcDigest = src.machine.memory().digest();
            try (VhostDiskVm dst = new VhostDiskVm("dst", b.socket, true)) {
                Loaded l = load(dst, stream);
                assertFalse(l.status() == MigrationStatus.COMPLETED && l.digest() == srcDigest,
                        "without the back-end's log the destination cannot equal the source");
            }
        }
    }
}
