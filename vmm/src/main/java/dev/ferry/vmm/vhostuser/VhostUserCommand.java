package dev.ferry.vmm.vhostuser;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code ferry vhost-user ...}: tools for vhost-user back-ends. */
@Command(name = "vhost-user", mixinStandardHelpOptions = true, description = "Tools for vhost-user back-ends.",
        subcommands = {VhostUserServeCommand.class, VhostUserCheckCommand.class, CommandLine.HelpCommand.class})
public final class VhostUserCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }
}
