package dev.ferry.vmm.vhostuser;

import dev.ferry.virtio.blk.BlkOptions;
import dev.ferry.virtio.net.DgramBackend;
import dev.ferry.virtio.net.NetOptions;
import dev.ferry.virtio.net.peer.TrafficPeer;
import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import dev.ferry.vmm.guest.Initramfs;
import dev.ferry.vmm.guest.LinuxKernel;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A real Linux kernel's virtio drivers against Ferry's vhost-user back-end, QEMU 7.2 (TCG) as
 * the front-end: {@code vhost-user-blk-pci} and {@code virtio-net-pci} on a {@code vhost-user}
 * netdev, each on a socket served by {@link VhostUserBackend} in this process. The guest is a
 * distribution kernel (see {@link LinuxKernel}) with an initramfs holding its virtio modules and
 * one static init ({@code linux-virtio-init.c}) that loads them, does the I/O and prints what it
 * saw on COM1; the test checks the other side — the image, the traffic peer — itself.
 *
 * <p>The NIC runs without MSI-X ({@code vectors=0}, INTx): QEMU 7.2 under TCG crashes (SIGSEGV in
 * {@code msix_set_vector_notifiers}, from {@code vhost_net_start}) when a Linux driver starts a
 * vhost-user virtio-net-pci with MSI-X, whatever the back-end — DPDK testpmd's too.
 */
class LinuxVirtioGuestTest {
    private static final String MAC = "52:54:00:12:34:56";

    // The disk layout linux-virtio-init.c uses.
    private static final int MIB = 1 << 20;
    private static final int DISK = 16 * MIB;
    private static final int HOST_AT = 4 * MIB;
    private static final int HOST_LEN = 512 * 1024;
    private static final int WRITE_AT = MIB;
    private static final int WRITE_LEN = 256 * 1024;
    private static final int SECTORS_AT = 8 * MIB;
    private static final int SECTOR_STRIDE = 4608;
    private static final int SECTOR_COUNT = 8;
    private static final int DISCARD_AT = 12 * MIB;
    private static final int DISCARD_LEN = MIB;
    private static final int ZERO_AT = 14 * MIB;
    private static final int ZERO_LEN = 64 * 1024;

    // Feature bits as the guest's sysfs lists them (virtio spec).
    private static final int BLK_F_FLUSH = 9;
    private static final int BLK_F_DISCARD = 13;
    private static final int BLK_F_WRITE_ZEROES = 14;
    private static final int NET_F_MAC = 5;
    private static final int NET_F_MRG_RXBUF = 15;
    private static final int F_INDIRECT_DESC = 28;
    private static final int F_EVENT_IDX = 29;
    private static final int F_VERSION_1 = 32;

    @TempDir
    static Path build;
    private static LinuxKernel kernel;
    private static Path initrd;

    @TempDir
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
        initrd = fs.init(LinuxVirtioGuestTest.class, "linux-virtio-init.c", build).write(build.resolve("initrd.cpio"));
        System.out.printf("Linux guest: kernel %s, modules %s%n", kernel.image(), order.toString().replace('\n', ' '));
    }

    private LinuxQemu qemu(String name, String append, String... devices) throws IOException {
        return new LinuxQemu(dir, name, kernel.image(), initrd, append, List.of(devices));
    }

    /** Byte {@code x} of the disk as the guest writes it (pattern G) or as the host prepares it (H). */
    static byte pattern(long x, boolean host) {
        int mul = host ? 0x85ebca6b : 0x9e3779b1;
        return (byte) ((((int) x * mul) >>> 24) ^ (int) (x >>> 9) ^ (host ? 0x3c : 0));
    }

    private static void fillHost(byte[] disk, int at, int len) {
        for (int i = at; i < at + len; i++) {
            disk[i] = pattern(i, true);
        }
    }

    /** The offsets in {@code [at, at+len)} whose byte differs from the pattern (or zero); at most a few. */
    private static List<Integer> differ(byte[] disk, int at, int len, Boolean host) {
        List<Integer> out = new ArrayList<>();
        for (int i = at; i < at + len && out.size() < 8; i++) {
            byte want = host == null ? 0 : pattern(i, host);
            if (disk[i] != want) {
                out.add(i);
            }
        }
        return out;
    }

    private static long fnv1a(byte[] b, int at, int len) {
        long h = 0xcbf29ce484222325L;
        for (int i = at; i < at + len; i++) {
            h = (h ^ (b[i] & 0xff)) * 0x100000001b3L;
        }
        return h;
    }

    /** {@code k=v} pairs of a FERRY line. */
    private static Map<String, String> fields(String line) {
        Map<String, String> m = new HashMap<>();
        for (String w : line.split("\\s+")) {
            int eq = w.indexOf('=');
            if (eq > 0) {
                m.put(w.substring(0, eq), w.substring(eq + 1));
            }
        }
        return m;
    }

    private static boolean acked(String features, int bit) {
        return features.length() > bit && features.charAt(bit) == '1';
    }

    @Test
    void linuxVirtioBlkReadsWritesFlushesAndDiscardsThroughTheBackEnd() throws Exception {
        byte[] disk = new byte[DISK];
        fillHost(disk, HOST_AT, HOST_LEN);
        fillHost(disk, DISCARD_AT, DISCARD_LEN);
        fillHost(disk, ZERO_AT, ZERO_LEN);
        Path image = dir.resolve("disk.img");
        Files.write(image, disk);
        Path sock = dir.resolve("blk.sock");
        try (VhostUserBackend b = VhostUserBackend.serveBlk(BlkOptions.of(image), BackendOptions.server(sock));
             LinuxQemu q = qemu("blk", "ferry.mode=blk", "-chardev", "socket,id=c0,path=" + sock,
                     "-device", "vhost-user-blk-pci,chardev=c0")) {
            q.awaitSerial("FERRY-DONE", 180);
            String features = q.line("FERRY-FEATURES");
            System.out.printf("virtio_blk acked %s (bit 0 first); back-end %s%n", features, b.stats());
            assertTrue(acked(features, F_VERSION_1) && acked(features, BLK_F_FLUSH), "VERSION_1 and FLUSH acked: " + features);

            Map<String, String> read = fields(q.line("FERRY-BLK-READ"));
            assertEquals("0", read.get("mismatches"), "the guest read the host's pattern: " + read);
            assertEquals(String.format("%016x", fnv1a(disk, HOST_AT, HOST_LEN)), read.get("fnv"),
                    "the bytes the guest read hash as the host's");
            assertEquals("0", fields(q.line("FERRY-BLK-WRITE")).get("readback-mismatches"), "the guest read its writes back");
            assertEquals("ok", q.line("FERRY-BLK-FLUSH"));

            byte[] after = Files.readAllBytes(image);
            assertEquals(List.of(), differ(after, WRITE_AT, WRITE_LEN, false), "the guest's 256 KiB write is on the image");
            for (int k = 0; k < SECTOR_COUNT; k++) {
                int at = SECTORS_AT + k * SECTOR_STRIDE;
                assertEquals(List.of(), differ(after, at, 512, false), "the guest's sector at " + at + " is on the image");
                assertEquals(List.of(), differ(after, at + 512, SECTOR_STRIDE - 512, null), "nothing written past it");
            }
            assertEquals(List.of(), differ(after, HOST_AT, HOST_LEN, true), "the region the guest only read is unchanged");
            assertEquals(List.of(), differ(after, 0, WRITE_AT, null), "nothing written before the guest's first write");

            assertTrue(acked(features, BLK_F_DISCARD), "Ferry offers DISCARD and Linux takes it: " + features);
            assertEquals("ok", q.line("FERRY-BLK-DISCARD"));
            assertEquals(List.of(), differ(after, DISCARD_AT, DISCARD_LEN, null), "Ferry zeroes a discarded range");
            Map<String, String> zero = fields(q.line("FERRY-BLK-ZEROOUT"));
            assertEquals("0", zero.get("nonzero"), "the guest reads zeroes after BLKZEROOUT");
            assertTrue(!acked(features, BLK_F_WRITE_ZEROES) || q.line("FERRY-BLK-ZEROOUT").startsWith("write-zeroes"),
                    "with WRITE_ZEROES acked the kernel zeroes through it");
            assertEquals(List.of(), differ(after, ZERO_AT, ZERO_LEN, null), "the zeroed range is zero on the image");
            assertEquals(List.of(), differ(after, ZERO_AT + ZERO_LEN, DISK - ZERO_AT - ZERO_LEN, null),
                    "nothing written after it");
            assertEquals(0, b.stats().refused(), "no request refused: " + b.stats().lastRefusal());
            assertTrue(q.awaitExit(60), "the guest powered off");
        }
    }

    @Test
    void linuxVirtioNetExchangesFramesWithAPeerThroughTheBackEnd() throws Exception {
        int frames = 1000;
        byte[] mac = NetOptions.parseMac(MAC);
        Path sock = dir.resolve("net.sock");
        try (TrafficPeer peer = TrafficPeer.udp(new InetSocketAddress("127.0.0.1", 0));
             VhostUserBackend b = VhostUserBackend.serveNet(new NetOptions(mac, 256, false),
                     new DgramBackend(new InetSocketAddress("127.0.0.1", 0), new InetSocketAddress("127.0.0.1", peer.port())),
                     BackendOptions.server(sock));
             LinuxQemu q = qemu("net", "ferry.mode=net ferry.frames=" + frames + " ferry.window=16",
                     "-chardev", "socket,id=c0,path=" + sock, "-netdev", "vhost-user,id=n0,chardev=c0",
                     "-device", "virtio-net-pci,netdev=n0,mac=" + MAC + ",romfile=,vectors=0")) {
            q.awaitSerial("FERRY-DONE", 180);
            String features = q.line("FERRY-FEATURES");
            System.out.printf("virtio_net acked %s (bit 0 first); peer %s; back-end %s%n", features, peer.report(), b.stats());
            assertTrue(acked(features, F_VERSION_1) && acked(features, NET_F_MAC), "VERSION_1 and MAC acked: " + features);
            assertTrue(acked(features, NET_F_MRG_RXBUF), "Linux takes mergeable RX buffers: " + features);
            assertTrue(acked(features, F_EVENT_IDX) && acked(features, F_INDIRECT_DESC), "EVENT_IDX, INDIRECT_DESC: " + features);
            assertTrue(q.line("FERRY-NET-UP").endsWith(MAC), "the interface has the device's MAC");

            TrafficPeer.FlowStats f = peer.flow(mac);
            assertEquals(frames, f.received(), "the peer got every frame: " + peer.report());
            assertEquals(frames, f.lastSeq(), "up to the last: " + peer.report());
            assertEquals(0, f.lost(), "in order, none missing: " + f.gaps());
            assertEquals(0, f.dupsOrReorders(), "no duplicate or reordered frame");
            Map<String, String> got = fields(q.line("FERRY-NET "));
            assertEquals(Long.toString(f.repliesSent()), got.get("replies"), "the guest got every reply: " + got);
            assertEquals("0", got.get("bad"), "every reply intact (echo, length, payload): " + got);
            assertEquals("0", got.get("reorder"), "replies in order: " + got);
            assertEquals(0, b.stats().refused(), "no request refused: " + b.stats().lastRefusal());
            assertTrue(q.awaitExit(60), "the guest powered off");
        }
    }
}
