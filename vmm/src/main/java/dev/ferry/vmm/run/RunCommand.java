package dev.ferry.vmm.run;

import dev.ferry.vmm.config.ConfigException;
import dev.ferry.vmm.config.VmConfig;
import dev.ferry.vmm.config.VmConfigParser;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * {@code ferry run --config vm.json --qmp PATH [--incoming URI|defer] [-S]}: one VM in this OS
 * process, controlled through QMP on a UNIX socket, until {@code quit} or a signal.
 */
@Command(name = "run", mixinStandardHelpOptions = true, description = "Run one VM, controlled through QMP.")
public final class RunCommand implements Callable<Integer> {
    @Option(names = "--config", required = true, description = "the VM's JSON config")
    Path config;

    @Option(names = "--qmp", required = true, description = "path of the QMP UNIX socket to create (mode 0600)")
    Path qmp;

    @Option(names = "--incoming", paramLabel = "URI|defer",
            description = "wait for an incoming migration on URI (tcp:HOST:PORT, unix:PATH, file:PATH), or for migrate-incoming")
    String incoming;

    @Option(names = {"-S", "--paused"}, description = "do not start the guest (after an incoming migration: stay paused)")
    boolean paused;

    @Option(names = "--no-migration-warm-up",
            description = "skip the warm-up migrations between throwaway VMs before QMP opens (they take ~1 s and"
                    + " spare the first real migration the JIT's work)")
    boolean noWarmUp;

    @Option(names = "--x-verify-at-load", hidden = true,
            description = "digest guest memory when an incoming migration has loaded (for ferry demo; costs downtime)")
    boolean verifyAtLoad;

    @Override
    public Integer call() throws Exception {
        VmConfig cfg;
        try {
            cfg = VmConfigParser.parse(config);
        } catch (ConfigException e) {
            System.err.println("ferry run: " + e.getMessage());
            return 2;
        }
        VmmInstance vm;
        try {
            vm = VmmInstance.start(cfg, qmp, incoming, paused, verifyAtLoad, !noWarmUp);
        } catch (VmmException | dev.ferry.core.memory.GuestMemoryException e) {
            // the guest RAM's own errors (a huge page pool too small) name the region and the fix
            System.err.println("ferry run: " + e.getMessage());
            return 1;
        }
        try (vm) {
            // SIGTERM/SIGINT: the JVM halts when its hooks end, so the hook closes the VM itself
            // (the QMP socket file is removed, every fd and mapping released).
            Runtime.getRuntime().addShutdownHook(new Thread(vm::close, "ferry-signal"));
            System.err.printf("ferry run: %s: %d MiB, %d vCPUs, %s engine, %s; QMP on %s%n", cfg.name(),
                    cfg.memoryBytes() >> 20, cfg.vcpus(), vm.vmm().engineName(),
                    vm.vmm().machine().runState().qapiName(), qmp);
            vm.awaitQuit();
        }
        return 0;
    }
}
