package dev.ferry.vhostuser.check;

import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A qemu-storage-daemon serving a raw image as vhost-user-blk on a UNIX socket, for tests: the
 * real peer, started per test and killed at close. A test that needs it is skipped with the reason
 * when the binary is absent.
 */
final class StorageDaemon implements AutoCloseable {
    static final String BINARY = "qemu-storage-daemon";
    private final Process process;
    private final Path socket;
    private final Path image;

    private StorageDaemon(Process process, Path socket, Path image) {
        this.process = process;
        this.socket = socket;
        this.image = image;
    }

    static boolean installed() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, BINARY))) {
                return true;
            }
        }
        return false;
    }

    static void assumeInstalled() {
        Assumptions.assumeTrue(installed(), BINARY + " not installed: apt-get install qemu-system-common");
    }

    /** Starts a daemon on a new {@code sizeMiB} image in {@code dir}; waits until its socket exists. */
    static StorageDaemon start(Path dir, int sizeMiB) throws IOException, InterruptedException {
        Path image = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength((long) sizeMiB << 20);
        }
        Path socket = dir.resolve("vub.sock");
        Process p = new ProcessBuilder(List.of(BINARY, "--blockdev",
                "driver=file,node-name=f0,filename=" + image, "--export",
                "type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path=" + socket
                        + ",writable=on,num-queues=1"))
                .redirectErrorStream(true).redirectOutput(dir.resolve("qsd.log").toFile()).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!dev.ferry.core.sys.UnixListeners.listening(socket)) { // the file appears at bind(), before listen()
            if (!p.isAlive() || System.nanoTime() > deadline) {
                p.destroyForcibly();
                throw new IOException(BINARY + " did not create " + socket + ": " + Files.readString(dir.resolve("qsd.log")));
            }
            Thread.sleep(20);
        }
        return new StorageDaemon(p, socket, image);
    }

    Path socket() {
        return socket;
    }

    Path image() {
        return image;
    }

    /** What the daemon printed so far. */
    String log() throws IOException {
        return Files.readString(socket.resolveSibling("qsd.log"));
    }

    int exitValue() {
        return process.exitValue();
    }

    boolean alive() {
        return process.isAlive();
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(5, TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor();
        }
    }
}
