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
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code ferry bench disk [JMH options]}: runs {@link DiskBenchmark} (virtio-blk through the
 * ring against pread/pwrite on the host, same image, same offsets, same run) and prints IOPS,
 * MB/s and the ring/host ratio for each workload and depth.
 */
@Command(name = "disk", description = "virtio-blk through the ring vs pread/pwrite on the host: 4 KiB random and "
        + "1 MiB sequential reads and writes at depth 32 and 1 (JMH). Extra arguments go to JMH, e.g. -p depth=32.")
public final class DiskBenchCommand implements Callable<Integer> {
    /** Only the long form: {@code -h} stays JMH's help. */
    @Option(names = "--help", usageHelp = true, description = "Show this help message and exit (-h shows JMH's options).")
    boolean help;

    @Unmatched
    List<String> jmhArgs = new ArrayList<>();

    private final PrintStream out = System.out;

    @Override
    public Integer call() throws Exception {
        List<String> args = new ArrayList<>();
        args.add(DiskBenchmark.class.getName().replace(".", "\\.") + "\\.");
        args.addAll(jmhArgs);
        Collection<RunResult> results = BenchCommand.runJmh(args);
        if (!results.isEmpty()) {
            print(results);
        }
        return 0;
    }

    /** workload -> depth -> path -> result */
    private void print(Collection<RunResult> results) {
        Map<String, Map<String, Map<String, RunResult>>> table = new LinkedHashMap<>();
        for (String w : List.of("randomRead4k", "randomWrite4k", "sequentialRead1m", "sequentialWrite1m")) {
            table.put(w, new LinkedHashMap<>());
        }
        for (RunResult r : results) {
            String bench = r.getParams().getBenchmark();
            String workload = bench.substring(bench.lastIndexOf('.') + 1);
            table.computeIfAbsent(workload, k -> new LinkedHashMap<>())
                    .computeIfAbsent(r.getParams().getParam("depth") + dirSuffix(r), k -> new LinkedHashMap<>())
                    .put(r.getParams().getParam("path"), r);
        }
        out.println();
        out.printf("virtio-blk: a guest through the ring vs pread/pwrite on the host (%d MiB image in the page cache;"
                + " device and host on %d I/O threads)%n", DiskBenchmark.IMAGE_MIB, DiskBenchmark.IO_THREADS);
        out.printf("%-18s %-14s %26s %26s %10s %10s%n", "workload", "depth", "ring", "host", "ring/host", "best/best");
        table.forEach((workload, byDepth) -> byDepth.forEach((depth, byPath) -> {
            RunResult ring = byPath.get("ring");
            RunResult host = byPath.get("host");
            boolean mb = workload.endsWith("1m");
            boolean both = ring != null && host != null;
            out.printf("%-18s %-14s %26s %26s %10s %10s%n", workload, depth, format(ring, mb), format(host, mb),
                    both ? String.format("%.2f", ring.getPrimaryResult().getScore() / host.getPrimaryResult().getScore()) : "-",
                    both ? String.format("%.2f", best(ring) / best(host)) : "-");
        }));
        out.println("(4 KiB: IOPS; 1 MiB: MB/s = 10^6 bytes/s; ± is JMH's 99.9% error; best/best: the ratio of each"
                + " side's best measured iteration, less sensitive to other processes slowing one side down)");
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

    /** The image's directory when not the default, so runs with {@code -p imageDir=a,b} stay apart. */
    private static String dirSuffix(RunResult r) {
        String dir = r.getParams().getParam("imageDir");
        return dir == null || dir.equals("java.io.tmpdir") ? "" : " " + dir;
    }

    private static String format(RunResult run, boolean megabytes) {
        if (run == null) {
            return "-";
        }
        Result<?> r = run.getPrimaryResult();
        double scale = megabytes ? (1 << 20) / 1e6 : 1;
        String unit = megabytes ? "MB/s" : "IOPS";
        double err = Double.isNaN(r.getScoreError()) ? 0 : r.getScoreError() * scale;
        return String.format("%,.0f ± %,.0f %s", r.getScore() * scale, err, unit);
    }
}
