package dev.ferry.vfio.emulated;

import dev.ferry.core.machine.IoBus;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.GuestDmaSpace;
import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static dev.ferry.vfio.emulated.NicRegisters.*;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
/**
 * The emulated NIC VF through its guest interface (registers on an MMIO bus, mailbox, rings in
 * guest memory): DMA only while running and always logged, a data plane that really stops, a
 * control state that refuses what no device could hold, and the PF's VF limits. Migration of a
 * busy VF is in {@link EmulatedNicVfMigrationTest}.
 */
class EmulatedNicVfTest extends NicTestBase {
    // ------------------------------------------------------------------------------------------
    // Registers and mailbox

    @Test
    void registersBehaveThroughAnMmioBus() throws Exception {
        Nic n = nic("pps=0", memoryA);
        IoBus bus = n.mmio();
        assertEquals(ID_VALUE & 0xFFFF_FFFFL, bus.read(BAR + ID, 4));
        assertEquals(VERSION_VALUE, bus.read(BAR + VERSION, 4));
        assertEquals(STATUS_LINK_UP, bus.read(BAR + STATUS, 4));

        bus.write(BAR + RX_BASE, 8, 0x1_2345_6780L);
        assertEquals(0x1_2345_6780L, bus.read(BAR + RX_BASE, 8));
        assertEquals(0x2345_6780L, bus.read(BAR + RX_BASE, 4));
        assertEquals(1, bus.read(BAR + RX_BASE + 4, 4));
        bus.write(BAR + RX_SIZE, 4, 64);
        bus.write(BAR + RX_TAIL, 4, 63);
        assertEquals(63, bus.read(BAR + RX_TAIL, 4));
        bus.write(BAR + RX_HEAD, 4, 5);
        bus.write(BAR + ID, 4, 0);
        assertEquals(0, bus.read(BAR + RX_HEAD, 4), "RX_HEAD is read-only");
        assertEquals(ID_VALUE & 0xFFFF_FFFFL, bus.read(BAR + ID, 4), "ID is read-only");
        assertEquals(0, bus.read(BAR + 0x800, 4), "unassigned offsets read 0");
        assertEquals(0xFFFF, bus.read(BAR + CTRL, 2), "a 2-byte access is not decoded");
        assertEquals(0xFFFF_FFFFL, bus.read(BAR + CTRL + 2, 4), "nor a misaligned one");
        assertEquals(2, n.vf().badMmioAccesses());

        bus.write(BAR + RX_BUF_SIZE, 4, 2048);
        bus.write(BAR + CTRL, 4, CTRL_RX_EN);
        assertEquals(0, bus.read(BAR + CTRL, 4), "RX stays off: the ring at 0x123456780 is not guest memory");
        assertTrue((bus.read(BAR + STATUS, 4) & STATUS_RING_ERROR) != 0);

        n.driver().bringUp();
        long status = bus.read(BAR + STATUS, 4);
        assertEquals(STATUS_LINK_UP | STATUS_RX_ACTIVE | STATUS_MAC_SET, status, "after bring-up");
        assertEquals(CTRL_RX_EN | CTRL_AUTO_RECYCLE, bus.read(BAR + CTRL, 4));
        assertEquals(LAYOUT.rxRingAddress(), bus.read(BAR + RX_BASE, 8));
        assertTrue((bus.read(BAR + ICR, 4) & ICR_MAILBOX) != 0, "the mailbox raised its cause");
        bus.write(BAR + ICR, 4, ICR_MAILBOX);
        assertEquals(0, bus.read(BAR + ICR, 4) & ICR_MAILBOX, "ICR is write-1-to-clear");
        bus.write(BAR + IMR, 4, 0xFFFF_FFFFL);
        assertEquals(ICR_ALL, bus.read(BAR + IMR, 4));

        bus.write(BAR + RX_SIZE, 4, 8);
        assertEquals(LAYOUT.rxRing(), bus.read(BAR + RX_SIZE, 4), "ring registers are fixed while RX runs");

        n.vf().advance(50);
        long packets = bus.read(BAR + RX_PACKETS, 8);
        assertTrue(packets > 0 && packets <= 50, "frames delivered: " + packets);
        assertEquals(packets, bus.read(BAR + RX_PACKETS, 4), "the low half");
        assertEquals(50, packets + bus.read(BAR + RX_FILTERED, 8), "every frame is delivered or filtered");
        assertEquals(packets % LAYOUT.rxRing(), bus.read(BAR + RX_HEAD, 4));

        n.vf().setDeviceState(STOP);
        bus.write(BAR + CTRL, 4, 0);
        assertEquals(1, n.vf().droppedMmioWrites(), "a stopped VF drops register writes");
        assertEquals(CTRL_RX_EN | CTRL_AUTO_RECYCLE, bus.read(BAR + CTRL, 4), "and keeps its registers");
        n.vf().setDeviceState(RUNNING);

        bus.write(BAR + CTRL, 4, CTRL_RESET);
        assertEquals(0, bus.read(BAR + CTRL, 4));
        assertEquals(0, bus.read(BAR + RX_PACKETS, 8));
        assertEquals(STATUS_LINK_UP, bus.read(BAR + STATUS, 4), "reset clears the MAC too");
        assertEquals(NicFilter.EMPTY, n.vf().filter());
    }

    @Test
    void theMailboxProgramsStateNoRegisterShows() throws Exception {
        Nic n = nic("pps=0", memoryA);
        NicDriver d = n.driver();
        d.bringUp();
        EmulatedNicVf vf = n.vf();
        assertEquals(d.programmed(), vf.filter());
        assertEquals(NicWire.station(0), vf.filter().mac());
        assertEquals(List.of(NicWire.station(1), NicWire.station(2)), vf.filter().macTable());
        assertEquals(List.of(100), vf.filter().vlanTable());
        long hidden = 0x02AB_CDEF_1234L;
        d.addMac(hidden);
        for (int off = 0; off < BAR0_SIZE; off += 4) {
            long v = n.mmio().read(BAR + off, 4);
            assertTrue(v != (hidden & 0xFFFF_FFFFL) && v != hidden >>> 32,
                    "register 0x" + Integer.toHexString(off) + " shows a table MAC");
        }
        d.removeMac(hidden);

        d.removeMac(NicWire.station(1));
        d.removeVlan(100);
        d.addVlan(200);
        assertEquals(d.programmed(), vf.filter());
        int count = d.register(MBX_STATUS) >>> 16;

        expectError(d, () -> d.removeMac(NicWire.station(5)), MBX_ERR_NOT_FOUND);
        expectError(d, () -> d.setMac(0x0300_0000_0001L), MBX_ERR_ARGUMENT); // multicast
        expectError(d, () -> d.addVlan(0), MBX_ERR_ARGUMENT);
        expectError(d, () -> d.addVlan(4095), MBX_ERR_ARGUMENT);
        expectError(d, () -> d.mailbox(99, new byte[0], "opcode 99"), MBX_ERR_OPCODE);
        expectError(d, () -> d.mailbox(MBX_SET_RSS_KEY, new byte[39], "a short key"), MBX_ERR_LENGTH);
        expectError(d, () -> d.mailbox(MBX_SET_MAC, new byte[MBX_MAX], "too long"), MBX_ERR_LENGTH);
        assertEquals(count + 7, d.register(MBX_STATUS) >>> 16, "every message is answered");
        assertEquals(d.programmed(), vf.filter(), "refused messages change nothing");

        d.clearFilters();
        for (int i = 0; i < TABLE_SIZE; i++) {
            d.addMac(0x02AA_0000_0000L + i);
        }
        expectError(d, () -> d.addMac(0x02AA_0000_1000L), MBX_ERR_TABLE_FULL);
        d.addMac(0x02AA_0000_0000L); // already there: not a new entry
        assertEquals(TABLE_SIZE, vf.filter().macTable().size());

        n.mmio().write(BAR + MBX_ADDR, 8, MEMORY + 4096);
        n.mmio().write(BAR + MBX_DOORBELL, 4, 14);
        assertEquals(MBX_ERR_DMA, d.register(MBX_STATUS) >>> 8 & 0xFF, "a message outside guest memory");
        assertEquals(1, vf.counter(DMA_FAULTS));
    }

    private static void expectError(NicDriver d, Runnable call, int code) {
        NicDriver.MailboxException e = assertThrows(NicDriver.MailboxException.class, call::run);
        assertEquals(mailboxError(code), mailboxError(e.code()), e.getMessage());
        assertEquals(code, d.register(MBX_STATUS) >>> 8 & 0xFF);
    }

    @Test
    void txLoopsBackToRx() throws Exception {
        Nic n = nic("pps=0", memoryA);
        NicDriver d = n.driver();
        d.bringUp();
        d.disable();
        d.enableRx(false, false);
        d.enableTx(true);
        List<byte[]> sent = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            byte[] f = new byte[100 + i * 300];
            for (int j = 0; j < f.length; j++) {
                f[j] = (byte) (i * 31 + j);
            }
            d.send(f);
            sent.add(f);
        }
        assertEquals(3, d.counter(TX_PACKETS));
        assertEquals(100 + 400 + 700, d.counter(TX_BYTES));
        assertEquals(3, d.counter(RX_PACKETS));
        for (int i = 0; i < 3; i++) {
            long desc = LAYOUT.rxRingAddress() + (long) i * DESC_SIZE;
            int status = memoryA.readInt(Gpa.of(desc + 12));
            assertEquals(DESC_DD | DESC_LOOPBACK, status & 0xFFFF);
            assertEquals(i, memoryA.readLong(Gpa.of(desc + 16)), "loopback frames carry the TX packet number");
            byte[] got = new byte[sent.get(i).length];
            memoryA.read(Gpa.of(LAYOUT.rxBuffer(i)), got, 0, got.length);
            assertArrayEquals(sent.get(i), got);
            assertEquals(DESC_DD, memoryA.readInt(Gpa.of(LAYOUT.txRingAddress() + (long) i * DESC_SIZE + 12)));
        }
        d.send(new byte[10]); // shorter than a frame: consumed, marked with the error bit, not sent
        assertEquals(3, d.counter(TX_PACKETS));
        assertEquals(DESC_DD | DESC_TX_ERROR, memoryA.readInt(Gpa.of(LAYOUT.txRingAddress() + 3L * DESC_SIZE + 12)));
    }

    @Test
    void aFullRingDropsUnlessTheDriverRecycles() throws Exception {
        Nic n = nic("pps=0", memoryA);
        NicDriver d = n.driver();
        d.bringUp();
        d.disable();
        d.enableRx(false, true); // drop mode, promiscuous: every frame is accepted
        n.vf().advance(LAYOUT.rxRing() + 10);
        assertEquals(LAYOUT.rxRing() - 1, d.counter(RX_PACKETS), "a ring holds N-1 posted buffers");
        assertEquals(11, d.counter(RX_DROPS));
        assertTrue((d.register(ICR) & ICR_RX_DROP) != 0);
        assertEquals(LAYOUT.rxRing() - 1, d.recycle());
        n.vf().advance(5);
        assertEquals(LAYOUT.rxRing() + 4, d.counter(RX_PACKETS), "recycled buffers fill again");
    }

    // ------------------------------------------------------------------------------------------
    // The data plane and DMA

    @Test
    void dmaHappensOnlyWhileRunningAndEveryWrittenPageIsLogged() throws Exception {
        Nic n = nic("pps=20000", memoryA);
        EmulatedNicVf vf = n.vf();
        n.driver().bringUp();
        vf.dmaLoggingStart(4096, List.of(new IovaRange(0, MEMORY)));
        vf.setDeviceState(STOP);
        try (Mapping before = Mapping.anonymous(MEMORY); Mapping bitmap = Mapping.anonymous(MEMORY / 4096 / 8)) {
            NativeMemory.copy(memoryA.regions().get(0).hostAddress(0), before.address(), MEMORY);
            long bytes = vf.dmaBytes();
            vf.setDeviceState(RUNNING);
            await(() -> vf.counter(RX_PACKETS) > LAYOUT.rxRing() + 100, "the ring has wrapped");
            vf.setDeviceState(RUNNING_P2P); // still running: DMA goes on
            long p2p = vf.counter(RX_PACKETS);
            await(() -> vf.counter(RX_PACKETS) > p2p + 50, "RUNNING_P2P delivers");
            vf.setDeviceState(STOP);
            assertTrue(vf.dmaBytes() > bytes);
            vf.dmaLoggingReport(0, MEMORY, 4096, bitmap.address());
            long host = memoryA.regions().get(0).hostAddress(0);
            int changed = 0;
            for (long page = 0; page < MEMORY / 4096; page++) {
                long off = page * 4096;
                boolean differs = !sameBytes(host + off, before.address() + off, 4096);
                boolean logged = (NativeMemory.getLong(bitmap.address() + (page >>> 6) * 8) & (1L << page)) != 0;
                if (differs) {
                    changed++;
                    assertTrue(logged, "page 0x" + Long.toHexString(off) + " changed by DMA but is not in the DMA log");
                }
            }
            assertTrue(changed > LAYOUT.rxRing() / 4, "the VF wrote " + changed + " pages");
        }
        assertNull(vf.dataPlaneFailure());
    }

    private static boolean sameBytes(long a, long b, long n) {
        for (long i = 0; i < n; i += 8) {
            if (NativeMemory.getLong(a + i) != NativeMemory.getLong(b + i)) {
                return false;
            }
        }
        return true;
    }

    @Test
    void stopDataPlaneReallyStopsDma() throws Exception {
        Nic n = nic("pps=20000", memoryA);
        EmulatedNicVf vf = n.vf();
        n.driver().bringUp();
        for (var stopped : List.of(STOP, STOP_COPY, RESUMING)) {
            long start = vf.counter(RX_PACKETS);
            await(() -> vf.counter(RX_PACKETS) > start + 100, "frames flow before " + stopped);
            VfioDataFd fd = own(vf.setDeviceState(stopped));
            long digest = memoryA.digest();
            long packets = vf.counter(RX_PACKETS);
            long dma = vf.dmaBytes();
            long wire = vf.wirePosition();
            Thread.sleep(150); // the wire would have delivered ~3000 frames
            assertEquals(digest, memoryA.digest(), "guest memory changed in " + stopped);
            assertEquals(packets, vf.counter(RX_PACKETS));
            assertEquals(dma, vf.dmaBytes());
            assertEquals(wire, vf.wirePosition(), "the wire moved in " + stopped);
            if (fd != null) {
                fd.close();
            }
            vf.reset(); // RESUMING without data cannot go to STOP; a reset ends every session
            n.driver().bringUp();
        }
        assertNull(vf.dataPlaneFailure());
    }

    // ------------------------------------------------------------------------------------------
    // Migration

    /** A busy VF on memory A, saved with pre-copy while it runs; the source ends stopped. */
    @Test
    void theControlStateRoundTripsAndRefusesWhatNoDeviceCouldHold() throws Exception {
        Nic n = nic("pps=0", memoryA);
        n.driver().bringUp();
        n.vf().advance(100);
        n.vf().setDeviceState(STOP);
        byte[] good = n.vf().saveDeviceControl();
        NicState decoded = NicState.decode(good);
        assertArrayEquals(good, decoded.encode());

        for (int cut = 0; cut < good.length; cut++) {
            byte[] part = java.util.Arrays.copyOf(good, cut);
            assertThrows(IllegalArgumentException.class, () -> NicState.decode(part), "cut at " + cut);
        }
        assertRejected(good, b -> b.putInt(0, 0x12345678), "magic");
        assertRejected(good, b -> b.putInt(4, 2), "layout version 2");
        assertRejected(good, b -> b.putInt(8, 5), "body length");
        assertRejected(good, b -> b.putInt(12, 0x100), "CTRL");
        assertRejected(good, b -> b.putInt(12 + 16 + 8, 3), "RX ring size 3");
        assertRejected(good, b -> b.putInt(12 + 16 + 12, 5000), "RX ring head");
        assertRejected(good, b -> b.putInt(12 + 16 + 20, 100), "RX buffer size 100");
        assertRejected(good, b -> b.putLong(12 + 16, 0x1001), "RX ring base");
        int macAt = 12 + 16 + 24 + 20 + 12 + 8 * COUNTERS;
        assertRejected(good, b -> b.putLong(macAt, 0x0100_0000_0001L), "not a unicast address");
        assertRejected(good, b -> b.putInt(macAt + 8, 17), "MAC table of 17");
        int vlanAt = macAt + 8 + 4 + 8 * 2 + 4;
        assertRejected(good, b -> b.putInt(vlanAt, 5000), "VLAN table entry 0 is 5000");
        assertRejected(good, b -> b.putLong(macAt - 8, -1), "counter 6 is negative");
        byte[] longer = java.util.Arrays.copyOf(good, good.length + 1);
        java.nio.ByteBuffer.wrap(longer).putInt(8, longer.length - 12);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NicState.decode(longer));
        assertTrue(e.getMessage().contains("after the wire position"), e.getMessage());
        java.util.Random r = new java.util.Random(1);
        for (int i = 0; i < 200; i++) {
            byte[] junk = new byte[r.nextInt(400)];
            r.nextBytes(junk);
            assertThrows(IllegalArgumentException.class, () -> NicState.decode(junk));
        }
    }

    private static void assertRejected(byte[] good, java.util.function.Consumer<java.nio.ByteBuffer> change, String what) {
        byte[] bad = good.clone();
        change.accept(java.nio.ByteBuffer.wrap(bad));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NicState.decode(bad), what);
        assertTrue(e.getMessage().startsWith("NIC control state: "), e.getMessage());
        assertTrue(e.getMessage().contains(what), what + " -> " + e.getMessage());
    }

    @Test
    void aControlRecordWithAValidDigestButAnImpossibleNicIsRefusedAtResume() throws Exception {
        Nic n = nic("pps=0", memoryA);
        n.driver().bringUp();
        n.vf().setDeviceState(STOP);
        Mapping image = own(Mapping.anonymous(8L << 20));
        long len = 0;
        long k;
        VfioDataFd out = own(n.vf().setDeviceState(STOP_COPY));
        while ((k = out.read(image.address() + len, 1 << 20)) > 0) {
            len += k;
        }
        // find the control record (tag 2) and give it an RX ring of 3 descriptors, digest and all
        long at = 0;
        boolean forged = false;
        while (at < len) {
            int tag = Integer.reverseBytes(NativeMemory.getInt(image.address() + at));
            int index = Integer.reverseBytes(NativeMemory.getInt(image.address() + at + 4));
            int length = Integer.reverseBytes(NativeMemory.getInt(image.address() + at + 8));
            long payload = image.address() + at + 12;
            if (tag == 2) {
                long rxSize = payload + 20 + 12 + 16 + 8;
                NativeMemory.putInt(rxSize, Integer.reverseBytes(3));
                NativeMemory.putLong(payload + length, Long.reverseBytes(ContentDigest.record(tag, index, length, payload)));
                forged = true;
            }
            at += 12 + length + 8;
        }
        assertTrue(forged);
        EmulatedNicVf dst = nic("pps=0", memoryB).vf();
        dst.setDeviceState(STOP);
        VfioDataFd in = own(dst.setDeviceState(RESUMING));
        for (long done = 0; done < len; ) {
            done += in.write(image.address() + done, len - done);
        }
        VfioException e = assertThrows(VfioException.class, () -> dst.setDeviceState(STOP));
        assertTrue(e.getMessage().contains("RX ring size 3"), e.getMessage());
        assertEquals(RESUMING, dst.currentState());
    }

    // ------------------------------------------------------------------------------------------
    // The PF

    @Test
    void aPfCreatesAtMostItsTotalVfsAndClosesThem() throws Exception {
        EmulatedSriovPf pf = own(new EmulatedSriovPf("pf0", 2));
        GuestDmaSpace dma = new GuestDmaSpace(memoryA);
        EmulatedVfSpec spec = EmulatedVfSpec.parse("state=64K,pps=0");
        EmulatedNicVf vf0 = pf.createVf(0, spec, dma);
        EmulatedNicVf vf1 = pf.createVf(1, spec, dma);
        assertEquals("pf0vf0", vf0.name());
        assertEquals(1, vf1.vfIndex());
        assertNotEquals(vf0.wireSeed(), vf1.wireSeed(), "each VF has its own wire");
        assertEquals(2, pf.numVfs());
        assertEquals(List.of(vf0, vf1), pf.vfs());
        IllegalArgumentException beyond = assertThrows(IllegalArgumentException.class, () -> pf.createVf(2, spec, dma));
        assertTrue(beyond.getMessage().contains("sriov_totalvfs"), beyond.getMessage());
        assertThrows(IllegalStateException.class, () -> pf.createVf(1, spec, dma), "index 1 exists");
        assertTrue(pf.destroyVf(1));
        assertFalse(pf.destroyVf(1));
        assertThrows(VfioException.class, vf1::deviceState, "a destroyed VF is closed");
        EmulatedNicVf again = pf.createVf(1, spec, dma);
        assertEquals(vf1.wireSeed(), again.wireSeed(), "the same index, the same wire");
        pf.close();
        assertThrows(VfioException.class, vf0::deviceState);
        assertThrows(VfioException.class, again::deviceState);
        assertThrows(IllegalStateException.class, () -> pf.createVf(0, spec, dma));
        assertEquals(0, pf.numVfs());
        assertThrows(IllegalArgumentException.class, () -> new EmulatedSriovPf("pf1", 0));
    }
}
