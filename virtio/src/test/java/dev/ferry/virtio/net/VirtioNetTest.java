package dev.ferry.virtio.net;

import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.transport.MmioGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.Arrays;
import java.util.List;

import static dev.ferry.virtio.net.NetFixture.BASE;
import static dev.ferry.virtio.net.NetFixture.MAC;
import static dev.ferry.virtio.net.NetFixture.frame;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * virtio-net as the specification lays it out, driven the way a guest drives it (registers,
 * rings in RAM) with a real UDP socket as the network: the config space, the features, the
 * 12-byte header both ways, MRG_RXBUF across buffers, the control queue's commands and the RX
 * filter they set.
 */
@Timeout(60)
class VirtioNetTest {
    static final byte[] BCAST = {-1, -1, -1, -1, -1, -1};
    static final byte[] OTHER = {0x02, 0, 0, 0, 0, 0x77};
    static final byte[] PEER = {0x02, (byte) 0xfe, 0, 0, 0, 1};
    static final long MRG = Virtio.bit(VirtioNet.F_MRG_RXBUF);
    static final long CTRL = Virtio.bit(VirtioNet.F_CTRL_VQ) | Virtio.bit(VirtioNet.F_CTRL_RX)
            | Virtio.bit(VirtioNet.F_CTRL_MAC_ADDR);

    @Test
    void configSpaceAndFeatures() throws Exception {
        try (NetFixture n = new NetFixture(true)) {
            assertEquals(Virtio.ID_NET, n.g.read(0x008));
            long f = n.g.deviceFeatures();
            for (int bit : new int[] {VirtioNet.F_MAC, VirtioNet.F_MRG_RXBUF, VirtioNet.F_STATUS, VirtioNet.F_CTRL_VQ,
                    VirtioNet.F_CTRL_RX, VirtioNet.F_GUEST_ANNOUNCE, VirtioNet.F_CTRL_MAC_ADDR, Virtio.F_VERSION_1}) {
                assertTrue(Virtio.has(f, bit), "feature " + bit + " offered");
            }
            assertFalse(Virtio.has(f, VirtioNet.F_CSUM), "no checksum offload towards a socket without the header");
            assertFalse(Virtio.has(f, VirtioNet.F_GUEST_CSUM));
            for (int i = 0; i < 6; i++) {
                assertEquals(MAC[i] & 0xff, n.g.read(0x100 + i, 1), "mac[" + i + "]");
            }
            assertEquals(NetConfig.S_LINK_UP, n.g.read(0x106, 2));
            assertEquals(0xffff, n.g.read(0x108, 2), "the config space ends after status (no MQ, MTU)");
            n.g.write(0x100, 1, 0x99);
            assertEquals(MAC[0] & 0xff, n.g.read(0x100, 1), "the config's MAC is read-only");
        }
        try (NetFixture n = new NetFixture(false)) {
            assertFalse(Virtio.has(n.g.deviceFeatures(), VirtioNet.F_GUEST_ANNOUNCE), "guest-announce off");
        }
    }

    @Test
    void txSendsTheFrameWithoutTheHeader() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE);
            byte[] f = frame(PEER, MAC, 200, 3);
            n.transmit(f);
            assertArrayEquals(f, n.toWire());
            DriverQueue.Used u = n.g.awaitUsed(n.tx);
            assertEquals(0, u.length(), "TX writes nothing into the chain");
            assertEquals(1L, n.stats().get("tx-frames"));
        }
    }

    @Test
    void rxWritesHeaderAndFrameWithOneBuffer() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE);
            n.postRx(0, 2048);
            byte[] f = frame(MAC, PEER, 300, 9);
            n.fromWire(f);
            DriverQueue.Used u = n.g.awaitUsed(n.rx);
            assertEquals(NetHeader.SIZE + f.length, u.length());
            byte[] got = n.g.readBytes(MmioGuest.data(0), (int) u.length());
            assertEquals(1, got[10] | got[11] << 8, "num_buffers is 1 without MRG_RXBUF (VERSION_1)");
            assertArrayEquals(new byte[10], Arrays.copyOf(got, 10), "flags, gso and offsets zero");
            assertArrayEquals(f, Arrays.copyOfRange(got, NetHeader.SIZE, got.length));
            assertEquals(0L, n.stats().get("rx-multi-buffer"), "one buffer held it");
        }
    }

    /** With MRG_RXBUF a frame spans buffers; num_buffers counts them; the used lengths add up. */
    @Test
    void mergeableRxBuffersCarryABigFrame() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE | MRG);
            for (int k = 0; k < 3; k++) {
                n.postRx(k, 256);
            }
            byte[] f = frame(MAC, PEER, 1000, 1); // 1012 bytes with the header: four buffers of 256
            n.fromWire(f);
            n.g.settle();
            assertNull(n.rx.pollUsed(), "three buffers cannot hold it: the frame waits, nothing half-written");
            n.postRx(3, 256);
            byte[] got = new byte[NetHeader.SIZE + f.length];
            int at = 0;
            for (int k = 0; k < 4; k++) {
                DriverQueue.Used u = n.g.awaitUsed(n.rx);
                assertEquals(k, u.id());
                assertEquals(k < 3 ? 256 : 1012 - 768, u.length());
                byte[] part = n.g.readBytes(MmioGuest.data(k), (int) u.length());
                System.arraycopy(part, 0, got, at, part.length);
                at += part.length;
            }
            assertEquals(4, got[10] | got[11] << 8, "num_buffers");
            assertArrayEquals(f, Arrays.copyOfRange(got, NetHeader.SIZE, got.length));
            assertEquals(1L, n.stats().get("rx-frames"));
            assertEquals(1L, n.stats().get("rx-multi-buffer"), "the frame counts as one that spanned buffers");
            assertEquals(1L, n.net.rxMultiBufferFrames());
        }
    }

    /** A TX frame in three device-readable buffers (header alone, then two parts) goes out whole and is counted so. */
    @Test
    void txFrameInSeveralBuffersGoesOutWhole() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE | MRG);
            byte[] f = frame(PEER, MAC, 3000, 5);
            n.g.writeBytes(MmioGuest.data(40), new byte[NetHeader.SIZE]);
            n.g.writeBytes(MmioGuest.data(41), Arrays.copyOfRange(f, 0, 1000));
            n.g.writeBytes(MmioGuest.data(42), Arrays.copyOfRange(f, 1000, f.length));
            n.tx.add(List.of(MmioGuest.buf(MmioGuest.data(40), NetHeader.SIZE),
                    MmioGuest.buf(MmioGuest.data(41), 1000), MmioGuest.buf(MmioGuest.data(42), f.length - 1000)),
                    List.of(), false);
            n.g.kick(VirtioNet.TX);
            assertArrayEquals(f, n.toWire());
            n.g.awaitUsed(n.tx);
            n.transmit(frame(PEER, MAC, 100, 6));
            assertEquals(100, n.toWire().length);
            n.g.awaitUsed(n.tx);
            assertEquals(2L, n.stats().get("tx-frames"));
            assertEquals(1L, n.stats().get("tx-multi-buffer"), "only the first came in several buffers");
            assertEquals(1L, n.net.txMultiBufferFrames());
        }
    }

    /**
     * A frame from the network bigger than the driver's RX buffer without MRG_RXBUF (Linux posts
     * 1518-byte buffers then) is dropped and counted, the buffer kept for the next frame, the
     * device still running — as QEMU's virtio-net drops it. It was NEEDS_RESET: any peer could
     * break the guest's NIC with one large datagram.
     */
    @Test
    void aFrameTooBigForANonMergeableBufferIsDroppedAndTheBufferKept() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE);
            n.postRx(1, 100);
            long d = n.g.ramDigest();
            n.fromWire(frame(MAC, PEER, 200, 0));
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (n.net.rxTooBig() == 0) {
                assertTrue(System.nanoTime() < deadline, "the frame is dropped as too big: " + n.stats());
                Thread.sleep(1);
            }
            n.g.settle();
            assertNull(n.rx.pollUsed(), "nothing used");
            assertEquals(d, n.g.ramDigest(), "guest RAM unchanged");
            assertEquals(0, n.g.status() & Virtio.STATUS_NEEDS_RESET, "the device is not broken");
            byte[] f = frame(MAC, PEER, 80, 4);
            n.fromWire(f);
            DriverQueue.Used u = n.g.awaitUsed(n.rx);
            assertEquals(NetHeader.SIZE + f.length, u.length(), "the next frame lands in the kept buffer");
            byte[] got = n.g.readBytes(MmioGuest.data(1), (int) u.length());
            assertArrayEquals(f, Arrays.copyOfRange(got, NetHeader.SIZE, got.length));
            assertEquals(1L, n.stats().get("rx-too-big"));
            assertEquals(1L, n.stats().get("rx-frames"));
        }
    }

    /**
     * With MRG_RXBUF a frame bigger than every buffer of a full ring can never be delivered: it is
     * dropped (it would hold the receive path forever), the buffers kept for the next frame.
     */
    @Test
    void aFrameBiggerThanAFullRingOfMergeableBuffersIsDropped() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE | MRG);
            for (int k = 0; k < 16; k++) {
                n.postRx(k, 64);
            }
            n.fromWire(frame(MAC, PEER, 2000, 0)); // 16 buffers of 64 bytes hold 1024
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (n.net.rxTooBig() == 0) {
                assertTrue(System.nanoTime() < deadline, "the frame is dropped as too big: " + n.stats());
                Thread.sleep(1);
            }
            byte[] f = frame(MAC, PEER, 100, 2); // 112 bytes: two buffers
            n.fromWire(f);
            DriverQueue.Used a = n.g.awaitUsed(n.rx);
            DriverQueue.Used b = n.g.awaitUsed(n.rx);
            assertEquals(0, a.id(), "the ring's first buffer, kept");
            assertEquals(1, b.id());
            assertEquals(64 + 48, a.length() + b.length());
            byte[] got = n.g.readBytes(MmioGuest.data(0), 64);
            assertEquals(2, got[10] | got[11] << 8, "num_buffers");
            assertEquals(0, n.g.status() & Virtio.STATUS_NEEDS_RESET, "the device is not broken");
            assertEquals(1L, n.stats().get("rx-too-big"));
        }
    }

    /** Frames that arrive with no RX buffer wait in the socket, and all arrive in order once buffers come. */
    @Test
    void framesWaitForBuffersAndArriveInOrder() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE | MRG);
            for (int i = 0; i < 8; i++) {
                n.fromWire(frame(MAC, PEER, 100, i));
            }
            n.g.settle();
            for (int k = 0; k < 8; k++) {
                n.postRx(k, 512);
            }
            for (int i = 0; i < 8; i++) {
                DriverQueue.Used u = n.g.awaitUsed(n.rx);
                byte[] got = n.g.readBytes(MmioGuest.data(u.id()), (int) u.length());
                assertArrayEquals(frame(MAC, PEER, 100, i), Arrays.copyOfRange(got, NetHeader.SIZE, got.length),
                        "frame " + i);
            }
        }
    }

    @Test
    void controlCommandsAndTheRxFilter() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE | MRG | CTRL);
            for (int k = 0; k < 8; k++) {
                n.postRx(k, 512);
            }
            // promiscuous by default: a frame for another MAC arrives
            n.fromWire(frame(OTHER, PEER, 64, 0));
            n.g.awaitUsed(n.rx);
            assertEquals(NetControl.OK, n.control(NetControl.CLASS_RX, NetControl.RX_PROMISC, new byte[] {0}));
            n.fromWire(frame(OTHER, PEER, 64, 1)); // filtered
            n.fromWire(frame(BCAST, PEER, 64, 2)); // broadcast passes
            n.fromWire(frame(MAC, PEER, 64, 3)); // our MAC passes
            assertEquals(2, n.g.readBytes(MmioGuest.data(n.g.awaitUsed(n.rx).id()), 64)[NetHeader.SIZE + 14] - 14);
            assertEquals(3, n.g.readBytes(MmioGuest.data(n.g.awaitUsed(n.rx).id()), 64)[NetHeader.SIZE + 14] - 14);
            assertEquals(1L, n.stats().get("rx-filtered"));

            // MAC table: OTHER as a unicast entry now passes
            byte[] table = new byte[4 + 6 + 4];
            table[0] = 1;
            System.arraycopy(OTHER, 0, table, 4, 6);
            assertEquals(NetControl.OK, n.control(NetControl.CLASS_MAC, NetControl.MAC_TABLE_SET, table));
            n.fromWire(frame(OTHER, PEER, 64, 4));
            assertEquals(4, n.g.readBytes(MmioGuest.data(n.g.awaitUsed(n.rx).id()), 64)[NetHeader.SIZE + 14] - 14);

            // ADDR_SET changes the MAC the config shows and the filter's own address
            byte[] newMac = {0x52, 0x54, 0, 0, 0, 0x42};
            assertEquals(NetControl.OK, n.control(NetControl.CLASS_MAC, NetControl.MAC_ADDR_SET, newMac));
            assertEquals(0x42, n.g.read(0x105, 1));

            // refused: unknown class, VLAN and MQ (not offered), wrong lengths, an ack nothing asked for
            assertEquals(NetControl.ERR, n.control(9, 0, new byte[0]));
            assertEquals(NetControl.ERR, n.control(NetControl.CLASS_VLAN, 0, new byte[2]));
            assertEquals(NetControl.ERR, n.control(NetControl.CLASS_MQ, 0, new byte[2]));
            assertEquals(NetControl.ERR, n.control(NetControl.CLASS_RX, NetControl.RX_PROMISC, new byte[2]));
            assertEquals(NetControl.ERR, n.control(NetControl.CLASS_RX, NetControl.RX_NOBCAST, new byte[1]));
            assertEquals(NetControl.ERR, n.control(NetControl.CLASS_MAC, NetControl.MAC_ADDR_SET, new byte[5]));
            byte[] lying = new byte[8];
            lying[0] = (byte) 200; // 200 unicast entries in 8 bytes
            assertEquals(NetControl.ERR, n.control(NetControl.CLASS_MAC, NetControl.MAC_TABLE_SET, lying));
            assertEquals(NetControl.ERR, n.control(NetControl.CLASS_ANNOUNCE, NetControl.ANNOUNCE_ACK, new byte[0]),
                    "no announce was asked for (and GUEST_ANNOUNCE not negotiated)");
            assertEquals(0, n.g.status() & Virtio.STATUS_NEEDS_RESET, "refused requests are no protocol error");
        }
    }

    /** Without CTRL_RX the RX class is refused; the filter stays promiscuous. */
    @Test
    void rxModeNeedsCtrlRx() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE | Virtio.bit(VirtioNet.F_CTRL_VQ));
            assertEquals(NetControl.ERR, n.control(NetControl.CLASS_RX, NetControl.RX_PROMISC, new byte[] {0}));
            n.postRx(0, 512);
            n.fromWire(frame(OTHER, PEER, 64, 0));
            n.g.awaitUsed(n.rx);
        }
    }

    /** The link goes down: STATUS loses LINK_UP with a config interrupt; TX frames are dropped; up again, they flow. */
    @Test
    void linkDownDropsTraffic() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE | Virtio.bit(VirtioNet.F_STATUS));
            n.net.setLink(false, n.g.machine.eventLoop());
            assertEquals(0, n.g.read(0x106, 2));
            assertTrue(n.g.lineRaised(), "config interrupt");
            assertEquals(Virtio.ISR_CONFIG, n.g.read(0x060) & Virtio.ISR_CONFIG);
            n.g.write(0x064, n.g.read(0x060));
            n.transmit(frame(PEER, MAC, 64, 0));
            n.g.awaitUsed(n.tx);
            assertTrue(n.wireQuiet());
            assertEquals(1L, n.stats().get("tx-dropped"));
            n.net.setLink(true, n.g.machine.eventLoop());
            byte[] f = frame(PEER, MAC, 64, 1);
            n.transmit(f);
            assertArrayEquals(f, n.toWire());
        }
    }
}
