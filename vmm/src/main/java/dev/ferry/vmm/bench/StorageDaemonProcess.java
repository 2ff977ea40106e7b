package dev.ferry.vmm.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A qemu-storage-daemon exporting a raw image as vhost-user-blk (one queue, writable, the page
 * cache in between as for Ferry's own disk), started for a benchmark trial and stopped at its end.
 */
final class StorageDaemonProcess implements AutoCloseable {
    static final String BINARY = "qemu-storage-daemon";
    private final Process process;
    private final Path socket;
    private final Path log;

    private StorageDaemonProcess(Process process, Path socket, Path log) {
        this.process = process;
        this.socket = socket;
        this.log = log;
    }

    static boolean installed() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, BINARY))) {
                return true;
            }
        }
        return false;
    }

    /** Serves {@code image} on a socket in a new temporary directory; waits until the socket listens. */
    static StorageDaemonProcess start(Path image) throws IOException, InterruptedException {
        if (!installed()) {
            throw new IOException(BINARY + " not installed: apt-get install qemu-system-common");
        }
        Path dir = Files.createTempDirectory("ferry-qsd");
        Path socket = dir.resolve("vub.sock");
        Path log = dir.resolve("qsd.log");
        Process p = new ProcessBuilder(List.of(BINARY, "--blockdev", "driver=file,node-name=f0,filename=" + image,
                "--export", "type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path=" + socket
                        + ",writable=on,num-queues=1"))
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        // The file appears at bind(), before listen(): a connect in between would be refused.
        while (!dev.ferry.core.sys.UnixListeners.listening(socket)) {
            if (!p.isAlive() || System.nanoTime() > deadline) {
                p.destroyForcibly();
                throw new IOException(BINARY + " did not listen on its socket: " + Files.readString(log));
            }
            Thread.sleep(20);
        }
        return new StorageDaemonProcess(p, socket, log);
    }

    Path socket() {
        return socket;
    }

    @Override
    public void close() throws IOException, InterruptedException {
        process.destroy();
        if (!process.waitFor(5, TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor();
        }
        Files.deleteIfExists(socket);
        Files.deleteIfExists(log);
        Files.deleteIfExists(socket.getParent());
    }
}
