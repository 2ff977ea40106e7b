package dev.ferry.vmm.vhostuser;

import dev.ferry.virtio.blk.BlkOptions;
import dev.ferry.virtio.net.DgramBackend;
import dev.ferry.virtio.net.NetBackend;
import dev.ferry.virtio.net.NetOptions;
import dev.ferry.virtio.net.TapBackend;
import dev.ferry.vhostuser.backend.BackendFaults;
import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/**
 * {@code ferry vhost-user serve --blk IMAGE | --net NETDEV --socket PATH}: serves a virtio-blk
 * device on a raw image (or virtio-net on a UDP socket or TAP interface) to vhost-user front-ends
 * (QEMU's {@code vhost-user-blk-pci}, Ferry's {@code vhost-user-blk} kind) until SIGTERM or SIGINT, which close the back-end (the socket file is removed). Prints
 * one line once it listens (or, with {@code --client}, once it starts connecting). Exit 2 for a
 * bad option or an image that cannot be opened.
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serve a virtio device from this process over vhost-user (server or client socket mode),"
                + " with dirty logging, inflight tracking, vring base and device-state support for migration.",
                "Runs until SIGTERM/SIGINT."})
public final class VhostUserServeCommand implements Callable<Integer> {
    @Option(names = "--blk", paramLabel = "IMAGE", description = "a raw disk image to serve as virtio-blk")
    Path image;

    @Option(names = "--net", paramLabel = "NETDEV",
            description = "serve virtio-net with frames to and from dgram:HOST:PORT (UDP, from --local) or tap:NAME")
    String netdev;

    @Option(names = "--local", paramLabel = "HOST:PORT", defaultValue = "127.0.0.1:0",
            description = "the local address of a dgram network (default ${DEFAULT-VALUE})")
    String local;

    @Option(names = "--mac", paramLabel = "MAC", defaultValue = "52:54:00:12:34:56",
            description = "the virtio-net MAC (default ${DEFAULT-VALUE})")
    String mac;

    @Option(names = "--read-only", description = "refuse writes (the device offers VIRTIO_BLK_F_RO)")
    boolean readOnly;

    @Option(names = "--socket", required = true, paramLabel = "PATH", description = "the vhost-user UNIX socket")
    Path socket;

    @Option(names = "--client", description = "connect to a front-end listening at --socket (retrying) instead of listening")
    boolean client;

    @Option(names = "--queues", paramLabel = "N", defaultValue = "1", description = "--blk: request queues, 1..16; --net: rx/tx queue pairs, 1..8 (default ${DEFAULT-VALUE})")
    int queues;

    @Option(names = "--queue-size", paramLabel = "N", defaultValue = "256",
            description = "the largest ring a front-end may set up, a power of two up to 1024 (default ${DEFAULT-VALUE})")
    int queueSize;

    @Option(names = "--no-guest-announce", description = "--net: do not offer GUEST_ANNOUNCE (offered by default, as"
            + " DPDK does: a front-end may then have the guest announce itself after a migration; without it the"
            + " front-end asks this back-end for SEND_RARP)")
    boolean noGuestAnnounce;

    @Option(names = "--fault", paramLabel = "NAME",
            description = "TEST AID for the vendor check: commit a fault — log-omit (data writes left out of the dirty"
                    + " log), wrong-vring-base (GET_VRING_BASE answers a wrong index), write-after-disable (a disabled"
                    + " ring is still served); and kick-only, no fault but a stricter peer (a ring is looked at only"
                    + " when its kick fires, as libvhost-user does). Repeatable. Never use in production.")
    List<String> faults = new ArrayList<>();

    @Spec
    CommandSpec spec;

    /** {@code dgram:HOST:PORT} (from {@code local}) or {@code tap:NAME}. */
    static NetBackend netBackend(String netdev, String local) {
        int c = netdev.indexOf(':');
        String kind = c < 0 ? netdev : netdev.substring(0, c);
        String rest = c < 0 ? "" : netdev.substring(c + 1);
        return switch (kind) {
            case "dgram" -> new DgramBackend(hostPort(local), hostPort(rest));
            case "tap" -> {
                if (rest.isEmpty()) {
                    throw new IllegalArgumentException("tap:NAME needs an interface name");
                }
                yield new TapBackend(rest);
            }
            default -> throw new IllegalArgumentException("--net '" + netdev + "' is not dgram:HOST:PORT or tap:NAME");
        };
    }

    private static InetSocketAddress hostPort(String s) {
        int c = s.lastIndexOf(':');
        if (c <= 0) {
            throw new IllegalArgumentException("'" + s + "' is not HOST:PORT");
        }
        try {
            return new InetSocketAddress(s.substring(0, c), Integer.parseInt(s.substring(c + 1)));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("'" + s + "' is not HOST:PORT: " + e.getMessage(), e);
        }
    }

    @Override
    public Integer call() throws InterruptedException {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        VhostUserBackend backend;
        String what;
        try {
            if ((image == null) == (netdev == null)) {
                throw new IllegalArgumentException("give exactly one of --blk IMAGE and --net NETDEV");
            }
            Set<BackendFaults> f = EnumSet.noneOf(BackendFaults.class);
            for (String name : faults) {
                f.add(BackendFaults.parse(name));
            }
            BackendOptions options = (client ? BackendOptions.client(socket) : BackendOptions.server(socket)).withFaults(f);
            if (image != null) {
                BlkOptions d = BlkOptions.of(image);
                BlkOptions blk = new BlkOptions(image, readOnly, queues, queueSize, d.depth(), d.ioThreads(), d.werror(),
                        d.rerror(), d.serial());
                backend = VhostUserBackend.serveBlk(blk, options);
                what = String.format("vhost-user-blk on %s (%d bytes%s, %d queue(s)%s)", image,
                        ((dev.ferry.virtio.blk.VirtioBlk) backend.model()).capacityBytes(), readOnly ? ", read-only" : "",
                        queues, faults.isEmpty() ? "" : ", FAULTS " + faults);
            } else {
                if (queues > 8) {
                    throw new IllegalArgumentException("--queues " + queues + ": a net back-end serves 1..8 queue pairs");
                }
                NetBackend net = netBackend(netdev, local);
                backend = VhostUserBackend.serveNet(new NetOptions(NetOptions.parseMac(mac), queueSize, !noGuestAnnounce), net, options,
                        queues);
                what = String.format("vhost-user-net %s on %s%s%s", mac, net.describe(),
                        queues > 1 ? ", " + queues + " queue pairs" : "", faults.isEmpty() ? "" : " (FAULTS " + faults + ")");
            }
        } catch (IOException | RuntimeException e) {
            err.println("ferry vhost-user serve: " + e.getMessage());
            err.flush();
            return 2;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        // SIGTERM/SIGINT run the shutdown hooks and then halt the JVM: the hook closes the back-end
        // itself (connection reset, image flushed and closed, socket file removed).
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            backend.close();
            stopped.countDown();
        }, "ferry-signal"));
        out.printf("ferry vhost-user serve: %s, %s %s%n", what, client ? "connecting to" : "listening on", socket);
        out.flush();
        stopped.await();
        return 0;
    }
}
