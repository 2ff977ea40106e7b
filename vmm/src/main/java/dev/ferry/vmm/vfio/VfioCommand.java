package dev.ferry.vmm.vfio;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code ferry vfio ...}: tools for VFIO devices. */
@Command(name = "vfio", mixinStandardHelpOptions = true, description = "Tools for VFIO devices.",
        subcommands = {VfioCheckCommand.class, CommandLine.HelpCommand.class})
public final class VfioCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }
}
