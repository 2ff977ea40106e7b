package dev.ferry.vmm.demo;

import dev.ferry.core.cpu.soft.ContinuationCheck;
import dev.ferry.core.cpu.soft.SoftCpuEngine;
import dev.ferry.core.cpu.soft.SoftVcpuState;
import dev.ferry.core.cpu.soft.SoftWorkload;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.migration.DeviceStats;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationInfo;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.transport.NettyMigrationTransports;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code ferry demo}: a soft guest that keeps dirtying its memory migrates live from a source VM
 * to a destination VM over a real socket; then the demo proves the destination's RAM equalled the
 * source's at switchover and that the guest went on exactly where it stopped.
 *
 * <p>This first version runs both VMs in this process; the two-process demo driven through QMP
 * comes with the VMM process (issue 3).
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Live-migrate a running soft guest between two VMs and verify the result.")
public final class DemoCommand implements Callable<Integer> {
    @Option(names = "--ram", defaultValue = "1G", description = "guest RAM (default ${DEFAULT-VALUE})")
    String ram;

    @Option(names = "--working-set", defaultValue = "256M", description = "memory the guest keeps dirtying (default ${DEFAULT-VALUE})")
    String workingSet;

    @Option(names = "--dirty-rate", defaultValue = "50M", description = "bytes/s the guest dirties (default ${DEFAULT-VALUE})")
    String dirtyRate;

    @Option(names = "--vcpus", defaultValue = "2", description = "vCPUs (default ${DEFAULT-VALUE})")
    int vcpus;

    @Option(names = "--downtime-limit", defaultValue = "300", description = "ms (default ${DEFAULT-VALUE})")
    long downtimeLimit;

    @Option(names = "--max-bandwidth", defaultValue = "0", description = "bytes/s, 0 = unlimited (default ${DEFAULT-VALUE})")
    String maxBandwidth;

    @Option(names = "--transport", defaultValue = "tcp", description = "tcp or unix (default ${DEFAULT-VALUE})")
    String transport;

    @Option(names = "--auto-converge", description = "throttle vCPUs when dirtying outruns the link")
    boolean autoConverge;

    @Override
    public Integer call() throws Exception {
        long ramBytes = Sizes.parse(ram);
        SoftWorkload w = SoftWorkload.of(vcpus, Sizes.parse(dirtyRate), Sizes.parse(workingSet), 2026);
        MigrationParameters params = MigrationParameters.defaults().withDowntimeLimitMs(downtimeLimit)
                .withMaxBandwidth(Sizes.parse(maxBandwidth));
        MigrationCapabilities caps = MigrationCapabilities.defaults().withAutoConverge(autoConverge);
        Path dir = Files.createTempDirectory("ferry-demo");
        String listenUri = switch (transport) {
            case "tcp" -> "tcp:127.0.0.1:0";
            case "unix" -> "unix:" + dir.resolve("migration.sock");
            default -> throw new IllegalArgumentException("--transport must be tcp or unix, not " + transport);
        };
        try (NettyMigrationTransports transports = new NettyMigrationTransports();
             Machine source = vm("source", ramBytes, w);
             Machine destination = vm("destination", ramBytes, w)) {
            SoftCpuEngine srcCpus = (SoftCpuEngine) source.cpus();
            SoftCpuEngine dstCpus = (SoftCpuEngine) destination.cpus();
            System.out.printf("source: %s RAM, %d vCPUs dirtying %s/s over %s (soft engine)%n", ram, vcpus, dirtyRate,
                    workingSet);
            srcCpus.populate(1.0);
            source.vmStart();
            Thread.sleep(500);

            DestinationMigration in = new DestinationMigration(destination, transports, caps, MigrationEventSink.NONE, true);
            in.digestMemoryAtLoad(true);
            String uri = in.listen(listenUri);
            System.out.println("destination: listening on " + uri);
            SourceMigration out = new SourceMigration(source, transports, params, caps, MigrationEventSink.NONE);
            out.start(uri);
            progress(out, ramBytes);
            MigrationStatus st = out.await(Duration.ofMinutes(30));
            in.await(Duration.ofMinutes(1));
            MigrationInfo info = out.info();
            if (st != MigrationStatus.COMPLETED) {
                System.out.println("migration " + st.qapiName() + ": " + info.errorDesc());
                System.out.println("source VM: " + source.runState().qapiName());
                return 1;
            }
            boolean memoryEqual = source.memory().digest() == in.memoryDigestAtLoad();
            List<SoftVcpuState> saved = srcCpus.snapshot();
            long before = dstCpus.pagesWritten();
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (dstCpus.pagesWritten() < before + 1000 && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            destination.vmStop(RunState.PAUSED);
            ContinuationCheck cont = SoftCpuEngine.verifyContinuation(destination.memory(), w, saved, dstCpus.snapshot());
            report(info, memoryEqual, cont);
            return memoryEqual && cont.ok() ? 0 : 1;
        } finally {
            Files.deleteIfExists(dir.resolve("migration.sock"));
            Files.deleteIfExists(dir);
        }
    }

    private static Machine vm(String name, long ramBytes, SoftWorkload w) {
        GuestMemory memory = GuestMemory.ofSize(ramBytes);
        SoftCpuEngine cpus = new SoftCpuEngine(memory, w);
        Machine m = new Machine(name, memory, cpus, RunState.PRELAUNCH);
        cpus.registerMigration(m.migration());
        return m;
    }

    private static void progress(SourceMigration out, long ramBytes) throws InterruptedException {
        try (ProgressBar bar = new ProgressBarBuilder().setTaskName("migrating").setInitialMax(ramBytes / (1 << 20))
                .setUnit(" MiB", 1).setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(100).continuousUpdate()
                .build()) {
            while (!out.status().isFinal()) {
                MigrationInfo i = out.info();
                bar.maxHint(Math.max(bar.getMax(), (i.ram().transferred() + i.ram().remaining()) >> 20));
                bar.stepTo(i.ram().transferred() >> 20);
                bar.setExtraMessage(String.format("%s pass %d, %.0f Mbit/s, remaining %d MiB, expected downtime %d ms",
                        i.status().qapiName(), i.ram().dirtySyncCount(), i.ram().mbps(), i.ram().remaining() >> 20,
                        i.expectedDowntimeMs()));
                Thread.sleep(100);
            }
            bar.stepTo(out.info().ram().transferred() >> 20);
        }
    }

    private static void report(MigrationInfo i, boolean memoryEqual, ContinuationCheck cont) {
        double seconds = i.totalTimeMs() / 1000.0;
        System.out.println();
        System.out.printf("status:          %s%n", i.status().qapiName());
        System.out.printf("total time:      %d ms (setup %d ms)%n", i.totalTimeMs(), i.setupTimeMs());
        System.out.printf("downtime:        %d ms%n", i.downtimeMs());
        System.out.printf("transferred:     %.1f MiB in %d passes, %.2f GB/s%n", i.ram().transferred() / 1048576.0,
                i.ram().dirtySyncCount(), i.ram().transferred() / 1e9 / Math.max(seconds, 1e-3));
        System.out.printf("pages:           %d normal, %d zero%n", i.ram().normal(), i.ram().duplicate());
        System.out.println("devices:");
        long downtimeNanos = Math.max(1, i.devices().stream().mapToLong(DeviceStats::downtimeNanos).sum());
        for (DeviceStats d : i.devices()) {
            System.out.printf("  %-12s #%d  %10d bytes  downtime %6.2f ms (%4.1f %%)%n", d.idstr(), d.instanceId(),
                    d.transferredBytes(), d.downtimeNanos() / 1e6, 100.0 * d.downtimeNanos() / downtimeNanos);
        }
        System.out.printf("verified:        destination RAM %s the source's at switchover%n",
                memoryEqual ? "equals" : "DIFFERS FROM");
        System.out.printf("                 guest continued on the destination: %s%n", cont.ok()
                ? "yes (" + cont.stepsReplayed() + " writes replayed and checked)" : "NO: " + cont);
    }
}
