package dev.ferry.vhostuser.frontend;

import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A real qemu-storage-daemon exporting a raw image as a vhost-user-blk back-end on a UNIX socket
 * (file locking off, so a migration's source and destination daemons share the image, as two
 * hosts share a SAN disk). Tests skip with the reason when the daemon is not installed.
 */
final class Qsd implements AutoCloseable {
    static final Path BINARY = onPath("qemu-storage-daemon");
    final Path image;
    final Path socket;
    final Path logFile;
    private Process process;

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
                "qemu-storage-daemon not installed: apt-get install qemu-system-common");
    }

    Qsd(Path image, Path socket) throws IOException, InterruptedException {
        this.image = image;
        this.socket = socket;
        this.logFile = socket.resolveSibling(socket.getFileName() + ".log");
        start();
    }

    /** Starts the daemon (again) and waits until it listens. */
    void start() throws IOException, InterruptedException {
        Files.deleteIfExists(socket);
        process = new ProcessBuilder(List.of(BINARY.toString(),
                "--blockdev", "driver=file,node-name=f0,filename=" + image + ",locking=off",
                "--export", "type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path=" + socket
                        + ",writable=on,num-queues=1"))
                .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile())).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!listening(socket)) {
            if (!process.isAlive() || System.nanoTime() > deadline) {
                throw new IOException("qemu-storage-daemon did not listen on " + socket + ": "
                        + Files.readString(logFile));
            }
            Thread.sleep(10);
        }
    }

    /**
     * Whether a socket bound at {@code path} listens: the file appears at bind(), before listen(),
     * and a connect in between is refused (ECONNREFUSED). /proc/net/unix marks a listening socket
     * with the flag __SO_ACCEPTCON (0x10000).
     */
    static boolean listening(Path path) throws IOException {
        return dev.ferry.core.sys.UnixListeners.listening(path);
    }

    /** Kills the daemon at once (SIGKILL), as a crash would, and waits until it is gone. */
    void kill() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
    }

    /** Stops it answering (SIGSTOP) or lets it go on (SIGCONT). */
    void freeze(boolean on) throws IOException, InterruptedException {
        new ProcessBuilder("kill", on ? "-STOP" : "-CONT", Long.toString(process.pid())).start().waitFor();
    }

    boolean alive() {
        return process.isAlive();
    }

    /** What the daemon printed so far, every start of it (its {@code vu_panic} lines among them). */
    String log() throws IOException {
        return Files.exists(logFile) ? Files.readString(logFile) : "";
    }

    @Override
    public void close() throws IOException {
        try {
            freeze(false);
            kill();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            process.destroyForcibly();
        }
    }
}
