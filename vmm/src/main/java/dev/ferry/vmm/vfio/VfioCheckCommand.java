package dev.ferry.vmm.vfio;

import dev.ferry.vfio.check.CheckReport;
import dev.ferry.vfio.check.CheckTarget;
import dev.ferry.vfio.check.CheckTargets;
import dev.ferry.vfio.check.VfioCheck;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.time.Duration;
import java.util.concurrent.Callable;

/**
 * {@code ferry vfio check --device emulated[:FLAGS] | DEVICE [--json]}: runs {@link VfioCheck} on
 * a device and prints the report — a table, or one JSON object with {@code --json}. Exit 0 when
 * every rule held, 1 when one was violated (or the check had to stop), 2 when {@code --device}
 * names nothing this build can open (the reason on stderr).
 */
@Command(name = "check", mixinStandardHelpOptions = true,
        description = {"Walk a VFIO device through every migration arc its flags allow and check the uAPI's promises"
                + " (readback, data fd sessions, ENOMSG/EOF, PRECOPY_INFO, refused requests, resume validation,"
                + " load into a fresh instance, DMA logging, reset), with every device call under a timeout.",
                "Exit 0: all rules held; 1: a rule was violated or the check stopped; 2: no such device in this build."})
public final class VfioCheckCommand implements Callable<Integer> {
    @Option(names = "--device", required = true, paramLabel = "DEVICE",
            description = "emulated[:FLAGS] (flags as for --vf: stop-copy, p2p, pre-copy, state=SIZE, fault=KIND[:STATE],"
                    + " ...), a /dev/vfio/devices/vfioN cdev, or a PCI address")
    String device;

    @Option(names = "--json", description = "print one JSON object instead of the table")
    boolean json;

    @Option(names = "--repeat", paramLabel = "N", defaultValue = "5",
            description = "how many times each arc is taken and timed (default ${DEFAULT-VALUE})")
    int repeat;

    @Option(names = "--call-timeout", paramLabel = "MS", defaultValue = "10000",
            description = "a device call taking longer is a hang (default ${DEFAULT-VALUE})")
    long callTimeoutMs;

    @Option(names = "--arc-budget", paramLabel = "MS", defaultValue = "100",
            description = "the median latency an arc may have (default ${DEFAULT-VALUE})")
    long arcBudgetMs;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        VfioCheck.Options options;
        CheckTarget target;
        try {
            options = VfioCheck.Options.defaults().withRepeat(repeat)
                    .withCallTimeout(Duration.ofMillis(callTimeoutMs)).withArcBudget(Duration.ofMillis(arcBudgetMs));
            target = CheckTargets.forDevice(device);
        } catch (IllegalArgumentException | UnsupportedOperationException e) {
            err.println("ferry vfio check: " + e.getMessage());
            err.flush();
            return 2;
        }
        CheckReport report = VfioCheck.run(target, options);
        if (json) {
            out.println(CheckReportJson.toJson(report));
        } else {
            CheckReportText.print(report, out);
        }
        out.flush();
        return report.passed() ? 0 : 1;
    }
}
