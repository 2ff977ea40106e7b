package dev.ferry.migration.e2e;

import dev.ferry.core.machine.RunState;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.TestVm;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * QEMU's {@code globalstate}: the run state the source was in when the migration stopped it
 * travels in the stream, and a destination whose source was not running stays in that state
 * even with autostart (QEMU's process_incoming_migration_bh); a running source's VM starts.
 */
class GlobalStateTest {
    @ParameterizedTest
    @EnumSource(value = RunState.class, names = {"RUNNING", "PAUSED", "IO_ERROR"})
    void theDestinationResumesInTheSourcesRunState(RunState sourceState) throws Exception {
        byte[] stream;
        try (TestVm src = TestVm.builder("src").ram(4 * 4096).running().build()) {
            if (sourceState != RunState.RUNNING) {
                src.machine().vmStop(sourceState);
            }
            stream = InMemoryMigration.save(src.machine());
            assertEquals(sourceState, src.machine().stateBeforeMigration());
        }
        try (TestVm dst = TestVm.builder("dst").ram(4 * 4096).runState(RunState.INMIGRATE).build()) {
            InMemoryMigration.Incoming in = InMemoryMigration.load(dst.machine(), stream);
            assertEquals(MigrationStatus.COMPLETED, in.status(), in.toString());
            assertEquals(sourceState, dst.machine().incomingRunState());
            assertEquals(sourceState, in.runState(), "autostart on; the destination follows the source's state");
        }
    }
}
