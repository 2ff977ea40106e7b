package dev.ferry.vhostuser.check;

import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * DPDK testpmd serving a vhost-user-net port on a UNIX socket, without hugepages, looping every
 * frame back with source and destination MAC swapped — the real net peer, for tests. Its stdin
 * stays open (testpmd exits at end of input); close ends it. Skipped with the reason when absent.
 */
final class Testpmd implements AutoCloseable {
    static final String BINARY = "dpdk-testpmd";
    private final Process process;
    private final Path socket;
    private final Path log;
    private final String prefix;

    private Testpmd(Process process, Path socket, Path log, String prefix) {
        this.process = process;
        this.socket = socket;
        this.log = log;
        this.prefix = prefix;
    }

    static void assumeInstalled() {
        boolean found = false;
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            found |= !dir.isEmpty() && Files.isExecutable(Path.of(dir, BINARY));
        }
        Assumptions.assumeTrue(found, BINARY + " not installed: apt-get install dpdk-dev librte-net-vhost23");
    }

    static Testpmd start(Path dir) throws IOException, InterruptedException {
        Path socket = dir.resolve("net.sock");
        Path log = dir.resolve("testpmd.log");
        String prefix = "ferry-check-" + ProcessHandle.current().pid() + "-" + System.nanoTime();
        Process p = new ProcessBuilder(List.of(BINARY, "-l", "0-1", "--no-pci", "--no-huge", "-m", "512",
                "--file-prefix=" + prefix, "--vdev", "net_vhost0,iface=" + socket + ",queues=1,client=0", "--",
                "--port-topology=loop", "--forward-mode=macswap", "--total-num-mbufs=8192", "--disable-link-check"))
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!dev.ferry.core.sys.UnixListeners.listening(socket)) { // the file appears at bind(), before listen()
            if (!p.isAlive() || System.nanoTime() > deadline) {
                p.destroyForcibly().waitFor();
                removeRuntimeDir(prefix);
                throw new IOException(BINARY + " did not start: " + Files.readString(log));
            }
            Thread.sleep(50);
        }
        return new Testpmd(p, socket, log, prefix);
    }

    Path socket() {
        return socket;
    }

    String log() throws IOException {
        return Files.readString(log);
    }

    boolean alive() {
        return process.isAlive();
    }

    @Override
    public void close() throws InterruptedException {
        try (OutputStream in = process.getOutputStream()) {
            in.write('\n');
        } catch (IOException e) {
            // already gone
        }
        if (!process.waitFor(5, TimeUnit.SECONDS)) {
            process.destroy();
            if (!process.waitFor(5, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor();
            }
        }
        removeRuntimeDir(prefix);
    }

    /** The EAL's runtime directory for this run's file prefix (config, sockets), which it leaves behind. */
    private static void removeRuntimeDir(String prefix) {
        Path dir = Path.of("/var/run/dpdk", prefix);
        if (!Files.isDirectory(dir)) {
            return;
        }
        try (var files = Files.walk(dir)) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
        } catch (IOException e) {
            // best effort: a leftover directory only costs a few files
        }
    }
}
