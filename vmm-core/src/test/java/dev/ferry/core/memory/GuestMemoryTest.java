package dev.ferry.core.memory;

import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.testing.FdLeakCheck;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GuestMemoryTest {
    private static final long KIB = 1024;
    private static final long MIB = 1024 * KIB;
    private static final long GIB = 1024 * MIB;

    // ---- access widths ----

    @Test
    void everyAccessWidthRoundTrips() {
        try (GuestMemory mem = GuestMemory.ofSize(MIB)) {
            mem.writeByte(Gpa.of(0), (byte) 0x7f);
            mem.writeByte(Gpa.of(1), (byte) 0x80);
            assertEquals((byte) 0x7f, mem.readByte(Gpa.of(0)));
            assertEquals((byte) 0x80, mem.readByte(Gpa.of(1)));

            mem.writeInt(Gpa.of(0x103), 0xdeadbeef); // unaligned on purpose
            assertEquals(0xdeadbeef, mem.readInt(Gpa.of(0x103)));

            mem.writeLong(Gpa.of(0x2001), 0x8000_0000_0000_0001L);
            assertEquals(0x8000_0000_0000_0001L, mem.readLong(Gpa.of(0x2001)));

            byte[] src = new byte[300];
            for (int i = 0; i < src.length; i++) {
                src[i] = (byte) (i * 7 + 3);
            }
            mem.write(Gpa.of(0x3000 - 100), src, 50, 200); // array offset, across a page boundary
            byte[] dst = new byte[210];
            mem.read(Gpa.of(0x3000 - 100), dst, 10, 200);
            for (int i = 0; i < 200; i++) {
                assertEquals(src[50 + i], dst[10 + i], "byte " + i);
            }

            mem.fill(Gpa.of(0x5000 + 1), 5000, (byte) 0xa5);
            assertEquals(0, mem.readByte(Gpa.of(0x5000)));
            assertEquals((byte) 0xa5, mem.readByte(Gpa.of(0x5001)));
            assertEquals((byte) 0xa5, mem.readByte(Gpa.of(0x5000 + 5000)));
            assertEquals(0, mem.readByte(Gpa.of(0x5000 + 5001)));
        }
    }

    @Test
    void guestMemoryIsLittleEndianLikeAnX86Guest() {
        try (GuestMemory mem = GuestMemory.ofSize(64 * KIB)) {
            mem.writeLong(Gpa.of(0x100), 0x0807060504030201L);
            byte[] b = new byte[8];
            mem.read(Gpa.of(0x100), b, 0, 8);
            assertArrayEquals(new byte[] {1, 2, 3, 4, 5, 6, 7, 8}, b);
            assertEquals(0x08070605, mem.readInt(Gpa.of(0x104)));
        }
    }

    @Test
    void regionContentIsTheMemfdsContent() {
        // What a vhost-user back-end maps from the memfd must be what the VMM wrote.
        try (GuestMemory mem = GuestMemory.builder().region("lo", 0, 64 * KIB).region("hi", 1 * MIB, 64 * KIB).build()) {
            GuestRegion hi = mem.region("hi");
            mem.writeLong(Gpa.of(MIB + 0x1008), 0x0123456789abcdefL);
            try (Mapping peer = Mapping.shared(hi.memfd(), 0, hi.size())) {
                assertEquals(0x0123456789abcdefL, dev.ferry.core.sys.NativeMemory.getLong(peer.address() + 0x1008));
                dev.ferry.core.sys.NativeMemory.putInt(peer.address() + 0x20, 77);
            }
            assertEquals(77, mem.readInt(Gpa.of(MIB + 0x20)));
            assertEquals(hi.hostBase().raw() + 0x20, mem.hostAddress(Gpa.of(MIB + 0x20), 4));
        }
    }

    // ---- bounds ----

    @Test
    void addressOutsideEveryRegionIsAnErrorWithTheAddress() {
        try (GuestMemory mem = GuestMemory.ofSize(MIB)) {
            GuestMemoryException e = assertThrows(GuestMemoryException.class, () -> mem.readByte(Gpa.of(MIB)));
            assertTrue(e.getMessage().contains("0x100000") && e.getMessage().contains("not RAM"), e.getMessage());
            assertTrue(e.getMessage().contains("pc.ram"), "the message lists the regions: " + e.getMessage());
            assertThrows(GuestMemoryException.class, () -> mem.writeLong(Gpa.of(-4096), 1));
            assertThrows(GuestMemoryException.class, () -> mem.readInt(Gpa.of(Long.MIN_VALUE)));
            assertThrows(GuestMemoryException.class, () -> mem.hostAddress(Gpa.of(10 * GIB), 1));
        }
    }

    @Test
    void accessCrossingTheRegionEndIsAnErrorAndWritesNothing() {
        try (GuestMemory mem = GuestMemory.ofSize(MIB)) {
            assertEquals(0, mem.readLong(Gpa.of(MIB - 8)), "the last 8 bytes are in range");
            GuestMemoryException e = assertThrows(GuestMemoryException.class, () -> mem.readLong(Gpa.of(MIB - 4)));
            assertTrue(e.getMessage().contains("crosses the end of pc.ram"), e.getMessage());
            assertTrue(e.getMessage().contains("0xffffc"), e.getMessage());
            assertThrows(GuestMemoryException.class, () -> mem.writeInt(Gpa.of(MIB - 2), -1));

            byte[] ones = new byte[16];
            java.util.Arrays.fill(ones, (byte) 1);
            assertThrows(GuestMemoryException.class, () -> mem.write(Gpa.of(MIB - 8), ones, 0, 16));
            assertEquals(0, mem.readLong(Gpa.of(MIB - 8)), "a refused write writes nothing");
            assertThrows(GuestMemoryException.class, () -> mem.fill(Gpa.of(0), MIB + 1, (byte) 1));
            assertEquals(0, mem.readByte(Gpa.of(0)), "a refused fill writes nothing");
            assertThrows(GuestMemoryException.class, () -> mem.hostAddress(Gpa.of(16), Long.MAX_VALUE));
        }
    }

    @Test
    void negativeLengthOrBadArrayIsAnErrorNotACrash() {
        try (GuestMemory mem = GuestMemory.ofSize(MIB)) {
            GuestMemoryException e = assertThrows(GuestMemoryException.class,
                    () -> mem.read(Gpa.of(0), new byte[8], 0, -1));
            assertTrue(e.getMessage().contains("negative length"), e.getMessage());
            assertThrows(GuestMemoryException.class, () -> mem.fill(Gpa.of(0), -5, (byte) 0));
            assertThrows(IndexOutOfBoundsException.class, () -> mem.read(Gpa.of(0), new byte[8], 4, 8));
            assertThrows(IndexOutOfBoundsException.class, () -> mem.write(Gpa.of(0), new byte[8], -1, 4));
        }
    }

    @Test
    void holeBetweenRegionsIsNotRam() {
        try (GuestMemory mem = GuestMemory.builder().region("low", 0, GIB).region("high", 4 * GIB, GIB).build()) {
            assertEquals(2 * GIB, mem.totalSize());
            mem.writeLong(Gpa.of(GIB - 8), 11);
            mem.writeLong(Gpa.of(4 * GIB), 22);
            mem.writeLong(Gpa.of(5 * GIB - 8), 33);
            assertEquals(11, mem.readLong(Gpa.of(GIB - 8)));
            assertEquals(22, mem.readLong(Gpa.of(4 * GIB)));
            assertEquals(33, mem.readLong(Gpa.of(5 * GIB - 8)));
            for (long hole : new long[] {GIB, 2 * GIB, 4 * GIB - 1, 5 * GIB}) {
                GuestMemoryException e = assertThrows(GuestMemoryException.class, () -> mem.readByte(Gpa.of(hole)));
                assertTrue(e.getMessage().contains("0x" + Long.toHexString(hole)), e.getMessage());
            }
            assertThrows(GuestMemoryException.class, () -> mem.readLong(Gpa.of(GIB - 4)), "low end into the hole");
            assertSame(mem.region("high"), mem.regionFor(4 * GIB + 5, 10));
            assertNull(mem.region("nope"));
        }
    }

    @Test
    void adjacentRegionsStaySeparate() {
        try (GuestMemory mem = GuestMemory.builder().region("a", 0, 64 * KIB).region("b", 64 * KIB, 64 * KIB).build()) {
            mem.writeLong(Gpa.of(64 * KIB - 8), 1);
            mem.writeLong(Gpa.of(64 * KIB), 2);
            assertThrows(GuestMemoryException.class, () -> mem.readLong(Gpa.of(64 * KIB - 4)),
                    "regions are separate mappings: an access may not span two of them");
        }
    }

    @Test
    void regionLargerThanTwoGibibytes() {
        long size = 3 * GIB;
        long twoGib = 2 * GIB;
        try (GuestMemory mem = GuestMemory.ofSize(size)) {
            GuestRegion r = mem.regions().get(0);
            assertEquals(size, r.size());
            assertEquals(size >>> 12, r.pages());
            mem.writeLong(Gpa.of(0), 1);
            mem.writeLong(Gpa.of(twoGib - 4), 0x1111_2222_3333_4444L); // straddles 2^31 in one access
            mem.writeLong(Gpa.of(size - 8), 3);
            byte[] pattern = new byte[8192];
            for (int i = 0; i < pattern.length; i++) {
                pattern[i] = (byte) (i ^ 0x5a);
            }
            mem.write(Gpa.of(twoGib + 4096), pattern, 0, pattern.length);

            assertEquals(1, mem.readLong(Gpa.of(0)));
            assertEquals(0x1111_2222_3333_4444L, mem.readLong(Gpa.of(twoGib - 4)));
            assertEquals(0x1111_2222, mem.readInt(Gpa.of(twoGib)), "the high half lives above 2 GiB");
            assertEquals(3, mem.readLong(Gpa.of(size - 8)));
            byte[] back = new byte[8192];
            mem.read(Gpa.of(twoGib + 4096), back, 0, back.length);
            assertArrayEquals(pattern, back);
            assertEquals(r.hostBase().raw() + twoGib, r.hostAddress(twoGib));
            assertEquals(r.hostBase().raw() + size - 8, mem.hostAddress(Gpa.of(size - 8), 8));
            assertThrows(GuestMemoryException.class, () -> mem.readLong(Gpa.of(size - 4)));
            assertThrows(GuestMemoryException.class, () -> mem.readByte(Gpa.of(size)));
        }
    }

    @Test
    void guestOfMoreThanFourGibibytes() {
        try (GuestMemory mem = GuestMemory.builder().region("lo", 0, 2 * GIB).region("hi", 4 * GIB, 3 * GIB).build()) {
            assertEquals(5 * GIB, mem.totalSize());
            long[] gpas = {0, 2 * GIB - 8, 4 * GIB, 4 * GIB + 0xA000_0000L, 7 * GIB - 8};
            for (long gpa : gpas) {
                mem.writeLong(Gpa.of(gpa), ~gpa);
            }
            for (long gpa : gpas) {
                assertEquals(~gpa, mem.readLong(Gpa.of(gpa)), "gpa 0x" + Long.toHexString(gpa));
            }
            assertThrows(GuestMemoryException.class, () -> mem.readByte(Gpa.of(3 * GIB)));
            assertThrows(GuestMemoryException.class, () -> mem.readByte(Gpa.of(7 * GIB)));
        }
    }

    // ---- building ----

    @Test
    void overlappingOrDuplicateRegionsAreRefused() {
        assertRefused(GuestMemory.builder().region("a", 0, 2 * MIB).region("b", MIB, 2 * MIB), "b");
        assertRefused(GuestMemory.builder().region("a", 0, 4 * MIB).region("b", MIB, MIB), "b");
        assertRefused(GuestMemory.builder().region("a", MIB, MIB).region("b", 0, 4 * MIB), "b");
        assertRefused(GuestMemory.builder().region("a", 0, MIB).region("b", 0, MIB), "b");
        assertRefused(GuestMemory.builder().region("a", 0, MIB).region("a", 4 * MIB, MIB), "duplicate region name a");
        assertRefused(GuestMemory.builder().region("odd", 0, MIB + 1), "odd");
        assertRefused(GuestMemory.builder().region("odd", 100, MIB), "odd");
        assertRefused(GuestMemory.builder().region("empty", 0, 0), "empty");
    }

    private static void assertRefused(GuestMemory.Builder b, String mentioned) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, b::build);
        assertTrue(e.getMessage().contains(mentioned), e.getMessage());
    }

    // ---- the VMM's own write log ----

    /** The migration side's per-region bitmaps, as RAM migration keeps them. */
    private static final class TargetPages implements DirtyPages, AutoCloseable {
        private final GuestMemory memory;
        private final Map<GuestRegion, DirtyBitmap> bitmaps = new IdentityHashMap<>();

        TargetPages(GuestMemory memory) {
            this.memory = memory;
            for (GuestRegion r : memory.regions()) {
                bitmaps.put(r, new DirtyBitmap(r.pages()));
            }
        }

        @Override
        public DirtyBitmap bitmap(GuestRegion region) {
            DirtyBitmap b = bitmaps.get(region);
            if (b == null) {
                throw new IllegalArgumentException("not a region of this memory: " + region);
            }
            return b;
        }

        @Override
        public void mark(Gpa gpa, long length) {
            GuestRegion r = memory.regionFor(gpa.raw(), length);
            bitmap(r).markBytes(gpa.raw() - r.gpaBase(), length);
        }

        /** Guest-physical addresses of the dirty pages, drained. */
        Set<Long> drain() {
            Set<Long> gpas = new TreeSet<>();
            bitmaps.forEach((r, b) -> {
                for (long w = 0; w < b.words(); w++) {
                    long bits = b.getAndClearWord(w);
                    while (bits != 0) {
                        long page = w * 64 + Long.numberOfTrailingZeros(bits);
                        gpas.add(r.gpaBase() + (page << DirtyBitmap.PAGE_SHIFT));
                        bits &= bits - 1;
                    }
                }
            });
            return gpas;
        }

        @Override
        public void close() {
            bitmaps.values().forEach(DirtyBitmap::close);
        }
    }

    @Test
    void writeLogRecordsExactlyTheWrittenPagesWhileStarted() {
        long hi = 4 * GIB;
        try (GuestMemory mem = GuestMemory.builder().region("lo", 0, MIB).region("hi", hi, MIB).build();
             TargetPages target = new TargetPages(mem)) {
            DirtyLogSource log = mem.writeLog();
            assertEquals("vmm-writes", log.name());

            mem.writeByte(Gpa.of(0x3000), (byte) 1);
            log.sync(target);
            assertEquals(Set.of(), target.drain(), "nothing is recorded before start");
            log.start();
            log.sync(target);
            assertEquals(Set.of(), target.drain(), "writes before start are not reported");

            mem.writeByte(Gpa.of(0x3005), (byte) 1);
            mem.writeLong(Gpa.of(0x6000 - 4), -1);        // spans pages 0x5000 and 0x6000
            mem.writeInt(Gpa.of(hi + 0x2ffc), 7);          // last int of page hi+0x2000
            mem.write(Gpa.of(0x10000), new byte[4096], 0, 4096);
            mem.fill(Gpa.of(0x20001), 8192, (byte) 3);    // 0x20000..0x22000
            mem.markWritten(Gpa.of(hi + 0x40000), 1);      // a device wrote through hostAddress()
            mem.readLong(Gpa.of(0x70000));                 // reads never dirty
            log.sync(target);
            assertEquals(Set.of(0x3000L, 0x5000L, 0x6000L, 0x10000L, 0x20000L, 0x21000L, 0x22000L,
                    hi + 0x2000, hi + 0x40000), target.drain());
            assertTrue(!target.bitmap(mem.region("hi")).get(0) && !target.bitmap(mem.region("lo")).get(4),
                    "nothing else is marked");

            log.sync(target);
            assertEquals(Set.of(), target.drain(), "sync drains: each write is reported once");

            mem.writeByte(Gpa.of(0x8000), (byte) 1);
            log.stop();
            log.sync(target);
            assertEquals(Set.of(0x8000L), target.drain(), "writes before stop are still handed over");
            mem.writeByte(Gpa.of(0x9000), (byte) 1);
            log.sync(target);
            assertEquals(Set.of(), target.drain(), "stop ends recording");
            log.stop();

            log.start();
            mem.writeByte(Gpa.of(0xa000), (byte) 1);
            log.sync(target);
            assertEquals(Set.of(0xa000L), target.drain(), "a restarted log records again");
            log.stop();
        }
    }

    @Test
    void syncOrsIntoWhatTheTargetAlreadyHas() {
        try (GuestMemory mem = GuestMemory.ofSize(MIB); TargetPages target = new TargetPages(mem)) {
            target.mark(Gpa.of(0x1000), 1);
            mem.writeLog().start();
            mem.writeByte(Gpa.of(0x2000), (byte) 1);
            mem.writeLog().sync(target);
            assertEquals(Set.of(0x1000L, 0x2000L), target.drain());
            mem.writeLog().stop();
        }
    }

    // ---- ownership ----

    @Test
    void closingFreesEveryFdAndMapping() throws Exception {
        GuestMemory.builder().region("leakcheck-warmup", 0, MIB).build().close();
        FdLeakCheck leaks = FdLeakCheck.start();
        for (int i = 0; i < 10; i++) {
            try (GuestMemory mem = GuestMemory.builder().region("leakcheck-lo", 0, MIB)
                    .region("leakcheck-hi", 4 * GIB, 2 * MIB).build()) {
                mem.writeLong(Gpa.of(4 * GIB + 8), i);
                assertTrue(mapsMention("ferry-leakcheck-hi"), "the region is mapped while open");
            }
        }
        // A build that fails halfway must close the regions it already made.
        assertThrows(IllegalArgumentException.class, () -> GuestMemory.builder().region("leakcheck-lo", 0, MIB)
                .region("leakcheck-hi", 0, MIB).build());
        leaks.assertNoLeaks();
        assertTrue(!mapsMention("ferry-leakcheck-"), "every region is unmapped");
    }

    @Test
    void closeTwiceIsHarmless() {
        GuestMemory mem = GuestMemory.ofSize(64 * KIB);
        mem.close();
        mem.close();
    }

    private static boolean mapsMention(String name) throws Exception {
        return Files.readAllLines(Path.of("/proc/self/maps")).stream().anyMatch(l -> l.contains(name));
    }

    // ---- digest ----

    @Test
    void digestFollowsContent() {
        try (GuestMemory a = GuestMemory.builder().region("lo", 0, 256 * KIB).region("hi", 4 * GIB, 64 * KIB).build();
             GuestMemory b = GuestMemory.builder().region("lo", 0, 256 * KIB).region("hi", 4 * GIB, 64 * KIB).build()) {
            for (GuestMemory m : new GuestMemory[] {a, b}) {
                for (long p = 0; p < 256 * KIB; p += 4096) {
                    m.writeLong(Gpa.of(p + 16), p * 31 + 7);
                }
                m.writeInt(Gpa.of(4 * GIB + 100), 0x55aa);
            }
            long same = a.digest();
            assertEquals(same, b.digest(), "equal content, equal digest");
            assertEquals(same, a.digest(), "the digest does not change by itself");

            b.writeByte(Gpa.of(0x1_2345), (byte) 1);
            assertNotEquals(same, b.digest(), "one byte changed in the first region");
            b.writeByte(Gpa.of(0x1_2345), (byte) 0);
            assertEquals(same, b.digest());

            b.writeByte(Gpa.of(4 * GIB + 64 * KIB - 1), (byte) 0x80);
            assertNotEquals(same, b.digest(), "one byte changed at the very end of the second region");
        }
    }

    @Test
    void pageSizeIsTheBitmapsPageSize() {
        assertEquals(Linux.PAGE_SIZE, 1L << DirtyBitmap.PAGE_SHIFT);
    }
}
