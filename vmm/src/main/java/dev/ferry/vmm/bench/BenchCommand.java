package dev.ferry.vmm.bench;

import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.CommandLineOptions;
import picocli.CommandLine.Command;
import picocli.CommandLine.Unmatched;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code ferry bench [JMH options]}: runs Ferry's JMH benchmarks. With no options it runs the
 * migration throughput benchmark with the gc profiler (heap allocated per migration).
 */
@Command(name = "bench", description = "Run the benchmarks (JMH). Extra arguments go to JMH, e.g. -p ramMiB=1024,4096 -prof gc.")
public final class BenchCommand implements Callable<Integer> {
    @Unmatched
    List<String> jmhArgs = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
        List<String> args = new ArrayList<>(jmhArgs);
        if (args.isEmpty()) {
            args.addAll(List.of(MigrationBenchmark.class.getSimpleName(), "-prof", "gc"));
        }
        new Runner(new CommandLineOptions(args.toArray(new String[0]))).run();
        return 0;
    }
}
