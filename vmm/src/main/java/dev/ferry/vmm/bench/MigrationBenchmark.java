package dev.ferry.vmm.bench;

import dev.ferry.core.cpu.soft.SoftCpuEngine;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationInfo;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.transport.NettyMigrationTransports;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * Live migration throughput of a soft guest whose RAM is half random pages, half zero pages, over
 * one loopback TCP stream or a UNIX socket, source and destination in this JVM (both on the same
 * two cores, as a single-host migration would be). Each invocation migrates the whole guest to a
 * fresh destination with max-bandwidth unlimited while one vCPU keeps dirtying 40 MB/s, as in the
 * QEMU figures of {@code shared/reference/migration-stream.md}.
 *
 * <p>Reports time per migration and prints each migration's bytes on the wire, GB/s and downtime.
 * Run with {@code -prof gc}: {@code gc.alloc.rate.norm} is the heap allocated per migration,
 * which must not grow with the guest's RAM. The fork's heap is capped at 512 MiB, well below the
 * RAM being migrated, to show the engine needs none of it.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 1)
@Measurement(iterations = 3)
@Fork(value = 1, jvmArgsAppend = {"-Xmx512m", "-XX:MaxDirectMemorySize=256m"})
public class MigrationBenchmark {
    @Param({"4096"})
    public long ramMiB;

    @Param({"tcp", "unix"})
    public String transport;

    @Param({"40000000"})
    public long dirtyRate;

    /** Destination RAM allocated up front (QEMU's prealloc=on) or faulted in as pages arrive. */
    @Param({"false", "true"})
    public boolean prealloc;

    private NettyMigrationTransports transports;
    private Machine source;
    private SoftCpuEngine cpus;
    private SoftWorkload workload;
    private Machine destination;
    private DestinationMigration incoming;
    private String uri;
    private Path dir;

    @Setup(Level.Trial)
    public void startSource() throws Exception {
        transports = new NettyMigrationTransports();
        dir = Files.createTempDirectory("ferry-bench");
        long ram = ramMiB << 20;
        workload = SoftWorkload.of(1, dirtyRate, ram, 1234);
        GuestMemory memory = GuestMemory.ofSize(ram);
        cpus = new SoftCpuEngine(memory, workload);
        source = new Machine("bench-source", memory, cpus, RunState.PRELAUNCH);
        cpus.registerMigration(source.migration());
        cpus.populate(0.5);
        source.vmStart();
    }

    @Setup(Level.Invocation)
    public void freshDestination() throws Exception {
        GuestMemory memory = GuestMemory.builder().region("pc.ram", 0, ramMiB << 20).prealloc(prealloc).build();
        SoftCpuEngine dcpus = new SoftCpuEngine(memory, workload);
        destination = new Machine("bench-destination", memory, dcpus, RunState.PRELAUNCH);
        dcpus.registerMigration(destination.migration());
        incoming = new DestinationMigration(destination, transports, MigrationCapabilities.defaults(),
                MigrationEventSink.NONE, false);
        uri = incoming.listen(transport.equals("tcp") ? "tcp:127.0.0.1:0" : "unix:" + dir.resolve("bench.sock"));
        if (!source.isRunning()) {
            source.vmStart();
        }
    }

    @Benchmark
    public MigrationInfo migrate() throws Exception {
        SourceMigration m = new SourceMigration(source, transports,
                MigrationParameters.defaults().withMaxBandwidth(0), MigrationCapabilities.defaults(),
                MigrationEventSink.NONE);
        m.start(uri);
        if (m.await(Duration.ofMinutes(5)) != MigrationStatus.COMPLETED) {
            throw new IllegalStateException("migration " + m.status().qapiName() + ": " + m.info().errorDesc());
        }
        MigrationInfo info = m.info();
        System.out.printf("%n  [%s %d MiB prealloc=%s] %.3f GB on the wire in %d ms = %.2f GB/s; downtime %d ms; "
                        + "%d normal + %d zero pages; %d passes%n", transport, ramMiB, prealloc,
                info.ram().transferred() / 1e9, info.totalTimeMs(),
                info.ram().transferred() / 1e6 / Math.max(1, info.totalTimeMs()), info.downtimeMs(),
                info.ram().normal(), info.ram().duplicate(), info.ram().dirtySyncCount());
        return info;
    }

    @TearDown(Level.Invocation)
    public void dropDestination() throws Exception {
        incoming.await(Duration.ofMinutes(1));
        destination.close();
        System.gc();
        long live = java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
        System.out.printf("  live heap after the migration and a GC: %.1f MiB (guest RAM %d MiB)%n", live / 1048576.0,
                ramMiB);
    }

    @TearDown(Level.Trial)
    public void stop() throws Exception {
        source.close();
        transports.close();
        Files.deleteIfExists(dir.resolve("bench.sock"));
        Files.deleteIfExists(dir);
    }
}
