package dev.ferry.vhostuser.frontend;

import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import dev.ferry.virtio.blk.BlkOptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

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
            QsdMigrationTest.migrateHops(img, a.socket(), b.socket(), (hop, src) -> {
                VhostUserBackend served = hop % 2 == 1 ? a : b;
                assertTrue(served.stats().logAllSeen() && served.stats().loggedWrites() > 0,
                        "the source's back-end logged under LOG_ALL: " + served.stats());
            });
        }
    }
}
