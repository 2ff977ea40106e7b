package dev.ferry.vmm.bench;

import dev.ferry.core.cpu.soft.SoftCpuEngine;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.cpu.guest.GuestParams;
import dev.ferry.core.cpu.kvm.BuiltInGuest;
import dev.ferry.core.cpu.kvm.KvmCpuEngine;
import dev.ferry.core.cpu.kvm.KvmMigration;
import dev.ferry.core.machine.IoBus;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.memory.Gpa;
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

    /**
     * The source's vCPUs: the soft engine's workload, or the built-in guest on a real KVM vCPU
     * (dirtying the same rate over a 64 MiB working set; the rest of RAM is filled half with
     * random pages, as for soft).
     */
    @Param({"soft"})
    public String engine;

    /** Mutual TLS on the stream (QEMU's tls-creds), with credentials made by openssl for the run. */
    @Param({"false"})
    public boolean tls;

    private NettyMigrationTransports transports;
    private Machine source;
    private SoftWorkload workload;
    private Machine destination;
    private DestinationMigration incoming;
    private String uri;
    private Path dir;
    private BenchCertificates.Pair certificates;

    @Setup(Level.Trial)
    public void startSource() throws Exception {
        transports = new NettyMigrationTransports();
        dir = Files.createTempDirectory("ferry-bench");
        certificates = tls ? BenchCertificates.create(dir) : null;
        long ram = ramMiB << 20;
        workload = SoftWorkload.of(1, dirtyRate, ram, 1234);
        source = machine("bench-source", GuestMemory.ofSize(ram));
        if (engine.equals("kvm")) {
            fillHalfRandom(source.memory(), KVM_WORKING_SET_END);
            BuiltInGuest.boot(source, (KvmCpuEngine) source.cpus(), GuestParams.of(1234, KVM_WORKING_SET_PAGES, 16));
        } else {
            ((SoftCpuEngine) source.cpus()).populate(0.5);
        }
        source.vmStart();
    }

    static final long KVM_WORKING_SET_PAGES = (64L << 20) / 4096;
    static final long KVM_WORKING_SET_END = (2L << 20) + (64L << 20);

    /** A machine of this benchmark's engine: soft (registered), or KVM with the guest's ports attached. */
    private Machine machine(String name, GuestMemory memory) {
        if (engine.equals("kvm")) {
            IoBus pio = new IoBus("pio");
            IoBus mmio = new IoBus("mmio");
            KvmCpuEngine k = new KvmCpuEngine(memory, 1, pio, mmio);
            Machine m = new Machine(name, memory, k, RunState.PRELAUNCH, pio, mmio);
            KvmMigration.register(m, k);
            BuiltInGuest.attach(m, k, 16, dirtyRate);
            return m;
        }
        SoftCpuEngine c = new SoftCpuEngine(memory, workload);
        Machine m = new Machine(name, memory, c, RunState.PRELAUNCH);
        c.registerMigration(m.migration());
        return m;
    }

    /** Fills about half the pages from {@code from} on with pseudo-random data (the soft engine's populate(0.5)). */
    private static void fillHalfRandom(GuestMemory memory, long from) {
        long seed = 1234;
        for (long gpa = from; gpa < memory.totalSize(); gpa += 4096) {
            seed = seed * 6364136223846793005L + 1442695040888963407L;
            if ((seed >>> 63) == 0) {
                long host = memory.hostAddress(new Gpa(gpa), 4096);
                long x = seed;
                for (int i = 0; i < 4096; i += 8) {
                    x ^= x << 13;
                    x ^= x >>> 7;
                    x ^= x << 17;
                    dev.ferry.core.sys.NativeMemory.putLong(host + i, x);
                }
            }
        }
    }

    @Setup(Level.Invocation)
    public void freshDestination() throws Exception {
        GuestMemory memory = GuestMemory.builder().region("pc.ram", 0, ramMiB << 20).prealloc(prealloc).build();
        destination = machine("bench-destination", memory);
        incoming = new DestinationMigration(destination, tls ? transports.secured(certificates.destination())
                : transports, MigrationCapabilities.defaults(),
                MigrationEventSink.NONE, false);
        uri = incoming.listen(transport.equals("tcp") ? "tcp:127.0.0.1:0" : "unix:" + dir.resolve("bench.sock"));
        if (!source.isRunning()) {
            source.vmStart();
        }
    }

    @Benchmark
    public MigrationInfo migrate() throws Exception {
        SourceMigration m = new SourceMigration(source, tls ? transports.secured(certificates.source()) : transports,
                MigrationParameters.defaults().withMaxBandwidth(0), MigrationCapabilities.defaults(),
                MigrationEventSink.NONE);
        m.start(uri);
        if (m.await(Duration.ofMinutes(5)) != MigrationStatus.COMPLETED) {
            throw new IllegalStateException("migration " + m.status().qapiName() + ": " + m.info().errorDesc());
        }
        MigrationInfo info = m.info();
        System.out.printf("%n  [%s %s%s %d MiB prealloc=%s] %.3f GB on the wire in %d ms = %.2f GB/s; downtime %d ms; "
                        + "%d normal + %d zero pages; %d passes%n", engine, transport, tls ? "+tls" : "", ramMiB, prealloc,
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
        try (var files = Files.walk(dir)) {
            for (Path p : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
