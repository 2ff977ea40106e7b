package dev.ferry.virtio.net;

import dev.ferry.core.machine.Machine;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.MemoryTransports;
import dev.ferry.virtio.Virtio;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What the driver set through the control queue — RX mode, MAC table, MAC address — and the
 * STATUS bits travel in the device part of the stream: a destination filters as the source did.
 * A stream with a MAC table larger than any, or a status with unknown bits, is refused with a
 * reason and the destination's device stays as it was.
 */
@Timeout(60)
class NetStateTest {
    static final byte[] OTHER = {0x02, 0, 0, 0, 0, 0x77};
    static final byte[] STRANGER = {0x02, 0, 0, 0, 0, 0x78};
    static final byte[] PEER = {0x02, (byte) 0xfe, 0, 0, 0, 1};
    static final long FEATURES = NetFixture.BASE | Virtio.bit(VirtioNet.F_CTRL_VQ) | Virtio.bit(VirtioNet.F_CTRL_RX)
            | Virtio.bit(VirtioNet.F_CTRL_MAC_ADDR) | Virtio.bit(VirtioNet.F_MRG_RXBUF);

    @Test
    void filtersAndMacMigrate() throws Exception {
        try (NetFixture src = new NetFixture(false)) {
            src.bringUp(FEATURES);
            byte[] newMac = {0x52, 0x54, 0, 0, 0, 0x42};
            assertEquals(NetControl.OK, src.control(NetControl.CLASS_RX, NetControl.RX_PROMISC, new byte[] {0}));
            byte[] table = new byte[4 + 6 + 4];
            table[0] = 1;
            System.arraycopy(OTHER, 0, table, 4, 6);
            assertEquals(NetControl.OK, src.control(NetControl.CLASS_MAC, NetControl.MAC_TABLE_SET, table));
            assertEquals(NetControl.OK, src.control(NetControl.CLASS_MAC, NetControl.MAC_ADDR_SET, newMac));
            byte[] stream = InMemoryMigration.save(src.g.machine);

            try (NetFixture dst = NetFixture.incoming()) {
                load(dst.g.machine, stream);
                dst.attachQueues(src);
                dst.g.machine.vmStart();
                assertEquals(0x42, dst.g.read(0x105, 1), "the MAC the driver set");
                Map<String, Object> st = dst.stats();
                assertEquals(false, st.get("promisc"));
                for (int k = 0; k < 4; k++) {
                    dst.postRx(k, 512);
                }
                dst.fromWire(NetFixture.frame(STRANGER, PEER, 64, 1)); // filtered
                dst.fromWire(NetFixture.frame(OTHER, PEER, 64, 2)); // in the table
                dst.fromWire(NetFixture.frame(newMac, PEER, 64, 3)); // the new MAC
                for (int want = 2; want <= 3; want++) {
                    byte[] got = dst.g.readBytes(dev.ferry.virtio.transport.MmioGuest.data(dst.g.awaitUsed(dst.rx).id()),
                            NetHeader.SIZE + 64);
                    assertEquals(want, got[NetHeader.SIZE + 14] - 14);
                }
                assertEquals(1L, dst.stats().get("rx-filtered"));
            }
        }
    }

    @Test
    void absurdMacTableIsRefused() throws Exception {
        try (NetFixture src = new NetFixture(false)) {
            src.bringUp(FEATURES);
            byte[] stream = InMemoryMigration.save(src.g.machine);
            // the device part starts after the generic virtio part; patch the table count where
            // the source's MAC is followed by tx_waiting, mergeable, status, promisc, allmulti
            int at = indexOf(stream, NetFixture.MAC);
            assertTrue(at > 0, "the MAC is in the stream");
            int count = at + 6 + 4 + 2 + 2 + 1 + 1;
            stream[count] = 0;
            stream[count + 1] = 0;
            stream[count + 2] = 0;
            stream[count + 3] = 65;
            try (NetFixture dst = NetFixture.incoming()) {
                String why = loadFails(dst.g.machine, stream);
                assertTrue(why.contains("MAC table of 65 entries, at most 64"), why);
                assertEquals("52:54:00:12:34:56", dst.stats().get("mac"));
            }
        }
    }

    /**
     * Every prefix of the section that cuts the net device part ends in EOF or a refusal and
     * leaves the destination's device as it was; the whole section loads.
     */
    @Test
    void everyTruncationIsEofOrARefusal() throws Exception {
        try (NetFixture src = new NetFixture(false)) {
            src.bringUp(FEATURES);
            assertEquals(NetControl.OK, src.control(NetControl.CLASS_RX, NetControl.RX_PROMISC, new byte[] {0}));
            byte[] table = new byte[4 + 12 + 4 + 6];
            table[0] = 2;
            System.arraycopy(OTHER, 0, table, 4, 6);
            System.arraycopy(STRANGER, 0, table, 10, 6);
            table[16] = 1;
            table[20] = 0x01; // a multicast entry
            assertEquals(NetControl.OK, src.control(NetControl.CLASS_MAC, NetControl.MAC_TABLE_SET, table));
            src.g.machine.vmStop(dev.ferry.core.machine.RunState.PAUSED);
            byte[] blob = section(src.g.machine, src.g.transport.idstr());
            try (NetFixture dst = NetFixture.incoming()) {
                byte[] ram = new byte[(int) dev.ferry.virtio.transport.MmioGuest.RAM];
                src.g.machine.memory().read(dev.ferry.core.memory.Gpa.of(0), ram, 0, ram.length);
                dst.g.machine.memory().write(dev.ferry.core.memory.Gpa.of(0), ram, 0, ram.length);
                Map<String, Object> before = dst.g.describe();
                int part = indexOf(blob, NetFixture.MAC);
                int partLength = 6 + 4 + 2 + 2 + 1 + 1 + 4 + 3 * 6 + 4 + 6 + 4;
                assertTrue(part > 0 && part + partLength <= blob.length);
                for (int n = part; n < part + partLength; n++) {
                    try {
                        loadSection(dst.g.machine, dst.g.transport.idstr(), java.util.Arrays.copyOf(blob, n));
                        throw new AssertionError("a prefix of " + n + " of " + blob.length + " bytes loaded");
                    } catch (java.io.EOFException | dev.ferry.core.migration.MigrationException e) {
                        assertEquals(before, dst.g.describe(), "prefix of " + n + " bytes changed the device");
                    }
                }
                loadSection(dst.g.machine, dst.g.transport.idstr(), blob);
                assertEquals(false, dst.stats().get("promisc"), "the whole section loads");
            }
        }
    }

    private static dev.ferry.core.migration.SaveEntry.VmState<?> entry(Machine m, String idstr) {
        for (dev.ferry.core.migration.SaveEntry e : m.migration().entries()) {
            if (e instanceof dev.ferry.core.migration.SaveEntry.VmState<?> v && v.idstr().equals(idstr)) {
                return v;
            }
        }
        throw new AssertionError("no section " + idstr);
    }

    static byte[] section(Machine m, String idstr) throws Exception {
        dev.ferry.core.testing.ByteArraySaveStream out = new dev.ferry.core.testing.ByteArraySaveStream();
        entry(m, idstr).save(out);
        return out.toByteArray();
    }

    static void loadSection(Machine m, String idstr, byte[] blob) throws Exception {
        var e = entry(m, idstr);
        e.load(new dev.ferry.core.testing.ByteArrayLoadStream(blob), e.version());
    }

    static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = hay.length - needle.length; i >= 0; i--) {
            for (int j = 0; j < needle.length; j++) {
                if (hay[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    static void load(Machine dst, byte[] stream) throws Exception {
        DestinationMigration d = destination(dst, stream);
        MigrationStatus st = d.await(InMemoryMigration.WAIT);
        assertEquals(MigrationStatus.COMPLETED, st, () -> "incoming: " + d.errorDesc());
    }

    static String loadFails(Machine dst, byte[] stream) throws Exception {
        DestinationMigration d = destination(dst, stream);
        MigrationStatus st = d.await(InMemoryMigration.WAIT);
        assertEquals(MigrationStatus.FAILED, st);
        return d.errorDesc();
    }

    private static DestinationMigration destination(Machine dst, byte[] stream) throws Exception {
        MemoryTransports t = new MemoryTransports();
        t.serve(MemoryTransports.FILE_URI, stream);
        DestinationMigration d = new DestinationMigration(dst, t, MigrationCapabilities.defaults(),
                MigrationEventSink.NONE, false);
        d.listen(MemoryTransports.FILE_URI);
        return d;
    }
}
