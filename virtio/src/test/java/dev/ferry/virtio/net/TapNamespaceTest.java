package dev.ferry.virtio.net;

import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.transport.MmioGuest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static dev.ferry.virtio.transport.MmioGuest.buf;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * virtio-net on a real TAP interface: the test creates a network namespace, opens a TAP (the
 * device's back-end), moves it into the namespace and gives it 10.213.0.1/24 there. The guest —
 * the test driving the device's rings — resolves that address with ARP and pings it; the kernel
 * in the namespace answers both. The echo request goes out with NEEDS_CSUM and an empty ICMP
 * checksum: the reply proves the offload flags reached the kernel through the virtio-net header.
 * Skipped, with the reason, where network namespaces or /dev/net/tun are not available.
 */
@Timeout(60)
class TapNamespaceTest {
    static final byte[] MAC = {0x52, 0x54, 0, 0x0a, 0x0b, 0x0c};
    static final byte[] GUEST_IP = {10, (byte) 213, 0, 2};
    static final byte[] HOST_IP = {10, (byte) 213, 0, 1};
    final String ns = "ferry-net-" + ProcessHandle.current().pid();
    final String tap = "fytap" + ProcessHandle.current().pid() % 100000;
    boolean nsCreated;

    @BeforeEach
    void namespace() throws Exception {
        assumeTrue(Files.exists(Path.of("/dev/net/tun")), "/dev/net/tun is missing: no TAP devices here");
        Run r = run("ip", "netns", "add", ns);
        assumeTrue(r.code == 0, "ip netns add is not permitted here (" + r.output.trim() + "); the TAP test needs "
                + "root with CAP_NET_ADMIN and CAP_SYS_ADMIN");
        nsCreated = true;
    }

    @AfterEach
    void deleteNamespace() throws Exception {
        if (nsCreated) {
            Run r = run("ip", "netns", "del", ns);
            assertEquals(0, r.code, "ip netns del " + ns + ": " + r.output);
        }
    }

    record Run(int code, String output) {
    }

    static Run run(String... cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        if (!p.waitFor(20, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            return new Run(-1, String.join(" ", cmd) + ": timed out");
        }
        return new Run(p.exitValue(), new String(p.getInputStream().readAllBytes()));
    }

    static void must(String... cmd) throws Exception {
        Run r = run(cmd);
        assertEquals(0, r.code, String.join(" ", cmd) + ": " + r.output);
    }

    @Test
    void arpAndPingThroughTheTapInANamespace() throws Exception {
        TapBackend backend;
        try {
            backend = new TapBackend(tap);
        } catch (RuntimeException e) {
            assumeTrue(false, "cannot open a TAP device here: " + e.getMessage());
            return;
        }
        VirtioNet net = new VirtioNet("tap0", new NetOptions(MAC, 256, false), backend);
        try (MmioGuest g = new MmioGuest("tap", false, c -> VirtioMmioDevice.attach(c, "virtio-net", net))) {
            must("ip", "link", "set", tap, "netns", ns);
            must("ip", "netns", "exec", ns, "ip", "addr", "add", "10.213.0.1/24", "dev", tap);
            must("ip", "netns", "exec", ns, "ip", "link", "set", tap, "up");
            g.machine.vmStart();
            long f = g.deviceFeatures();
            assertTrue(Virtio.has(f, VirtioNet.F_CSUM) && Virtio.has(f, VirtioNet.F_GUEST_CSUM),
                    "checksum offload offered on a TAP with the virtio-net header");
            long accept = Virtio.bit(Virtio.F_VERSION_1) | Virtio.bit(VirtioNet.F_CSUM) | Virtio.bit(VirtioNet.F_MRG_RXBUF);
            assertTrue(g.negotiate(accept));
            DriverQueue rx = g.setupQueue(VirtioNet.RX, 32);
            DriverQueue tx = g.setupQueue(VirtioNet.TX, 32);
            g.driverOk();
            for (int k = 0; k < 16; k++) {
                rx.add(List.of(), List.of(buf(MmioGuest.data(k), 2048)), false);
            }
            g.kick(VirtioNet.RX);

            // ARP: who has 10.213.0.1?
            send(g, tx, arpRequest(), new byte[NetHeader.SIZE]);
            byte[] reply = awaitFrame(g, rx, fr -> type(fr) == 0x0806 && fr[21] == 2, new byte[1][]);
            byte[] hostMac = Arrays.copyOfRange(reply, 22, 28);
            assertArrayEquals(HOST_IP, Arrays.copyOfRange(reply, 28, 32), "the ARP reply is for 10.213.0.1");
            assertArrayEquals(MAC, Arrays.copyOfRange(reply, 0, 6), "to the guest's MAC");

            // ICMP echo with the checksum left to the host (NEEDS_CSUM from offset 34, field at +2)
            byte[] hdr = new byte[NetHeader.SIZE];
            hdr[NetHeader.FLAGS] = NetHeader.F_NEEDS_CSUM;
            hdr[NetHeader.CSUM_START] = 34;
            hdr[NetHeader.CSUM_OFFSET] = 2;
            send(g, tx, echoRequest(hostMac, 0x4242), hdr);
            byte[][] hdrSeen = new byte[1][];
            byte[] pong = awaitFrame(g, rx, fr -> type(fr) == 0x0800 && fr[23] == 1 && fr[34] == 0, hdrSeen);
            assertEquals(0, hdrSeen[0][NetHeader.FLAGS], "GUEST_CSUM not negotiated: the device clears the host's flags");
            assertEquals(0x4242, (pong[38] & 0xff) << 8 | (pong[39] & 0xff), "echo id");
            assertArrayEquals(GUEST_IP, Arrays.copyOfRange(pong, 30, 34));
            assertEquals(0, g.status() & Virtio.STATUS_NEEDS_RESET);
        }
    }

    interface FramePredicate {
        boolean test(byte[] frame);
    }

    static int type(byte[] f) {
        return (f[12] & 0xff) << 8 | (f[13] & 0xff);
    }

    private static void send(MmioGuest g, DriverQueue tx, byte[] frame, byte[] header) {
        byte[] b = new byte[NetHeader.SIZE + frame.length];
        System.arraycopy(header, 0, b, 0, NetHeader.SIZE);
        System.arraycopy(frame, 0, b, NetHeader.SIZE, frame.length);
        long at = MmioGuest.data(40 + tx.availIdx() % 8);
        g.writeBytes(at, b);
        tx.add(List.of(buf(at, b.length)), List.of(), false);
        g.kick(VirtioNet.TX);
    }

    /** The first received frame {@code p} accepts (others — IPv6 chatter of a new interface — are skipped). */
    private static byte[] awaitFrame(MmioGuest g, DriverQueue rx, FramePredicate p, byte[][] header)
            throws Exception {
        List<String> seen = new ArrayList<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() < deadline) {
            DriverQueue.Used u = rx.pollUsed();
            if (u == null) {
                Thread.sleep(2);
                continue;
            }
            byte[] b = g.readBytes(MmioGuest.data(u.id()), (int) u.length());
            rx.add(List.of(), List.of(buf(MmioGuest.data(u.id()), 2048)), false);
            g.kick(VirtioNet.RX);
            byte[] f = Arrays.copyOfRange(b, NetHeader.SIZE, b.length);
            if (f.length >= 42 && p.test(f)) {
                header[0] = Arrays.copyOf(b, NetHeader.SIZE);
                return f;
            }
            seen.add("type 0x" + Integer.toHexString(type(f)) + " len " + f.length);
        }
        throw new AssertionError("no matching frame from the TAP; saw " + seen + "; device " + g.describe());
    }

    static byte[] arpRequest() {
        ByteBuffer b = ByteBuffer.allocate(60);
        b.put(new byte[] {-1, -1, -1, -1, -1, -1}).put(MAC).putShort((short) 0x0806);
        b.putShort((short) 1).putShort((short) 0x0800).put((byte) 6).put((byte) 4).putShort((short) 1);
        b.put(MAC).put(GUEST_IP).put(new byte[6]).put(HOST_IP);
        return b.array();
    }

    static byte[] echoRequest(byte[] dst, int id) {
        ByteBuffer b = ByteBuffer.allocate(14 + 20 + 8 + 32);
        b.put(dst).put(MAC).putShort((short) 0x0800);
        int ipStart = b.position();
        b.put((byte) 0x45).put((byte) 0).putShort((short) (20 + 8 + 32)).putShort((short) 1).putShort((short) 0)
                .put((byte) 64).put((byte) 1).putShort((short) 0).put(GUEST_IP).put(HOST_IP);
        int sum = 0;
        byte[] a = b.array();
        for (int i = ipStart; i < ipStart + 20; i += 2) {
            sum += (a[i] & 0xff) << 8 | (a[i + 1] & 0xff);
        }
        sum = (sum & 0xffff) + (sum >>> 16);
        sum = (sum & 0xffff) + (sum >>> 16);
        b.putShort(ipStart + 10, (short) ~sum);
        b.put((byte) 8).put((byte) 0).putShort((short) 0).putShort((short) id).putShort((short) 1); // checksum by host
        for (int i = 0; i < 32; i++) {
            b.put((byte) i);
        }
        return b.array();
    }
}
