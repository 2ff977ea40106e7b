package dev.ferry.vhostuser.frontend;

import dev.ferry.core.machine.RunState;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.MemoryTransports;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import dev.ferry.virtio.blk.BlkOptions;
import dev.ferry.virtio.guest.BlkDriverArea;
import dev.ferry.virtio.guest.DiskVerifier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A back-end that dies while a migration logs and is replaced before the next dirty-log sync:
 * the front-end reconnects at once (Ferry's back-end keeps an in-flight region, so the disk does
 * not need a reset), yet the migration must fail — the dead back-end's log since the last
 * harvest, and what it wrote after, cannot be trusted to be complete — with the device's reason,
 * not as an internal error. The source runs on, its I/O continuing through the new back-end.
 * (Found by {@code ferry faults --vhost-user}: a migration completed after such a replacement and
 * the destination's verification failed.)
 */
@Timeout(120)
class BackendReplacedDuringMigrationTest {
    @TempDir
    Path dir;

    @Test
    void aBackEndReplacedWhileTheMigrationLogsFailsIt() throws Exception {
        Path img = QsdDiskTest.image(dir, 16 * VhostDiskVm.MiB);
        Path sock = dir.resolve("b.sock");
        // In this process, so the replacement takes milliseconds whatever the machine's load.
        VhostUserBackend[] backend = {VhostUserBackend.serveBlk(BlkOptions.of(img), BackendOptions.server(sock))};
        try (VhostDiskVm src = new VhostDiskVm("src", sock, false)) {
            src.machine.vmStart();
            src.runFor(300);
            // The replacement happens inside the engine's first MIGRATION_PASS event, on the migration
            // thread: the next sync of the logs cannot come before it is over, however fast the pass.
            AtomicReference<SourceMigration> ref = new AtomicReference<>();
            AtomicReference<MigrationStatus> statusAtReplacement = new AtomicReference<>();
            MigrationEventSink replaceAtFirstPass = new MigrationEventSink() {
                @Override
                public void status(MigrationStatus status) {
                }

                @Override
                public void pass(long pass) {
                    if (statusAtReplacement.get() != null) {
                        return;
                    }
                    statusAtReplacement.set(ref.get().status());
                    try {
                        backend[0].close();
                        QsdFailureTest.awaitTrue("the hang-up was seen",
                                () -> Boolean.FALSE.equals(src.vub().get("connected")));
                        backend[0] = VhostUserBackend.serveBlk(BlkOptions.of(img), BackendOptions.server(sock));
                        QsdFailureTest.awaitTrue("the device reconnected: " + src.vub(),
                                () -> Boolean.TRUE.equals(src.vub().get("connected")));
                    } catch (Exception e) {
                        throw new AssertionError(e);
                    }
                }
            };
            SourceMigration m = new SourceMigration(src.machine, new MemoryTransports(),
                    MigrationParameters.defaults().withMaxBandwidth(8L << 20), MigrationCapabilities.defaults(),
                    replaceAtFirstPass);
            ref.set(m);
            m.start(MemoryTransports.FILE_URI);
            QsdFailureTest.Outcome o = new QsdFailureTest.Outcome(m.await(InMemoryMigration.WAIT), m.info().errorDesc());
            assertEquals(MigrationStatus.FAILED, o.status(), "a migration whose back-end was replaced mid-way completed");
            assertTrue(o.error().contains("disk0 (vhost-user-blk)") && o.error().contains("during migration"), o.error());
            assertFalse(o.error().contains("internal error"), o.error());
            assertEquals(MigrationStatus.ACTIVE, statusAtReplacement.get(), "the back-end was replaced while RAM iterated");
            assertEquals(RunState.RUNNING, src.machine.runState(), "the source VM runs on");
            src.runFor(500); // fails unless I/O goes on through the new back-end
            src.machine.vmStop(RunState.PAUSED);
            BlkDriverArea.Progress p = src.progress();
            assertEquals(0, p.errors(), "no device reset was needed: " + p);
            DiskVerifier.Verdict v = src.verify(img);
            assertTrue(v.ok(), v.problems().toString());
        } finally {
            backend[0].close();
        }
    }
}
