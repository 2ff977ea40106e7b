package dev.ferry.vmm.demo;

import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import dev.ferry.virtio.blk.BlkOptions;
import dev.ferry.virtio.net.DgramBackend;
import dev.ferry.virtio.net.NetOptions;

import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The vhost-user back-ends of {@code ferry demo --vhost-user}: one disk back-end and one NIC
 * back-end per VMM, each on its own UNIX socket. The disk is served by qemu-storage-daemon when it
 * is installed — two daemons on the shared image, as two hosts with shared storage would run them —
 * else by Ferry's back-end library; the NIC by Ferry's back-end on UDP to the demo's traffic peer,
 * since the demo's NIC verdict needs that peer's sequence checks (DPDK testpmd's macswap loop,
 * which `ferry vhost-user check` and the front-end's tests use, only mirrors the guest's frames).
 * Owns the processes and back-ends; {@link #close()} stops them.
 */
final class DemoBackends implements AutoCloseable {
    private final List<Process> daemons = new ArrayList<>();
    private final List<VhostUserBackend> ferry = new ArrayList<>();
    private final Path dir;
    final String diskServer;
    /** The source side's disk back-end (one of these), for {@link #restartSourceDisk}. */
    private Process sourceDaemon;
    private VhostUserBackend sourceDisk;
    private Path sourceImage;
    private Path qsdBinary;

    private DemoBackends(Path dir, String diskServer) {
        this.dir = dir;
        this.diskServer = diskServer;
    }

    /** The disk back-end's socket of {@code side} ("source" or "destination"). */
    Path diskSocket(String side) {
        return dir.resolve("vub-" + side + ".sock");
    }

    Path nicSocket(String side) {
        return dir.resolve("vun-" + side + ".sock");
    }

    /**
     * Starts both sides' back-ends; {@code peerPort} is the traffic peer's UDP port (0: no NIC).
     * The destination's disk back-end serves {@code destinationImage} (the fault matrix's larger
     * image when the destination must refuse the disk), normally the same image.
     */
    static DemoBackends start(Path dir, Path image, Path destinationImage, byte[] mac, int peerPort, PrintStream say)
            throws IOException, InterruptedException {
        Path qsd = onPath("qemu-storage-daemon");
        DemoBackends b = new DemoBackends(dir, image == null ? "none"
                : qsd != null ? "qemu-storage-daemon" : "Ferry's back-end library");
        try {
            for (String side : List.of("source", "destination")) {
                if (image != null) {
                    Path img = side.equals("source") ? image : destinationImage;
                    if (qsd != null) {
                        b.daemons.add(storageDaemon(qsd, img, b.diskSocket(side), dir.resolve("qsd-" + side + ".log")));
                    } else {
                        b.ferry.add(VhostUserBackend.serveBlk(BlkOptions.of(img), BackendOptions.server(b.diskSocket(side))));
                    }
                    if (side.equals("source")) {
                        b.sourceImage = img;
                        b.qsdBinary = qsd;
                        b.sourceDaemon = qsd != null ? b.daemons.get(b.daemons.size() - 1) : null;
                        b.sourceDisk = qsd != null ? null : b.ferry.get(b.ferry.size() - 1);
                    }
                }
                if (peerPort != 0) {
                    DgramBackend udp = new DgramBackend(new InetSocketAddress("127.0.0.1", 0),
                            new InetSocketAddress("127.0.0.1", peerPort));
                    // GUEST_ANNOUNCE offered, as DPDK's vhost library does: the guest announces itself
                    b.ferry.add(VhostUserBackend.serveNet(new NetOptions(mac, 256, true), udp,
                            BackendOptions.server(b.nicSocket(side))));
                }
            }
        } catch (IOException | InterruptedException | RuntimeException e) {
            b.close();
            throw e;
        }
        if (image != null) {
            say.printf("vhost-user:      the disk served by %s on %s and %s%n", b.diskServer,
                    b.diskSocket("source").getFileName(), b.diskSocket("destination").getFileName());
        }
        if (peerPort != 0) {
            say.printf("vhost-user:      the NIC served by Ferry's back-end library on %s and %s, on UDP to the peer%n",
                    b.nicSocket("source").getFileName(), b.nicSocket("destination").getFileName());
        }
        return b;
    }

    /**
     * The source's disk back-end dies (SIGKILL for qemu-storage-daemon, a closed server for
     * Ferry's) and, {@code downMs} later, a new one takes its socket, as a supervisor restarts a
     * crashed daemon: the source's front-end must notice the hang-up and reconnect.
     */
    void restartSourceDisk(long downMs) throws IOException, InterruptedException {
        if (sourceDaemon != null) {
            sourceDaemon.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            daemons.remove(sourceDaemon);
            Thread.sleep(downMs);
            sourceDaemon = storageDaemon(qsdBinary, sourceImage, diskSocket("source"), dir.resolve("qsd-source-2.log"));
            daemons.add(sourceDaemon);
        } else if (sourceDisk != null) {
            sourceDisk.close();
            ferry.remove(sourceDisk);
            Thread.sleep(downMs);
            sourceDisk = VhostUserBackend.serveBlk(BlkOptions.of(sourceImage), BackendOptions.server(diskSocket("source")));
            ferry.add(sourceDisk);
        } else {
            throw new IllegalStateException("no disk back-end to kill (the demo has no --disk)");
        }
    }

    private static Process storageDaemon(Path binary, Path image, Path socket, Path log)
            throws IOException, InterruptedException {
        Files.deleteIfExists(socket);
        // locking=off: the destination's daemon opens the image the source's still has (shared storage).
        Process p = new ProcessBuilder(List.of(binary.toString(),
                "--blockdev", "driver=file,node-name=f0,filename=" + image + ",locking=off",
                "--export", "type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path=" + socket
                        + ",writable=on,num-queues=1"))
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!dev.ferry.core.sys.UnixListeners.listening(socket)) { // the file appears at bind(), before listen()
            if (!p.isAlive() || System.nanoTime() > deadline) {
                p.destroyForcibly();
                throw new IOException("qemu-storage-daemon did not listen on " + socket + ": " + Files.readString(log));
            }
            Thread.sleep(10);
        }
        return p;
    }

    private static Path onPath(String name) {
        String path = System.getenv("PATH");
        for (String d : path == null ? new String[0] : path.split(":")) {
            Path p = Path.of(d, name);
            if (Files.isExecutable(p)) {
                return p;
            }
        }
        return null;
    }

    @Override
    public void close() {
        for (VhostUserBackend b : ferry) {
            b.close();
        }
        for (Process p : daemons) {
            p.destroy();
            try {
                if (!p.waitFor(5, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                }
            } catch (InterruptedException e) {
                p.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }
}
