package dev.ferry.core.memory;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sys;
import dev.ferry.core.testing.FdLeakCheck;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Regions mapped from a peer's descriptor, non-owning views, and the write observer. */
class PeerRegionTest {
    private static final long PAGE = 4096;

    private static Fd memfd(long size) {
        Fd fd = Sys.memfdCreate("peer-test", Linux.MFD_CLOEXEC);
        Sys.ftruncate(fd, size);
        return fd;
    }

    @Test
    void peerRegionHonoursTheMmapOffsetAndOwnsTheFd() {
        Fd fd = memfd(16 * PAGE);
        try (Mapping peer = Mapping.shared(fd, 0, 16 * PAGE)) {
            NativeMemory.putLong(peer.address() + 4 * PAGE, 0x1122334455667788L);
            GuestRegion r = GuestRegion.mapPeer("peer", 0, 0x10_0000, 8 * PAGE, fd, 4 * PAGE);
            try (GuestMemory mem = GuestMemory.view(List.of(r))) {
                assertEquals(0x1122334455667788L, mem.readLong(Gpa.of(0x10_0000)));
                mem.writeLong(Gpa.of(0x10_0000 + PAGE), 42);
                assertEquals(42, NativeMemory.getLong(peer.address() + 5 * PAGE), "a write lands in the peer's file");
            }
            assertTrue(fd.isOpen(), "closing a view leaves its regions");
            r.close();
            assertFalse(fd.isOpen(), "the region owns and closes the peer's fd");
            r.close(); // once only
        }
    }

    @Test
    void aRegionPastTheEndOfThePeersFileIsRefusedAndTheFdClosed() {
        FdLeakCheck leaks = FdLeakCheck.start();
        Fd fd = memfd(8 * PAGE);
        var e = assertThrows(IllegalArgumentException.class,
                () -> GuestRegion.mapPeer("peer", 0, 0, 8 * PAGE, fd, 4 * PAGE));
        assertTrue(e.getMessage().contains("do not fit"), e.getMessage());
        assertFalse(fd.isOpen());
        Fd fd2 = memfd(8 * PAGE);
        assertThrows(IllegalArgumentException.class, () -> GuestRegion.mapPeer("peer", 0, 0, 4 * PAGE, fd2, 100));
        assertFalse(fd2.isOpen());
        leaks.assertNoLeaks();
    }

    @Test
    void overlappingRegionsMakeNoView() {
        GuestRegion a = GuestRegion.mapPeer("a", 0, 0, 4 * PAGE, memfd(4 * PAGE), 0);
        GuestRegion b = GuestRegion.mapPeer("b", 1, 3 * PAGE, 4 * PAGE, memfd(4 * PAGE), 0);
        try {
            assertThrows(IllegalArgumentException.class, () -> GuestMemory.view(List.of(a, b)));
        } finally {
            a.close();
            b.close();
        }
    }

    @Test
    void theObserverSeesEveryDeviceWriteAndNoRead() {
        try (GuestMemory mem = GuestMemory.ofSize(64 * PAGE)) {
            List<long[]> seen = new ArrayList<>();
            mem.observeWrites((gpa, len) -> seen.add(new long[] {gpa, len}));
            DeviceMemory dm = new DeviceMemory(mem);
            dm.writeU8(0x10, 1);
            dm.writeU16(0x20, 1);
            dm.storeU16Release(0x30, 1);
            dm.writeU64(0x40, 1);
            dm.write(5 * PAGE, new byte[100], 0, 100);
            dm.readU64(0x40);
            dm.loadU16Acquire(0x30);
            assertEquals(5, seen.size());
            assertEquals(5 * PAGE, seen.get(4)[0]);
            assertEquals(100, seen.get(4)[1]);
            mem.observeWrites(null);
            dm.writeU8(0x10, 2);
            assertEquals(5, seen.size(), "a removed observer sees nothing");
        }
    }
}
