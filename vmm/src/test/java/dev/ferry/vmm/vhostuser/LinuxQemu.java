package dev.ferry.vmm.vhostuser;

import dev.ferry.core.testing.QemuProcess;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * One QEMU process running a Linux guest under TCG for the vhost-user interop tests: a memfd
 * guest RAM shared with vhost-user back-ends, no default devices, the kernel and initramfs given
 * directly, COM1 (the kernel's console and the init's output) to a file, a QMP socket, and the
 * caller's devices. Powers off by itself when the init is done ({@code -no-reboot}); killed at
 * {@link #close} in any case.
 */
final class LinuxQemu implements AutoCloseable {
    static final String BINARY = QemuProcess.BINARY;
    static final int RAM_MIB = 256;
    private final Path qmp;
    private final QemuProcess process;
    private dev.ferry.vmm.qmp.QmpClient qmpClient;

    LinuxQemu(Path dir, String name, Path kernel, Path initrd, String append, List<String> devices) throws IOException {
        this(dir, name, kernel, initrd, append, devices, null);
    }

    LinuxQemu(Path dir, String name, Path kernel, Path initrd, String append, List<String> devices, Path ramFile)
            throws IOException {
        this(dir, name, kernel, initrd, append, devices, ramFile, 1);
    }

    /**
     * With {@code ramFile} not null, guest RAM is that file (shared, so the back-ends map it too),
     * which the test can read: a migration's source and destination RAM compared page by page.
     * The guest has {@code cpus} vCPUs (Linux's virtio_net uses one queue pair per online CPU).
     */
    LinuxQemu(Path dir, String name, Path kernel, Path initrd, String append, List<String> devices, Path ramFile,
              int cpus) throws IOException {
        this.qmp = dir.resolve(name + ".qmp");
        List<String> cmd = new ArrayList<>(List.of(BINARY,
                "-machine", "pc,accel=tcg,memory-backend=mem0", "-m", RAM_MIB + "M", "-smp", Integer.toString(cpus),
                "-object", ramFile == null ? "memory-backend-memfd,id=mem0,size=" + RAM_MIB + "M,share=on"
                        : "memory-backend-file,id=mem0,size=" + RAM_MIB + "M,share=on,mem-path=" + ramFile,
                "-nodefaults", "-display", "none", "-no-reboot", "-serial", "file:" + QemuProcess.serial(dir, name),
                "-kernel", kernel.toString(), "-initrd", initrd.toString(),
                "-append", "console=ttyS0 panic=-1 loglevel=4 " + append,
                "-qmp", "unix:" + qmp + ",server=on,wait=off"));
        cmd.addAll(devices);
        this.process = QemuProcess.start(dir, name, cmd);
    }

    static boolean installed(String binary) {
        return QemuProcess.installed(binary);
    }

    String serialText() throws IOException {
        return process.serialText();
    }

    String logText() throws IOException {
        return process.logText();
    }

    /**
     * Waits up to {@code seconds} for {@code marker} on COM1 (a FERRY-FAIL line ends the wait);
     * fails with the serial output and QEMU's own log.
     */
    void awaitSerial(String marker, int seconds) throws Exception {
        process.awaitSerial(marker, "FERRY-FAIL", seconds);
    }

    /** The first serial line that starts with {@code prefix} (without it), or fails naming the output. */
    String line(String prefix) throws IOException {
        String text = serialText();
        return text.lines().filter(l -> l.startsWith(prefix)).map(l -> l.substring(prefix.length()).trim())
                .findFirst().orElseThrow(() -> new AssertionError("no '" + prefix + "' line on COM1:\n" + text));
    }

    /**
     * One QMP command through Ferry's own QMP client (connected and negotiated at the first
     * command, retrying while QEMU creates its socket); returns the command's {@code return}
     * value, or throws the {@link dev.ferry.vmm.qmp.QmpError} QEMU answered with.
     */
    com.fasterxml.jackson.databind.JsonNode qmp(String command, com.fasterxml.jackson.databind.node.ObjectNode args)
            throws Exception {
        if (qmpClient == null) {
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (true) {
                try {
                    qmpClient = dev.ferry.vmm.qmp.QmpClient.connect(qmp, java.time.Duration.ofSeconds(10));
                    break;
                } catch (IOException e) {
                    if (System.nanoTime() > deadline || !process.isAlive()) {
                        throw new IOException(e.getMessage() + "; QEMU: " + logText(), e);
                    }
                    Thread.sleep(50);
                }
            }
            qmpClient.negotiate();
        }
        return args == null ? qmpClient.execute(command) : qmpClient.execute(command, args);
    }

    boolean isAlive() {
        return process.isAlive();
    }

    /** Waits up to {@code seconds} for QEMU to exit by itself (the guest powered off). */
    boolean awaitExit(int seconds) throws InterruptedException {
        return process.awaitExit(seconds);
    }

    @Override
    public void close() throws IOException {
        try {
            if (qmpClient != null) {
                qmpClient.close();
            }
        } finally {
            process.close();
        }
    }
}
