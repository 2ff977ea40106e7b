package dev.ferry.vhostuser.frontend;

import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A real DPDK testpmd as a vhost-user-net back-end (net_vhost PMD, server mode, no hugepages),
 * forwarding every frame back to its sender with the MACs swapped. Its stdin stays open (it exits
 * at EOF). Both its lcores run on CPU 0: the forwarding one polls without rest, and on a 2-core
 * machine two testpmds on separate cores would starve the VMM under test. It starts forwarding
 * once a front-end brought the link up, and without {@code --no-flush-rx} it would first drop
 * what waits on its RX queues (the frames a migrated guest sent on the destination). Tests skip
 * with the reason when testpmd is not installed.
 */
final class Testpmd implements AutoCloseable {
    static final Path BINARY = onPath("dpdk-testpmd");
    final Path socket;
    final Path logFile;
    private final Process process;

    /** {@code name} in a directory of PATH, or a path that does not exist. */
    static Path onPath(String name) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(java.io.File.pathSeparator)) {
            Path p = Path.of(dir.isEmpty() ? "." : dir, name);
            if (Files.isExecutable(p)) {
                return p;
            }
        }
        return Path.of(name);
    }

    static void assumeInstalled() {
        Assumptions.assumeTrue(Files.isExecutable(BINARY),
                "dpdk-testpmd not installed: apt-get install dpdk-dev librte-net-vhost23");
    }

    Testpmd(Path socket, String prefix) throws IOException, InterruptedException {
        this(socket, prefix, 1);
    }

    /** With {@code queues} queue pairs: the vhost PMD's {@code queues=} and testpmd's rx/tx queues (rxq i forwards to txq i). */
    Testpmd(Path socket, String prefix, int queues) throws IOException, InterruptedException {
        this.socket = socket;
        this.logFile = socket.resolveSibling(socket.getFileName() + ".log");
        Files.deleteIfExists(socket);
        process = new ProcessBuilder(List.of(BINARY.toString(), "--lcores", "0@0,1@0", "--no-pci", "--no-huge", "-m", "256",
                "--file-prefix=" + prefix, "--vdev", "net_vhost0,iface=" + socket + ",queues=" + queues + ",client=0", "--",
                "--port-topology=loop", "--forward-mode=macswap", "--total-num-mbufs=2048", "--rxq=" + queues,
                "--txq=" + queues, "--auto-start", "--no-flush-rx"))
                .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile())).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!dev.ferry.core.sys.UnixListeners.listening(socket)) { // the file appears at bind(), before listen()
            if (!process.isAlive() || System.nanoTime() > deadline) {
                String log = Files.readString(logFile);
                process.destroyForcibly();
                throw new IOException("dpdk-testpmd did not listen on " + socket + ": " + log);
            }
            Thread.sleep(20);
        }
    }

    @Override
    public void close() {
        process.destroy();
        try {
            if (!process.waitFor(5, TimeUnit.SECONDS)) {
                process.destroyForcibly();
            }
            process.waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
