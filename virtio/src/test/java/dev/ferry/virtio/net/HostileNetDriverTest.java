package dev.ferry.virtio.net;

import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.transport.MmioGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;

import static dev.ferry.virtio.net.NetFixture.BASE;
import static dev.ferry.virtio.net.NetFixture.MAC;
import static dev.ferry.virtio.net.NetFixture.frame;
import static dev.ferry.virtio.transport.MmioGuest.buf;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A hostile driver's virtio-net requests: a TX chain shorter than the header, a frame longer than
 * any, an RX chain with no writable buffer or too small for the header, a control request without
 * its ack byte. Each sets NEEDS_RESET with a
 * reason and a config interrupt, sends nothing, returns nothing used, writes no guest RAM; after a
 * reset the device serves again. (A received frame too big for the driver's buffers is the
 * network's doing, not the driver's: {@code VirtioNetTest} drops it.)
 */
@Timeout(60)
class HostileNetDriverTest {
    static final long MRG = Virtio.bit(VirtioNet.F_MRG_RXBUF);
    static final long CTRL = Virtio.bit(VirtioNet.F_CTRL_VQ) | Virtio.bit(VirtioNet.F_CTRL_RX);
    static final byte[] PEER = {0x02, (byte) 0xfe, 0, 0, 0, 1};

    private static void assertBroken(NetFixture n, String reason, long digestBefore) throws Exception {
        n.g.awaitStatus(Virtio.STATUS_NEEDS_RESET);
        String why = n.net == null ? null : n.g.transport.brokenReason();
        assertNotNull(why);
        assertTrue(why.contains(reason), "reason '" + reason + "' in: " + why);
        assertTrue(n.g.lineRaised(), "config interrupt");
        assertEquals(Virtio.ISR_CONFIG, n.g.read(0x060) & Virtio.ISR_CONFIG);
        assertNull(n.tx.pollUsed(), "nothing used on tx");
        assertNull(n.rx.pollUsed(), "nothing used on rx");
        assertTrue(n.wireQuiet(), "nothing sent");
        if (digestBefore != 0) {
            assertEquals(digestBefore, n.g.ramDigest(), "guest RAM unchanged");
        }
        // the driver resets and starts over: the device serves again
        n.bringUp(BASE);
        byte[] f = frame(PEER, MAC, 64, 7);
        n.transmit(f);
        assertEquals(64, n.toWire().length);
    }

    @Test
    void txChainShorterThanTheHeader() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE);
            n.tx.add(List.of(buf(MmioGuest.data(1), 11)), List.of(), false);
            long d = n.g.ramDigest();
            n.g.kick(VirtioNet.TX);
            assertBroken(n, "virtio-net header incorrect", d);
        }
    }

    @Test
    void txFrameLongerThanAnyFrame() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE);
            n.tx.add(List.of(buf(MmioGuest.data(1), 0x10000), buf(MmioGuest.data(2), 0x10000)), List.of(), false);
            long d = n.g.ramDigest();
            n.g.kick(VirtioNet.TX);
            assertBroken(n, "more than " + NetBackend.MAX_FRAME, d);
        }
    }

    /** Absurd descriptor lengths never reach the device: the ring refuses a buffer beyond RAM. */
    @Test
    void txBufferBeyondRam() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE);
            n.tx.add(List.of(buf(MmioGuest.RAM - 64, 0xffff_fff0L)), List.of(), false);
            n.g.kick(VirtioNet.TX);
            assertBroken(n, "not in RAM", 0);
        }
    }

    @Test
    void rxChainWithoutWritableBuffer() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE | MRG);
            n.rx.add(List.of(buf(MmioGuest.data(1), 2048)), List.of(), false);
            n.g.kick(VirtioNet.RX);
            long d = n.g.ramDigest();
            n.fromWire(frame(MAC, PEER, 64, 0));
            assertBroken(n, "contains no in buffers", d);
        }
    }

    @Test
    void rxBufferTooSmallForTheHeader() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE | MRG);
            n.postRx(1, 8);
            long d = n.g.ramDigest();
            n.fromWire(frame(MAC, PEER, 64, 0));
            assertBroken(n, "the header alone is 12", d);
        }
    }

    @Test
    void controlRequestWithoutAck() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE | CTRL);
            n.g.writeBytes(MmioGuest.data(3), new byte[] {0, 0, 0});
            n.ctrl.add(List.of(buf(MmioGuest.data(3), 3)), List.of(), false);
            long d = n.g.ramDigest();
            n.g.kick(VirtioNet.CTRL);
            assertBroken(n, "ctrl missing headers", d);
        }
    }

    @Test
    void controlRequestWithoutClassAndCommand() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE | CTRL);
            n.ctrl.add(List.of(buf(MmioGuest.data(3), 1)), List.of(buf(MmioGuest.small(0), 1)), false);
            long d = n.g.ramDigest();
            n.g.kick(VirtioNet.CTRL);
            assertBroken(n, "ctrl missing headers", d);
        }
    }

    /** Control data longer than any command is refused with ERR, not read. */
    @Test
    void controlDataAbsurdlyLong() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE | CTRL);
            assertEquals(NetControl.ERR, n.control(NetControl.CLASS_MAC, NetControl.MAC_TABLE_SET,
                    new byte[NetControl.MAX_DATA + 1]));
            assertEquals(0, n.g.status() & Virtio.STATUS_NEEDS_RESET);
        }
    }

    /** Frames the back-end cannot carry are dropped and counted, not sent: a runt, a GSO frame, NEEDS_CSUM to a socket. */
    @Test
    void txFramesTheBackendCannotCarryAreDropped() throws Exception {
        try (NetFixture n = new NetFixture(false)) {
            n.bringUp(BASE);
            n.transmit(new byte[10]);
            byte[] gso = new byte[NetHeader.SIZE + 64];
            gso[NetHeader.GSO_TYPE] = NetHeader.GSO_TCPV4;
            byte[] csum = new byte[NetHeader.SIZE + 64];
            csum[NetHeader.FLAGS] = NetHeader.F_NEEDS_CSUM;
            for (byte[] b : List.of(gso, csum)) {
                n.g.writeBytes(MmioGuest.data(41), b);
                n.tx.add(List.of(buf(MmioGuest.data(41), b.length)), List.of(), false);
                n.g.kick(VirtioNet.TX);
                n.g.awaitUsed(n.tx);
            }
            n.g.awaitUsed(n.tx);
            assertTrue(n.wireQuiet());
            assertEquals(3L, n.stats().get("tx-dropped"));
            assertEquals(0, n.g.status() & Virtio.STATUS_NEEDS_RESET);
        }
    }
}
