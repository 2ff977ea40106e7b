package dev.ferry.vmm.bench;

import dev.ferry.core.machine.RunState;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.DeviceStats;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationInfo;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.transport.NettyMigrationTransports;
import dev.ferry.virtio.guest.DiskVerifier;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.function.ToDoubleFunction;

/**
 * {@code ferry bench disk-downtime}: the disk's share of a live migration's downtime. Each run
 * builds a soft VM ({@link SoftDiskVm}) whose guest driver keeps {@code --depth} virtio-blk
 * requests in flight beside a vCPU dirtying 20 MiB/s, on a fresh zeroed image, lets it do I/O,
 * and migrates it through the real engine over a loopback socket to a fresh destination on the
 * same image; then checks that the image holds every acknowledged write, runs the destination's
 * guest on and checks again.
 *
 * <p>Per run it splits query-migrate's downtime into: the vCPUs' pause; the disk's drain (the
 * device completing what is in flight and flushing the image, timed around its
 * VM-change-state handler) with how many requests it completed ({@code drained-at-stop}); the
 * disk section's and RAM's bytes and time inside the downtime and the other sections' time (the
 * engine's per-entry figures, {@link DeviceStats}); and the rest (sending the stream's end, the
 * destination loading it and acknowledging). Then min/median/max over the measured runs. Not a
 * JMH benchmark: one migration is one sample and the table is the result.
 */
@Command(name = "disk-downtime", mixinStandardHelpOptions = true,
        description = "The virtio-blk disk's share of live-migration downtime with requests in flight "
                + "(soft VM, real engine, loopback), over several runs.")
public final class DiskDowntimeCommand implements Callable<Integer> {
    @Option(names = "--runs", defaultValue = "10", description = "measured migrations (default ${DEFAULT-VALUE})")
    int runs;

    @Option(names = "--warmup", defaultValue = "2", description = "migrations before those, not reported (default ${DEFAULT-VALUE})")
    int warmup;

    @Option(names = "--depth", defaultValue = "32", description = "requests the guest keeps in flight (default ${DEFAULT-VALUE})")
    int depth;

    @Option(names = "--transport", defaultValue = "tcp", description = "tcp or unix (default ${DEFAULT-VALUE})")
    String transport;

    @Option(names = "--downtime-limit", defaultValue = "300", description = "ms (default ${DEFAULT-VALUE})")
    long downtimeLimit;

    @Option(names = "--image-size", defaultValue = "64", description = "MiB of image, all used by the guest (default ${DEFAULT-VALUE})")
    int imageMiB;

    @Option(names = "--image-dir", description = "where the image lives (default: the temp dir, java.io.tmpdir;"
            + " /dev/shm shows the downtime without a real fdatasync)")
    Path imageDir;

    private final PrintStream out = System.out;

    /** One migration's figures; times in ms. */
    record Sample(long downtime, long total, double vcpuPause, double drain, long drainedAtStop, long diskBytes,
                  double disk, long ramBytes, double ram, double otherSections, int guestInFlight, String verdict) {
        double rest() {
            return downtime - vcpuPause - drain - disk - ram - otherSections;
        }

        double diskShare() {
            return 100 * (drain + disk) / Math.max(1, downtime);
        }
    }

    @Override
    public Integer call() throws Exception {
        if (!transport.equals("tcp") && !transport.equals("unix")) {
            throw new IllegalArgumentException("--transport must be tcp or unix, got " + transport);
        }
        if (imageMiB < 1 || imageMiB * 256L > dev.ferry.virtio.guest.BlkDriverArea.MAX_BLOCKS) {
            throw new IllegalArgumentException("--image-size must be 1.."
                    + dev.ferry.virtio.guest.BlkDriverArea.MAX_BLOCKS / 256 + " MiB (the guest driver's record)");
        }
        Path dir = imageDir != null ? imageDir : Path.of(System.getProperty("java.io.tmpdir"));
        Path sockets = Files.createTempDirectory("ferry-bench-disk-downtime");
        List<Sample> samples = new ArrayList<>();
        out.printf("virtio-blk downtime: soft VM (64 MiB RAM, 1 vCPU dirtying 20 MiB/s), guest disk driver keeping %d"
                        + " requests in flight (4 KiB: 55%% writes, 42%% reads, 3%% flushes), a fresh %d MiB image in %s"
                        + " per run, %s loopback, downtime-limit %d ms, %d warm-up + %d measured migrations%n%n", depth,
                imageMiB, dir, transport, downtimeLimit, warmup, runs);
        out.printf("%4s %8s %6s | %6s %7s %7s | %8s %6s | %9s %6s | %6s %6s | %6s %6s  %s%n", "run", "downtime", "total",
                "vCPU", "disk", "drained", "disk", "disk", "RAM", "RAM", "other", "rest", "guest", "disk", "image");
        out.printf("%4s %8s %6s | %6s %7s %7s | %8s %6s | %9s %6s | %6s %6s | %6s %6s%n", "", "ms", "ms", "pause",
                "drain", "at stop", "section", "sect.", "in dt", "in dt", "sect.", "ms", "in", "share");
        out.printf("%4s %8s %6s | %6s %7s %7s | %8s %6s | %9s %6s | %6s %6s | %6s %6s%n", "", "", "", "ms", "ms", "", "bytes",
                "ms", "bytes", "ms", "ms", "", "flight", "%");
        try (NettyMigrationTransports transports = new NettyMigrationTransports()) {
            for (int i = 0; i < warmup + runs; i++) {
                Path image = RawImageFile.create(dir, "ferry-bench-disk-downtime", imageMiB * SoftDiskVm.MiB, false, 0);
                Sample s;
                try {
                    s = migrateOnce(transports, image, sockets, i);
                } finally {
                    Files.deleteIfExists(image);
                }
                boolean measured = i >= warmup;
                out.printf("%4s %8d %6d | %6.2f %7.2f %7d | %8d %6.2f | %9d %6.2f | %6.2f %6.1f | %6d %6.1f  %s%n",
                        measured ? String.valueOf(i - warmup + 1) : "w" + (i + 1), s.downtime(), s.total(),
                        s.vcpuPause(), s.drain(), s.drainedAtStop(), s.diskBytes(), s.disk(), s.ramBytes(), s.ram(),
                        s.otherSections(), s.rest(), s.guestInFlight(), s.diskShare(), s.verdict());
                if (measured) {
                    samples.add(s);
                }
            }
        } finally {
            Files.deleteIfExists(sockets.resolve("disk.sock"));
            Files.deleteIfExists(sockets);
        }
        out.println();
        out.printf("over %d runs:                      min     median        max%n", samples.size());
        row(samples, "downtime (ms)", Sample::downtime, "%10.0f");
        row(samples, "vCPU pause (ms)", Sample::vcpuPause, "%10.2f");
        row(samples, "disk drain at stop (ms)", Sample::drain, "%10.2f");
        row(samples, "requests drained at stop", Sample::drainedAtStop, "%10.0f");
        row(samples, "disk section (bytes)", Sample::diskBytes, "%10.0f");
        row(samples, "disk section (ms)", Sample::disk, "%10.3f");
        row(samples, "RAM in downtime (bytes)", Sample::ramBytes, "%10.0f");
        row(samples, "RAM in downtime (ms)", Sample::ram, "%10.2f");
        row(samples, "other sections (ms)", Sample::otherSections, "%10.2f");
        row(samples, "rest: end, load, ack (ms)", Sample::rest, "%10.1f");
        row(samples, "guest's requests in flight", Sample::guestInFlight, "%10.0f");
        row(samples, "disk share: drain+section (%)", Sample::diskShare, "%10.1f");
        return samples.stream().allMatch(s -> s.verdict().startsWith("ok")) ? 0 : 1;
    }

    private Sample migrateOnce(NettyMigrationTransports transports, Path image, Path sockets, int i) throws Exception {
        long blocks = imageMiB * SoftDiskVm.MiB / 4096;
        try (SoftDiskVm src = new SoftDiskVm("bench-src-" + i, image, false, depth, blocks)) {
            src.machine.vmStart();
            src.runFor(2000); // the driver booted and I/O is in full flow
            try (SoftDiskVm dst = new SoftDiskVm("bench-dst-" + i, image, true, depth, blocks)) {
                DestinationMigration incoming = new DestinationMigration(dst.machine, transports,
                        MigrationCapabilities.defaults(), MigrationEventSink.NONE, false);
                Files.deleteIfExists(sockets.resolve("disk.sock"));
                String uri = incoming.listen(transport.equals("tcp") ? "tcp:127.0.0.1:0"
                        : "unix:" + sockets.resolve("disk.sock"));
                SourceMigration m = new SourceMigration(src.machine, transports,
                        MigrationParameters.defaults().withMaxBandwidth(0).withDowntimeLimitMs(downtimeLimit),
                        MigrationCapabilities.defaults(), MigrationEventSink.NONE);
                m.start(uri);
                MigrationStatus st = m.await(Duration.ofMinutes(2));
                if (st != MigrationStatus.COMPLETED) {
                    throw new IllegalStateException("migration " + (i + 1) + " ended " + st.qapiName() + ": "
                            + m.info().errorDesc());
                }
                MigrationStatus in = incoming.await(Duration.ofMinutes(1));
                if (in != MigrationStatus.COMPLETED) {
                    throw new IllegalStateException("incoming migration " + (i + 1) + " ended " + in.qapiName() + ": "
                            + incoming.errorDesc());
                }
                MigrationInfo info = m.info();
                String diskId = src.disk.transport().idstr();
                DeviceStats disk = entry(info, diskId);
                DeviceStats ram = entry(info, "ram");
                long otherNanos = info.devices().stream().filter(d -> d != disk && d != ram)
                        .mapToLong(DeviceStats::downtimeNanos).sum();
                Map<String, Object> blk = src.blk();
                int guestInFlight = src.progress().inFlight();
                String verdict = check(dst, image);
                return new Sample(info.downtimeMs(), info.totalTimeMs(), src.lastVcpuPauseNanos() / 1e6,
                        src.lastDrainNanos() / 1e6, ((Number) blk.get("drained-at-stop")).longValue(),
                        disk.downtimeBytes(), disk.downtimeNanos() / 1e6, ram.downtimeBytes(), ram.downtimeNanos() / 1e6,
                        otherNanos / 1e6, guestInFlight, verdict);
            }
        }
    }

    /** The image after switchover, then after the destination's guest did more I/O on it. */
    private static String check(SoftDiskVm dst, Path image) throws Exception {
        DiskVerifier.Verdict atSwitchover = dst.verify(image);
        if (!atSwitchover.ok()) {
            return "at switchover " + atSwitchover;
        }
        dst.machine.vmStart();
        dst.runFor(200);
        dst.machine.vmStop(RunState.PAUSED);
        DiskVerifier.Verdict after = dst.verify(image);
        return after.ok() ? "ok, I/O went on" : "after resuming " + after;
    }

    private static DeviceStats entry(MigrationInfo info, String idstr) {
        return info.devices().stream().filter(d -> d.idstr().equals(idstr)).findFirst()
                .orElseThrow(() -> new IllegalStateException("no per-entry figures for " + idstr + " in " + info.devices()));
    }

    private void row(List<Sample> samples, String name, ToDoubleFunction<Sample> f, String fmt) {
        double[] v = samples.stream().mapToDouble(f).sorted().toArray();
        if (v.length == 0) {
            return;
        }
        double median = v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
        out.printf("%-30s" + fmt + " " + fmt + " " + fmt + "%n", name, v[0], median, v[v.length - 1]);
    }
}
