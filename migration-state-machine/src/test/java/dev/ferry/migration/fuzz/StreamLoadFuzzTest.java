package dev.ferry.migration.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.ferry.core.machine.RunState;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.InMemoryMigration.Incoming;
import dev.ferry.migration.testing.MemoryTransports;
import dev.ferry.migration.testing.TestDevice;
import dev.ferry.migration.testing.TestVm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Fuzz target: the destination's stream loader. Whatever the bytes, a fresh destination (RAM and a
 * test device) either loads them and runs, or refuses them with a clear error-desc, stays in
 * inmigrate with its vCPUs never started, closes its connection and releases every chunk — never
 * an exception, a hang (the load is awaited for {@link InMemoryMigration#WAIT}) or an OOM.
 *
 * <p>In a plain {@code mvn verify} this runs the seed corpus ({@code StreamLoadFuzzTestInputs/}:
 * streams the engine wrote, and hand-written hostile ones) as regression tests; with
 * {@code JAZZER_FUZZ=1} it fuzzes (docs/fuzzing.md).
 */
class StreamLoadFuzzTest {
    static {
        System.setProperty("org.slf4j.simpleLogger.log.dev.ferry.migration.DestinationMigration", "off");
    }

    static final int RAM_BYTES = 64 << 10;

    @FuzzTest(maxDuration = "30s")
    void destinationLoads(byte[] stream) throws Exception {
        try (TestVm vm = TestVm.builder("dst").ram(RAM_BYTES).runState(RunState.PRELAUNCH).device(new TestDevice()).build()) {
            MemoryTransports t = new MemoryTransports().chunkSize(509);
            Incoming r = InMemoryMigration.load(vm.machine(), stream, t);
            Verdicts.assertLoadedOrRefused(r);
            if (r.status() != MigrationStatus.COMPLETED) {
                assertFalse(vm.cpus().running(), "a destination that failed to load must not run its vCPUs");
                assertEquals(0, vm.cpus().resumes(), "a destination that failed to load must not have started");
                assertEquals(RunState.INMIGRATE, r.runState());
            }
            assertTrue(r.connection().isClosed(), "the destination closes its connection");
            assertEquals(0, r.connection().unreleasedChunks(), "chunks the reader did not release");
        }
    }
}
