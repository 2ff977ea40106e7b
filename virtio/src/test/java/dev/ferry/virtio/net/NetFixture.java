package dev.ferry.virtio.net;

import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.transport.MmioGuest;

import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.util.List;

import static dev.ferry.virtio.transport.MmioGuest.buf;

/**
 * A virtio-net device on a machine without vCPUs, its dgram back-end connected to a plain UDP
 * channel (the wire: what the test sends arrives as frames from the network, what the device
 * sends is read back there), and the test as its driver through {@link MmioGuest}.
 */
final class NetFixture implements AutoCloseable {
    static final byte[] MAC = {0x52, 0x54, 0, 0x12, 0x34, 0x56};
    static final long BASE = Virtio.bit(Virtio.F_VERSION_1);
    final DatagramChannel wire;
    final MmioGuest g;
    final VirtioNet net;
    DriverQueue rx;
    DriverQueue tx;
    DriverQueue ctrl;
    private int small;

    NetFixture(boolean guestAnnounce) throws Exception {
        this(guestAnnounce, false);
    }

    /** A migration destination (inmigrate, not started): its device gets its state from a stream. */
    static NetFixture incoming() throws Exception {
        return new NetFixture(false, true);
    }

    static NetFixture incoming(boolean guestAnnounce) throws Exception {
        return new NetFixture(guestAnnounce, true);
    }

    /** The driver's queues as {@code src} laid them out (the destination's guest RAM holds them). */
    void attachQueues(NetFixture src) {
        rx = DriverQueue.builder(g.mem, src.rx.config()).initialIndex(src.rx.availIdx()).build();
        tx = DriverQueue.builder(g.mem, src.tx.config()).initialIndex(src.tx.availIdx()).build();
        ctrl = DriverQueue.builder(g.mem, src.ctrl.config()).initialIndex(src.ctrl.availIdx()).build();
    }

    private NetFixture(boolean guestAnnounce, boolean incoming) throws Exception {
        wire = DatagramChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
        InetSocketAddress wireAddr = (InetSocketAddress) wire.getLocalAddress();
        DgramBackend b = new DgramBackend(new InetSocketAddress("127.0.0.1", 0), wireAddr);
        wire.connect(new InetSocketAddress("127.0.0.1", b.localPort()));
        net = new VirtioNet("nic0", new NetOptions(MAC, 256, guestAnnounce), b);
        MmioGuest guest;
        try {
            guest = new MmioGuest("net", incoming, c -> VirtioMmioDevice.attach(c, "virtio-net", net));
        } catch (Exception e) {
            wire.close();
            throw e;
        }
        g = guest;
        if (!incoming) {
            g.machine.vmStart();
        }
    }

    /** Features, the three queues (16 entries), DRIVER_OK. */
    void bringUp(long features) {
        if (!g.negotiate(features)) {
            throw new AssertionError("FEATURES_OK refused for 0x" + Long.toHexString(features));
        }
        rx = g.setupQueue(VirtioNet.RX, 16);
        tx = g.setupQueue(VirtioNet.TX, 16);
        ctrl = g.setupQueue(VirtioNet.CTRL, 16);
        g.driverOk();
    }

    /** Posts RX buffer {@code k} of {@code len} bytes (data buffer k). */
    int postRx(int k, int len) {
        int head = rx.add(List.of(), List.of(buf(MmioGuest.data(k), len)), false);
        g.kick(VirtioNet.RX);
        return head;
    }

    /** Sends {@code frame} with a zero header from data buffer 40. */
    void transmit(byte[] frame) {
        byte[] b = new byte[NetHeader.SIZE + frame.length];
        System.arraycopy(frame, 0, b, NetHeader.SIZE, frame.length);
        g.writeBytes(MmioGuest.data(40), b);
        tx.add(List.of(buf(MmioGuest.data(40), b.length)), List.of(), false);
        g.kick(VirtioNet.TX);
    }

    /** A control request; returns the ack byte (after the used element). */
    int control(int cls, int cmd, byte[] data) throws InterruptedException {
        long req = MmioGuest.data(50);
        long ack = MmioGuest.small(small++ % 512);
        byte[] r = new byte[2 + data.length];
        r[0] = (byte) cls;
        r[1] = (byte) cmd;
        System.arraycopy(data, 0, r, 2, data.length);
        g.writeBytes(req, r);
        g.writeBytes(ack, new byte[] {(byte) 0xee});
        ctrl.add(List.of(buf(req, r.length)), List.of(buf(ack, 1)), false);
        g.kick(VirtioNet.CTRL);
        DriverQueue.Used u = g.awaitUsed(ctrl);
        if (u.length() != 1) {
            throw new AssertionError("control used length " + u.length());
        }
        return g.mem.readU8(ack);
    }

    /** A frame from the network to the guest. */
    void fromWire(byte[] frame) throws Exception {
        wire.write(ByteBuffer.wrap(frame));
    }

    /** The next frame the device sent (bounded wait). */
    byte[] toWire() throws Exception {
        wire.configureBlocking(false);
        ByteBuffer b = ByteBuffer.allocate(70000);
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (wire.read(b) <= 0) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("no frame on the wire; device " + g.describe());
            }
            Thread.sleep(1);
        }
        byte[] f = new byte[b.position()];
        b.flip().get(f);
        return f;
    }

    /** Nothing on the wire within a short, bounded wait after the loop settled. */
    boolean wireQuiet() throws Exception {
        g.settle();
        wire.configureBlocking(false);
        return wire.read(ByteBuffer.allocate(70000)) <= 0;
    }

    static byte[] frame(byte[] dst, byte[] src, int length, int fill) {
        byte[] f = new byte[length];
        System.arraycopy(dst, 0, f, 0, 6);
        System.arraycopy(src, 0, f, 6, 6);
        f[12] = (byte) 0x88;
        f[13] = (byte) 0xb5;
        for (int i = 14; i < length; i++) {
            f[i] = (byte) (fill + i);
        }
        return f;
    }

    @SuppressWarnings("unchecked")
    java.util.Map<String, Object> stats() {
        return (java.util.Map<String, Object>) g.describe().get("virtio-net");
    }

    @Override
    public void close() throws Exception {
        g.close();
        wire.close();
    }
}
