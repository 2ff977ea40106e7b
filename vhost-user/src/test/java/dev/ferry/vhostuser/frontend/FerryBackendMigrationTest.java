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
 * acknowledged write. The back-end's own state travels with the stream (DEVICE_STATE, protocol
 * feature 19: saved through a pipe on the source, loaded into the destination's back-end and
 * confirmed by CHECK_DEVICE_STATE).
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
                // Ferry's back-end offers DEVICE_STATE: its own state (VirtioBlk's) travelled in the stream.
                Object dev = src.describe().get(src.model().name());
                assertTrue(dev instanceof java.util.Map<?, ?> m && m.get("device-state-saved-bytes") instanceof Number n
                        && n.longValue() > 0, "the back-end's device state was saved: " + dev);
            });
            for (VhostUserBackend be : new VhostUserBackend[] {a, b}) {
                assertTrue(be.stats().lastRefusal() == null || !be.stats().lastRefusal().contains("DEVICE_STATE"),
                        be.stats().toString());
            }
        }
    }

    /**
     * A stream carrying the source back-end's state cannot go to a back-end that cannot take it
     * (qemu-storage-daemon 7.2 has no DEVICE_STATE): the destination refuses the load naming why,
     * rather than dropping the state.
     */
    @Test
    void aDestinationBackEndWithoutDeviceStateRefusesTheStream() throws Exception {
        Qsd.assumeInstalled();
        Path img = QsdDiskTest.image(dir, 16 * VhostDiskVm.MiB);
        try (VhostUserBackend a = VhostUserBackend.serveBlk(BlkOptions.of(img), BackendOptions.server(dir.resolve("a.sock")));
             Qsd b = new Qsd(img, dir.resolve("b.sock"));
             VhostDiskVm src = new VhostDiskVm("src", a.socket(), false)) {
            src.machine.vmStart();
            src.runFor(300);
            byte[] stream = dev.ferry.migration.testing.InMemoryMigration.save(src.machine);
            try (VhostDiskVm dst = new VhostDiskVm("dst", b.socket, true)) {
                QsdMigrationTest.Loaded l = QsdMigrationTest.load(dst, stream);
                org.junit.jupiter.api.Assertions.assertEquals(dev.ferry.migration.MigrationStatus.FAILED, l.status());
                assertTrue(l.error().contains("does not offer DEVICE_STATE"), l.error());
            }
        }
    }
}
