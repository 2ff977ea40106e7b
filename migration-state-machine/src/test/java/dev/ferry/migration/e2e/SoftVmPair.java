package dev.ferry.migration.e2e;

import dev.ferry.core.cpu.soft.SoftCpuEngine;
import dev.ferry.core.cpu.soft.SoftVcpuState;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.transport.MigrationTransports;

import java.util.List;
import java.util.function.Consumer;

/**
 * A source VM running the soft workload and a destination VM of the same shape waiting in
 * inmigrate, in one process: the fixture of the engine's end-to-end tests.
 */
final class SoftVmPair implements AutoCloseable {
    final SoftWorkload workload;
    final Machine source;
    final Machine destination;
    final SoftCpuEngine sourceCpus;
    final SoftCpuEngine destinationCpus;

    SoftVmPair(long ramBytes, SoftWorkload workload) {
        this(ramBytes, workload, m -> { });
    }

    /** {@code devices} adds the same extra participants to both machines. */
    SoftVmPair(long ramBytes, SoftWorkload workload, Consumer<Machine> devices) {
        this(GuestMemory.ofSize(ramBytes), GuestMemory.ofSize(ramBytes), workload, devices);
    }

    /** Over memories the caller built (their backing may differ); owns them from here on. */
    SoftVmPair(GuestMemory sm, GuestMemory dm, SoftWorkload workload, Consumer<Machine> devices) {
        this.workload = workload;
        sourceCpus = new SoftCpuEngine(sm, workload);
        destinationCpus = new SoftCpuEngine(dm, workload);
        source = new Machine("source", sm, sourceCpus, RunState.PRELAUNCH);
        destination = new Machine("destination", dm, destinationCpus, RunState.PRELAUNCH);
        sourceCpus.registerMigration(source.migration());
        destinationCpus.registerMigration(destination.migration());
        devices.accept(source);
        devices.accept(destination);
    }

    void startSource() throws Exception {
        source.vmStart();
    }

    /** Fills the whole working set with valid data first, as a guest that has been running would have it. */
    void startSourcePopulated() throws Exception {
        sourceCpus.populate(1.0);
        source.vmStart();
    }

    DestinationMigration destination(MigrationTransports t, MigrationCapabilities caps) {
        DestinationMigration d = new DestinationMigration(destination, t, caps, MigrationEventSink.NONE, true);
        d.digestMemoryAtLoad(true);
        return d;
    }

    SourceMigration source(MigrationTransports t, MigrationParameters p, MigrationCapabilities caps,
                           MigrationEventSink events) {
        return new SourceMigration(source, t, p, caps, events);
    }

    List<SoftVcpuState> sourceState() {
        return sourceCpus.snapshot();
    }

    /**
     * Lets the destination's guest make at least {@code steps} page writes (20 s at most), pauses
     * it, and asserts it went on exactly where the source's stopped ({@code saved}).
     */
    void assertDestinationContinues(List<SoftVcpuState> saved, long steps) throws Exception {
        long before = destinationCpus.pagesWritten();
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (destinationCpus.pagesWritten() < before + steps && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        destination.vmStop(RunState.PAUSED);
        dev.ferry.core.cpu.soft.ContinuationCheck check = SoftCpuEngine.verifyContinuation(destination.memory(), workload,
                saved, destinationCpus.snapshot());
        org.junit.jupiter.api.Assertions.assertTrue(check.ok(), check::toString);
        org.junit.jupiter.api.Assertions.assertTrue(check.stepsReplayed() >= steps,
                "the destination guest made progress: " + check);
    }

    @Override
    public void close() {
        source.close();
        destination.close();
    }
}
