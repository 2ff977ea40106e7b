package dev.ferry.vhostuser.frontend;

import dev.ferry.core.machine.RunState;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import dev.ferry.virtio.blk.BlkOptions;
import dev.ferry.virtio.guest.BlkDriverArea;
import dev.ferry.virtio.guest.DiskVerifier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Ferry on both ends of vhost-user: a soft guest doing disk I/O through Ferry's front-end, served
 * by Ferry's back-end library (one back-end per side on one image), migrates A → B → A. After
 * each hop the destination's RAM at load equals the source's at switchover (the back-end's
 * writes reached the front-end's migration through its shared log), the rings resume where
 * GET_VRING_BASE left them, no request is lost or done twice, and the image holds every
 * acknowledged write.
 */
@Timeout(120)
class FerryBackendMigrationTest {
    @TempDir
    Path dir;

    @Test
    void migratesBetweenTwoFerryBackEndsWithDiskIoRunning() throws Exception {
        Path img = QsdDiskTest.image(dir, 16 * VhostDiskVm.MiB);
        try (VhostUserBackend a = VhostUserBackend.serveBlk(BlkOptions.of(img), BackendOptions.server(dir.resolve("a.sock")));
             VhostUserBackend b = VhostUserBackend.serveBlk(BlkOptions.of(img), BackendOptions.server(dir.resolve("b.sock")))) {
            VhostDiskVm src = new VhostDiskVm("hop0", a.socket(), false);
            try {
                src.machine.vmStart();
                src.runFor(500);
                for (int hop = 1; hop <= 2; hop++) {
                    byte[] stream = InMemoryMigration.save(src.machine);
                    assertEquals(RunState.POSTMIGRATE, src.machine.runState());
                    long srcDigest = src.machine.memory().digest();
                    BlkDriverArea.Progress atSwitchover = src.progress();
                    Map<String, Object> srcDev = src.describe();
                    VhostUserBackend served = hop % 2 == 1 ? a : b;
                    assertTrue(served.stats().logAllSeen() && served.stats().loggedWrites() > 0,
                            "the source's back-end logged under LOG_ALL: " + served.stats());

                    VhostUserBackend next = hop % 2 == 1 ? b : a;
                    VhostDiskVm dst = new VhostDiskVm("hop" + hop, next.socket(), true);
                    try {
                        QsdMigrationTest.Loaded l = QsdMigrationTest.load(dst, stream);
                        assertEquals(MigrationStatus.COMPLETED, l.status(), () -> "incoming: " + l.error());
                        assertNotNull(l.digest());
                        assertEquals(srcDigest, l.digest().longValue(), "hop " + hop + ": pages that differ: "
                                + QsdMigrationTest.differingPages(src, dst));
                        assertEquals(srcDev.get("queues"), dst.describe().get("queues"),
                                "ring indices on the destination equal GET_VRING_BASE's on the source");
                        dst.machine.vmStart();
                        dst.runFor(800);
                        dst.machine.vmStop(RunState.PAUSED);
                        List<String> problems = DiskVerifier.verifyContinuation(atSwitchover, dst.progress(), 200);
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
    }
}
