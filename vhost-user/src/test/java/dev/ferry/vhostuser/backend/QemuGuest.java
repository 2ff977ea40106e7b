package dev.ferry.vhostuser.backend;

import dev.ferry.core.testing.QemuProcess;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * One QEMU 7.2 process as a vhost-user front-end for the back-end's interop tests: a memfd-backed
 * pc guest (TCG), no default devices, COM1 to a file, a {@code vhost-user-blk-pci} on the
 * back-end's socket as the boot disk, and a QMP socket. Killed at {@link #close}.
 */
final class QemuGuest implements AutoCloseable {
    static final String BINARY = QemuProcess.BINARY;
    final Path qmp;
    private final QemuProcess process;
    private SocketChannel qmpChannel;

    QemuGuest(Path dir, String name, Path vhostSocket, String... extra) throws IOException {
        this(dir, name, vhostSocket, "", List.of(extra));
    }

    /** A guest whose vhost-user chardev reconnects (every second) after the back-end goes away. */
    static QemuGuest reconnecting(Path dir, String name, Path vhostSocket) throws IOException {
        return new QemuGuest(dir, name, vhostSocket, ",reconnect=1", List.of());
    }

    private QemuGuest(Path dir, String name, Path vhostSocket, String chardevOptions, List<String> extra)
            throws IOException {
        this.qmp = dir.resolve(name + ".qmp");
        List<String> cmd = new ArrayList<>(List.of(BINARY,
                "-machine", "pc,accel=tcg,memory-backend=mem0", "-m", "128M",
                "-object", "memory-backend-memfd,id=mem0,size=128M,share=on",
                "-nodefaults", "-display", "none", "-serial", "file:" + QemuProcess.serial(dir, name),
                "-chardev", "socket,id=c0,path=" + vhostSocket + chardevOptions,
                "-device", "vhost-user-blk-pci,chardev=c0,bootindex=0",
                "-qmp", "unix:" + qmp + ",server=on,wait=off"));
        cmd.addAll(extra);
        this.process = QemuProcess.start(dir, name, cmd);
    }

    static boolean installed() {
        return QemuProcess.installed(BINARY);
    }

    String serialText() throws IOException {
        return process.serialText();
    }

    /** Waits up to {@code seconds} for {@code marker} on COM1; fails naming what came instead. */
    void awaitSerial(String marker, int seconds) throws Exception {
        process.awaitSerial(marker, null, seconds);
    }

    /** Sends one QMP command (negotiating capabilities first) and returns the reply line. */
    String qmp(String json) throws Exception {
        if (qmpChannel == null) {
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (true) {
                try {
                    qmpChannel = SocketChannel.open(StandardProtocolFamily.UNIX);
                    qmpChannel.connect(UnixDomainSocketAddress.of(qmp));
                    break;
                } catch (IOException e) {
                    qmpChannel.close();
                    qmpChannel = null;
                    if (System.nanoTime() > deadline) {
                        throw e;
                    }
                    Thread.sleep(50);
                }
            }
            readLine(); // greeting
            qmp("{\"execute\":\"qmp_capabilities\"}");
        }
        qmpChannel.write(ByteBuffer.wrap((json + "\n").getBytes(StandardCharsets.UTF_8)));
        while (true) {
            String line = readLine();
            if (line.contains("\"return\"") || line.contains("\"error\"")) {
                return line;
            }
        }
    }

    private String readLine() throws IOException {
        StringBuilder sb = new StringBuilder();
        ByteBuffer one = ByteBuffer.allocate(1);
        while (true) {
            one.clear();
            if (qmpChannel.read(one) < 0) {
                throw new IOException("QMP closed; QEMU log may say why");
            }
            char c = (char) one.get(0);
            if (c == '\n') {
                return sb.toString();
            }
            sb.append(c);
        }
    }

    boolean isAlive() {
        return process.isAlive();
    }

    @Override
    public void close() throws IOException {
        try {
            if (qmpChannel != null) {
                qmpChannel.close();
            }
        } finally {
            process.close();
        }
    }
}
