package dev.ferry.vmm.bench;

import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.CommandLineOptions;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Unmatched;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code ferry bench [JMH options]}: runs Ferry's JMH benchmarks. With no options it runs the
 * migration throughput benchmark with the gc profiler (heap allocated per migration).
 * Subcommands run the disk benchmarks: {@code disk} (JMH, with a ring/host table) and
 * {@code disk-downtime} (a migration runner), and {@code vhost-user-blk} (qemu-storage-daemon vs the built-in disk).
 */
@Command(name = "bench", description = "Run the benchmarks (JMH). Extra arguments go to JMH, e.g. -p ramMiB=1024,4096 -prof gc.",
        subcommands = {DiskBenchCommand.class, DiskDowntimeCommand.class, QemuScenarioCommand.class,
                VhostUserBlkBenchCommand.class})
public final class BenchCommand implements Callable<Integer> {
    /** Only the long form: {@code -h} stays JMH's help. */
    @Option(names = "--help", usageHelp = true, description = "Show this help message and exit (-h shows JMH's options).")
    boolean help;

    @Unmatched
    List<String> jmhArgs = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
        List<String> args = new ArrayList<>(jmhArgs);
        if (args.isEmpty()) {
            args.addAll(List.of(MigrationBenchmark.class.getSimpleName(), "-prof", "gc"));
        }
        runJmh(args);
        return 0;
    }

    /**
     * Runs JMH on {@code args} as its own {@code Main} does: {@code -h}, {@code -l}, {@code -lp},
     * {@code -lprof} and {@code -lrf} only print. Returns the results, or none when it only printed.
     */
    static Collection<RunResult> runJmh(List<String> args) throws Exception {
        CommandLineOptions options = new CommandLineOptions(args.toArray(new String[0]));
        Runner runner = new Runner(options);
        if (options.shouldHelp()) {
            options.showHelp();
        } else if (options.shouldList()) {
            runner.list();
        } else if (options.shouldListWithParams()) {
            runner.listWithParams(options);
        } else if (options.shouldListProfilers()) {
            options.listProfilers();
        } else if (options.shouldListResultFormats()) {
            options.listResultFormats();
        } else {
            return runner.run();
        }
        return List.of();
    }
}
