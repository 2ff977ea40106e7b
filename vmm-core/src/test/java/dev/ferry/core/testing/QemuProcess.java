package dev.ferry.core.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A QEMU process a test started, with COM1 written to {@code NAME.serial} and QEMU's own output
 * to {@code NAME.log} in the test's directory: what the interop tests of several modules share
 * (the vhost-user back-end's firmware guest, the VMM's Linux guest). The caller builds the
 * command line, including {@code -serial file:} {@link #serial(Path, String)}. Destroyed at
 * {@link #close} in any case, forcibly when it does not exit.
 */
public final class QemuProcess implements AutoCloseable {
    public static final String BINARY = "qemu-system-x86_64";
    public final Path serial;
    public final Path log;
    private final Process process;

    private QemuProcess(Path serial, Path log, Process process) {
        this.serial = serial;
        this.log = log;
        this.process = process;
    }

    /** Where {@link #start} expects COM1: {@code NAME.serial} in {@code dir}. */
    public static Path serial(Path dir, String name) {
        return dir.resolve(name + ".serial");
    }

    /** Starts {@code cmd}, its output to {@code NAME.log} in {@code dir}. */
    public static QemuProcess start(Path dir, String name, List<String> cmd) throws IOException {
        Path log = dir.resolve(name + ".log");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        return new QemuProcess(serial(dir, name), log, p);
    }

    /** Whether {@code binary --version} runs and exits 0. */
    public static boolean installed(String binary) {
        try {
            Process p = new ProcessBuilder(binary, "--version").redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            return p.waitFor(10, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException | InterruptedException e) {
            return false;
        }
    }

    public String serialText() throws IOException {
        return Files.exists(serial) ? Files.readString(serial, StandardCharsets.ISO_8859_1) : "";
    }

    public String logText() throws IOException {
        return Files.exists(log) ? Files.readString(log, StandardCharsets.ISO_8859_1) : "";
    }

    /**
     * Waits up to {@code seconds} for {@code marker} on COM1; a line with {@code failMarker} (when
     * not null) ends the wait at once. Fails with the serial output and QEMU's own log.
     */
    public void awaitSerial(String marker, String failMarker, int seconds) throws Exception {
        long deadline = System.nanoTime() + seconds * 1_000_000_000L;
        while (true) {
            String text = serialText();
            if (text.contains(marker)) {
                return;
            }
            if (failMarker != null && text.contains(failMarker)) {
                throw new AssertionError("the guest failed before " + marker + "; serial:\n" + text);
            }
            if (!process.isAlive() && !serialText().contains(marker)) {
                throw new AssertionError("QEMU exited (" + process.exitValue() + ") before " + marker + "; serial:\n"
                        + serialText() + "\nQEMU: " + logText());
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("no " + marker + " on COM1 within " + seconds + " s; serial:\n" + text
                        + "\nQEMU: " + logText());
            }
            Thread.sleep(50);
        }
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    /** Waits up to {@code seconds} for QEMU to exit by itself. */
    public boolean awaitExit(int seconds) throws InterruptedException {
        return process.waitFor(seconds, TimeUnit.SECONDS);
    }

    @Override
    public void close() {
        process.destroy();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }
}
