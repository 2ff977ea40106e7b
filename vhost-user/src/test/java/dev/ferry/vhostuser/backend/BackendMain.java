package dev.ferry.vhostuser.backend;

import dev.ferry.virtio.blk.BlkOptions;

import java.nio.file.Path;

/** A back-end in a process of its own, for tests that kill it: {@code BackendMain SOCKET IMAGE}. */
public final class BackendMain {
    private BackendMain() {
    }

    public static void main(String[] args) throws Exception {
        VhostUserBackend b = VhostUserBackend.serveBlk(BlkOptions.of(Path.of(args[1])), BackendOptions.server(Path.of(args[0])));
        System.out.println("listening " + b.socket());
        System.out.flush();
        Thread.sleep(Long.MAX_VALUE);
    }

    /** Starts one; returns once it listens. */
    public static Process start(Path dir, String name, Path socket, Path image) throws Exception {
        String cp = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        Path jvm = Path.of(System.getProperty("java.home"), "bin", "java");
        Path log = dir.resolve(name + ".log");
        Process p = new ProcessBuilder(jvm.toString(), "-Xmx128m", "-cp", cp, BackendMain.class.getName(),
                socket.toString(), image.toString()).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (!java.nio.file.Files.readString(log).contains("listening")) {
            if (!p.isAlive() || System.nanoTime() > deadline) {
                p.destroyForcibly();
                throw new AssertionError("back-end process did not start: " + java.nio.file.Files.readString(log));
            }
            Thread.sleep(20);
        }
        return p;
    }
}
