package dev.ferry.vmm.vhostuser;

import dev.ferry.virtio.net.DgramBackend;
import dev.ferry.virtio.net.NetOptions;
import dev.ferry.virtio.net.peer.TrafficPeer;
import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.MultiQueueNet;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import dev.ferry.vmm.guest.Initramfs;
import dev.ferry.vmm.guest.LinuxKernel;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.CleanupMode;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What the Linux guest tests share: a real Linux kernel's virtio drivers against Ferry's
 * vhost-user back-end, QEMU 7.2 (TCG) as the front-end — {@code vhost-user-blk-pci} and
 * {@code virtio-net-pci} on a {@code vhost-user} netdev, each on a socket served by
 * {@link VhostUserBackend} in the test's process. The guest is a distribution kernel (see
 * {@link LinuxKernel}) with an initramfs holding its virtio modules and one static init
 * ({@code linux-virtio-init.c}) that loads them, does the I/O and prints what it saw on COM1; each
 * test checks the other side — the image, the traffic peer — itself. The disk's tests are
 * {@link LinuxVirtioBlkTest}, one queue pair's {@link LinuxVirtioNetTest}, two pairs'
 * {@link LinuxVirtioNetMqTest}.
 *
 * <p>The NIC runs without MSI-X ({@code vectors=0}, INTx): QEMU 7.2 under TCG crashes (SIGSEGV in
 * {@code msix_set_vector_notifiers}, from {@code vhost_net_start}) when a Linux driver starts a
 * vhost-user virtio-net-pci with MSI-X, whatever the back-end — DPDK testpmd's too.
 */
abstract class LinuxGuestTest {
    static final String MAC = "52:54:00:12:34:56";

    // Feature bits as the guest's sysfs lists them (virtio spec).
    static final int BLK_F_FLUSH = 9;
    static final int BLK_F_DISCARD = 13;
    static final int BLK_F_WRITE_ZEROES = 14;
    static final int NET_F_MAC = 5;
    static final int NET_F_MRG_RXBUF = 15;
    static final int NET_F_CTRL_VQ = 17;
    static final int NET_F_MQ = 22;
    static final int F_INDIRECT_DESC = 28;
    static final int F_EVENT_IDX = 29;
    static final int F_VERSION_1 = 32;

    @TempDir
    static Path build;
    static LinuxKernel kernel;
    static Path initrd;

    /** Kept when a test fails: the serial and QEMU logs are there. */
    @TempDir(cleanup = CleanupMode.ON_SUCCESS)
    Path dir;

    @BeforeAll
    static void guest() throws Exception {
        Assumptions.assumeTrue(LinuxQemu.installed(LinuxQemu.BINARY),
                "qemu-system-x86_64 not installed: apt-get install qemu-system-x86");
        Assumptions.assumeTrue(LinuxQemu.installed("gcc"), "gcc not installed (it builds the guest's init)");
        List<LinuxKernel.Module> modules;
        try {
            kernel = LinuxKernel.find(Path.of(System.getProperty("java.io.tmpdir"), "ferry-qemu-guest"), null, true);
            modules = kernel.modules("virtio_pci", "virtio_blk", "virtio_net");
        } catch (IOException e) {
            Assumptions.abort("no Linux kernel with virtio modules could be found or fetched: " + e.getMessage());
            return;
        }
        Initramfs fs = new Initramfs().dir("dev").dir("proc").dir("sys").dir("modules");
        StringBuilder order = new StringBuilder();
        for (LinuxKernel.Module m : modules) {
            fs.file("modules/" + m.name() + ".ko", 0644, Files.readAllBytes(m.file()));
            order.append(m.name()).append(".ko\n");
        }
        fs.file("modules/order", 0644, order.toString().getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        initrd = fs.init(LinuxGuestTest.class, "linux-virtio-init.c", build).write(build.resolve("initrd.cpio"));
        System.out.printf("Linux guest: kernel %s, modules %s%n", kernel.image(), order.toString().replace('\n', ' '));
    }

    LinuxQemu qemu(String name, String append, String... devices) throws IOException {
        return new LinuxQemu(dir, name, kernel.image(), initrd, append, List.of(devices));
    }

    /** A QEMU whose guest RAM is the file {@code NAME.ram} in the test's directory. */
    LinuxQemu qemuOnRamFile(String name, String append, String[] devices, String... extra) throws IOException {
        List<String> all = new ArrayList<>(List.of(devices));
        all.addAll(List.of(extra));
        Path ram = dir.resolve(name + ".ram");
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(ram.toFile(), "rw")) {
            f.setLength((long) LinuxQemu.RAM_MIB << 20); // QEMU unlinks a RAM file it created itself
        }
        return new LinuxQemu(dir, name, kernel.image(), initrd, append, all, ram);
    }

    /** {@code k=v} pairs of a FERRY line. */
    static Map<String, String> fields(String line) {
        Map<String, String> m = new HashMap<>();
        for (String w : line.split("\\s+")) {
            int eq = w.indexOf('=');
            if (eq > 0) {
                m.put(w.substring(0, eq), w.substring(eq + 1));
            }
        }
        return m;
    }

    static boolean acked(String features, int bit) {
        return features.length() > bit && features.charAt(bit) == '1';
    }

    /** A net back-end on {@code sock} with its own UDP port to the peer (written to {@code port[0]}). */
    static VhostUserBackend netBackEnd(TrafficPeer peer, Path sock, int[] port) {
        DgramBackend net = new DgramBackend(new InetSocketAddress("127.0.0.1", 0),
                new InetSocketAddress("127.0.0.1", peer.port()));
        port[0] = net.localPort();
        return VhostUserBackend.serveNet(new NetOptions(NetOptions.parseMac(MAC), 256, false), net,
                BackendOptions.server(sock));
    }

    /**
     * The NIC's QEMU options: one queue pair on a vhost-user netdev, no option ROM, and no MSI-X
     * ({@code vectors=0}): see the class comment.
     */
    static String[] nic(Path sock) {
        return new String[] {"-chardev", "socket,id=c0,path=" + sock, "-netdev", "vhost-user,id=n0,chardev=c0",
            "-device", "virtio-net-pci,netdev=n0,mac=" + MAC + ",romfile=,vectors=0"};
    }

    /**
     * The NIC with two queue pairs: {@code queues=2} on the netdev, {@code mq=on} on the device
     * (QEMU serves the control queue), still without MSI-X.
     */
    static String[] nicMq(Path sock) {
        return new String[] {"-chardev", "socket,id=c0,path=" + sock, "-netdev", "vhost-user,id=n0,chardev=c0,queues=2",
            "-device", "virtio-net-pci,netdev=n0,mac=" + MAC + ",romfile=,vectors=0,mq=on"};
    }

    /** A two-pair {@link MultiQueueNet} back-end on {@code sock} (server), its own UDP port to the peer. */
    static VhostUserBackend mqBackEnd(TrafficPeer peer, Path sock) {
        return VhostUserBackend.serveNet(new NetOptions(NetOptions.parseMac(MAC), 256, false),
                new DgramBackend(new InetSocketAddress("127.0.0.1", 0), new InetSocketAddress("127.0.0.1", peer.port())),
                BackendOptions.server(sock), 2);
    }

    /** Waits up to {@code seconds} for {@code done}, failing with {@code what} and the state then. */
    static void await(String what, int seconds, java.util.function.BooleanSupplier done,
                              java.util.function.Supplier<String> state) throws InterruptedException {
        long deadline = System.nanoTime() + seconds * 1_000_000_000L;
        while (!done.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, what + " within " + seconds + " s: " + state.get());
            Thread.sleep(50);
        }
    }

    static int freePort() throws IOException {
        try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    static String tail(LinuxQemu q) {
        try {
            String t = q.serialText();
            return t.substring(Math.max(0, t.length() - 600));
        } catch (IOException e) {
            return e.toString();
        }
    }
}
