package dev.ferry.vmm;

import dev.ferry.vmm.bench.BenchCommand;
import dev.ferry.vmm.demo.DemoCommand;
import dev.ferry.vmm.migrate.MigrateCommand;
import dev.ferry.vmm.run.RunCommand;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code ferry} command line: the entry point of the shaded jar that {@code ./ferry} runs. */
@Command(name = "ferry", mixinStandardHelpOptions = true, version = "ferry 0.1.0",
        description = "A Java VMM core and live-migration framework for guests with passthrough devices.",
        subcommands = {RunCommand.class, MigrateCommand.class, DemoCommand.class, dev.ferry.vmm.demo.FaultsCommand.class,
                dev.ferry.vmm.demo.SoakCommand.class, dev.ferry.vmm.analyze.AnalyzeCommand.class,
                BenchCommand.class, dev.ferry.vmm.vfio.VfioCommand.class,
                dev.ferry.vmm.vhostuser.VhostUserCommand.class, dev.ferry.vmm.run.CdsTrainCommand.class,
                CommandLine.HelpCommand.class})
public final class Ferry implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(new CommandLine(new Ferry()).setCaseInsensitiveEnumValuesAllowed(true).execute(args));
    }
}
