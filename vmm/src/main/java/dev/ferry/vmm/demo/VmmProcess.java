package dev.ferry.vmm.demo;

import dev.ferry.vmm.qmp.QmpClient;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A {@code ferry run} child process: the same JVM and class path as this one, its output in a
 * log file, and a QMP client once its socket is up. Killed on close if it did not quit.
 */
final class VmmProcess implements AutoCloseable {
    private final String name;
    private final Process process;
    private final Path log;
    private final Path qmpSocket;
    private QmpClient qmp;

    private VmmProcess(String name, Process process, Path log, Path qmpSocket) {
        this.name = name;
        this.process = process;
        this.log = log;
        this.qmpSocket = qmpSocket;
    }

    static VmmProcess start(String name, Path dir, List<String> runArgs) throws IOException {
        String java = ProcessHandle.current().info().command().orElse("java");
        List<String> cmd = new ArrayList<>(List.of(java, "-Xmx256m", "-XX:MaxDirectMemorySize=256m",
                "-cp", System.getProperty("java.class.path"), "dev.ferry.vmm.Ferry", "run"));
        cmd.addAll(runArgs);
        Path log = dir.resolve(name + ".log");
        Path sock = dir.resolve(name + ".qmp");
        cmd.addAll(List.of("--qmp", sock.toString()));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        return new VmmProcess(name, p, log, sock);
    }

    /** Connects to the QMP socket once the process created it, and negotiates capabilities. */
    QmpClient qmp() throws IOException, InterruptedException {
        if (qmp != null) {
            return qmp;
        }
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (!Files.exists(qmpSocket)) {
            if (!process.isAlive()) {
                throw new IOException(name + " VMM exited (status " + process.exitValue() + "):\n" + tail());
            }
            if (System.nanoTime() > deadline) {
                throw new IOException(name + " VMM did not open its QMP socket within 60 s:\n" + tail());
            }
            Thread.sleep(20);
        }
        qmp = QmpClient.connect(qmpSocket, Duration.ofSeconds(10));
        qmp.negotiate();
        return qmp;
    }

    String name() {
        return name;
    }

    boolean isAlive() {
        return process.isAlive();
    }

    /** SIGKILL, as a crash would end it. */
    void kill() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor();
    }

    /** The last lines of the process's output, for error messages. */
    String tail() {
        try {
            List<String> lines = Files.readAllLines(log);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 15), lines.size()));
        } catch (IOException e) {
            return "(no output)";
        }
    }

    /** Asks the VMM to quit; kills it if it does not within 10 s. */
    @Override
    public void close() throws InterruptedException {
        if (qmp != null) {
            try {
                if (process.isAlive()) {
                    qmp.execute("quit", null);
                }
            } catch (IOException | RuntimeException e) {
                // it may already be gone
            } finally {
                qmp.close();
            }
        }
        if (!process.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) {
            process.destroyForcibly();
            process.waitFor();
        }
    }
}
