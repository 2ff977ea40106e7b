package dev.ferry.vmm.bench;

import org.openjdk.jmh.results.BenchmarkResult;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.RunResult;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Unmatched;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code ferry bench vhost-user-blk [JMH options]}: runs {@link VhostUserBlkBenchmark} and prints,
 * per workload, IOPS and MB/s through qemu-storage-daemon over vhost-user (logging off and on) and
 * through Ferry's built-in virtio-blk, with the same-run ratios: vhost-user / built-in, and
 * logged / unlogged (the cost of dirty logging during a migration).
 */
@Command(name = "vhost-user-blk", description = "vhost-user-blk through qemu-storage-daemon (dirty logging off and on)"
        + " and Ferry's back-end library (in-flight region off and on) vs Ferry's built-in virtio-blk on the same image: 4 KiB random and 64 KiB sequential reads and writes at"
        + " depth 32 (JMH). Extra arguments go to JMH.")
public final class VhostUserBlkBenchCommand implements Callable<Integer> {
    /** Only the long form: {@code -h} stays JMH's help. */
    @Option(names = "--help", usageHelp = true, description = "Show this help message and exit (-h shows JMH's options).")
    boolean help;

    @Unmatched
    List<String> jmhArgs = new ArrayList<>();

    private final PrintStream out = System.out;

    @Override
    public Integer call() throws Exception {
        if (!StorageDaemonProcess.installed()) {
            System.err.println("ferry bench vhost-user-blk: " + StorageDaemonProcess.BINARY
                    + " not installed: apt-get install qemu-system-common");
            return 2;
        }
        List<String> args = new ArrayList<>();
        args.add(VhostUserBlkBenchmark.class.getName().replace(".", "\\.") + "\\.");
        args.addAll(jmhArgs);
        Collection<RunResult> results = BenchCommand.runJmh(args);
        if (!results.isEmpty()) {
            print(results);
        }
        return 0;
    }

    private void print(Collection<RunResult> results) {
        Map<String, Map<String, RunResult>> table = new LinkedHashMap<>();
        for (RunResult r : results) {
            String bench = r.getParams().getBenchmark();
            String workload = bench.substring(bench.lastIndexOf('.') + 1) + " depth " + r.getParams().getParam("depth");
            table.computeIfAbsent(workload, k -> new LinkedHashMap<>()).put(r.getParams().getParam("path"), r);
        }
        out.println();
        out.printf(Locale.ROOT, "vhost-user-blk (qemu-storage-daemon; Ferry's back-end library) vs Ferry's virtio-blk,"
                + " %d MiB image in the page cache%n", VhostUserBlkBenchmark.IMAGE_MIB);
        out.printf(Locale.ROOT, "%-27s %24s %24s %24s %24s %24s%n", "workload", "vhost-user (qsd)", "qsd logged",
                "Ferry back-end", "Ferry back-end inflight", "built-in");
        table.forEach((workload, byPath) -> {
            int size = workload.contains("64k") ? VhostUserBlkBenchmark.KiB64 : 4096;
            out.printf(Locale.ROOT, "%-27s %24s %24s %24s %24s %24s%n", workload, format(byPath.get("vhost-user"), size),
                    format(byPath.get("vhost-user-logged"), size), format(byPath.get("ferry-backend"), size),
                    format(byPath.get("ferry-backend-inflight"), size), format(byPath.get("ring"), size));
        });
        out.println();
        out.printf(Locale.ROOT, "%-27s %9s %9s %9s %9s %9s %9s %9s %9s%n", "ratios (mean; best)", "qsd/blt", "best",
                "log/plain", "best", "ferry/qsd", "best", "infl/no", "best");
        table.forEach((workload, byPath) -> {
            RunResult vu = byPath.get("vhost-user");
            RunResult logged = byPath.get("vhost-user-logged");
            RunResult fb = byPath.get("ferry-backend");
            RunResult fbi = byPath.get("ferry-backend-inflight");
            RunResult ring = byPath.get("ring");
            out.printf(Locale.ROOT, "%-27s %9s %9s %9s %9s %9s %9s %9s %9s%n", workload, ratio(vu, ring), bestRatio(vu, ring),
                    ratio(logged, vu), bestRatio(logged, vu), ratio(fb, vu), bestRatio(fb, vu), ratio(fbi, fb),
                    bestRatio(fbi, fb));
        });
        out.println("(IOPS, then MB/s = 10^6 bytes/s; ratios of the mean scores of the same run, and of each side's best"
                + " measured iteration, which other processes on the machine disturb less)");
    }

    private static String ratio(RunResult a, RunResult b) {
        return a == null || b == null ? "-" : String.format(Locale.ROOT, "%.2f",
                a.getPrimaryResult().getScore() / b.getPrimaryResult().getScore());
    }

    private static String bestRatio(RunResult a, RunResult b) {
        return a == null || b == null ? "-" : String.format(Locale.ROOT, "%.2f", best(a) / best(b));
    }

    /** The best measured iteration's score. */
    private static double best(RunResult r) {
        double best = 0;
        for (BenchmarkResult b : r.getBenchmarkResults()) {
            for (IterationResult i : b.getIterationResults()) {
                best = Math.max(best, i.getPrimaryResult().getScore());
            }
        }
        return best;
    }

    private static String format(RunResult run, int size) {
        if (run == null) {
            return "-";
        }
        Result<?> r = run.getPrimaryResult();
        return String.format(Locale.ROOT, "%,.0f IOPS %,.0f MB/s", r.getScore(), r.getScore() * size / 1e6);
    }
}
