package dev.ferry.vfio.migration;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.DirtyBitmap;
import dev.ferry.core.memory.DirtyPages;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.migration.testing.IdleCpus;
import dev.ferry.vfio.device.GuestDmaSpace;
import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The DMA log reports exactly the guest pages the device wrote, in whatever region and however
 * the ranges had to be merged; after a REPORT error, and for a device without DMA logging, every
 * sync reports all guest RAM, and says so once.
 */
class VfioDmaLogTest {
    static final long PAGE = 4096;
    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    /** Two regions with a gap and an odd start: r0 [0, 64K), r1 [76K, 588K) — pages 19 to 146. */
    private Machine machine() {
        GuestMemory mem = GuestMemory.builder().region("r0", 0, 64 << 10).region("r1", 19 * PAGE, 512 << 10).build();
        Machine m = new Machine("vm", mem, new IdleCpus(true), RunState.RUNNING);
        open.add(m);
        return m;
    }

    private DmaWritingVf vf(Machine m, String flags) {
        DmaWritingVf vf = new DmaWritingVf("vf0", EmulatedVfSpec.parse(flags + ",state=64K"),
                new GuestDmaSpace(m.memory()), 0, false);
        m.addDevice(vf);
        return vf;
    }

    /** The migration's bitmaps, one per region. */
    static final class Bitmaps implements DirtyPages, AutoCloseable {
        final Map<GuestRegion, DirtyBitmap> maps = new HashMap<>();
        final GuestMemory memory;

        Bitmaps(GuestMemory memory) {
            this.memory = memory;
            for (GuestRegion r : memory.regions()) {
                maps.put(r, new DirtyBitmap(r.pages()));
            }
        }

        @Override
        public DirtyBitmap bitmap(GuestRegion region) {
            return maps.get(region);
        }

        @Override
        public void mark(Gpa gpa, long length) {
            GuestRegion r = memory.regionFor(gpa.raw(), length);
            maps.get(r).markBytes(gpa.raw() - r.gpaBase(), length);
        }

        /** Dirty pages as guest-physical page numbers; clears them. */
        TreeSet<Long> drain() {
            TreeSet<Long> pages = new TreeSet<>();
            for (GuestRegion r : memory.regions()) {
                DirtyBitmap b = maps.get(r);
                for (long p = 0; p < r.pages(); p++) {
                    if (b.get(p)) {
                        pages.add(r.gpaBase() / PAGE + p);
                    }
                }
                b.clearAll();
            }
            return pages;
        }

        long total() {
            return memory.regions().stream().mapToLong(GuestRegion::pages).sum();
        }

        @Override
        public void close() {
            maps.values().forEach(DirtyBitmap::close);
        }
    }

    private static final long[] WRITTEN = {0, 5, 15, 19, 19 + 44, 19 + 63, 19 + 64, 19 + 127};

    private static TreeSet<Long> written() {
        TreeSet<Long> s = new TreeSet<>();
        for (long p : WRITTEN) {
            s.add(p);
        }
        return s;
    }

    private void assertReportsExactlyWhatWasWritten(Machine m, DmaWritingVf vf, VfioDmaLog log) {
        Bitmaps target = new Bitmaps(m.memory());
        open.add(target);
        log.start();
        log.sync(target);
        assertEquals(new TreeSet<Long>(), target.drain(), "nothing written yet");
        long v = 1;
        for (long p : WRITTEN) {
            vf.dmaWrite(p * PAGE + 8 * (p % 7), v++);
        }
        log.sync(target);
        assertEquals(written(), target.drain());
        log.sync(target);
        assertEquals(new TreeSet<Long>(), target.drain(), "a report reads and clears");
        vf.dmaWrite(19 * PAGE + 100 * PAGE, 42);
        log.sync(target);
        assertEquals(new TreeSet<>(List.of(119L)), target.drain());
        log.stop();
        log.stop();
    }

    @Test
    void reportsExactlyThePagesTheDeviceWrote() {
        Machine m = machine();
        DmaWritingVf vf = vf(m, "stop-copy,p2p");
        VfioMigration mig = VfioMigration.attach(m, vf);
        assertReportsExactlyWhatWasWritten(m, vf, mig.dmaLog());
        assertTrue(mig.stats().dmaSyncs() >= 4);
        assertEquals(9, mig.stats().dmaDirtyPages());
    }

    @Test
    void rangesAreTheGuestRamRegions() {
        Machine m = machine();
        VfioMigration mig = VfioMigration.attach(m, vf(m, "stop-copy"));
        mig.dmaLog().start();
        assertEquals(List.of(new IovaRange(0, 64 << 10), new IovaRange(19 * PAGE, 512 << 10)), mig.dmaLog().ranges());
        mig.dmaLog().stop();
        assertEquals(List.of(), mig.dmaLog().ranges());
    }

    /** One range over both regions: r1's bits start at bit 19 of the report, not on a word. */
    @Test
    void mergedRangesStillReportEachRegionsPages() {
        Machine m = machine();
        DmaWritingVf vf = vf(m, "stop-copy,p2p");
        VfioMigration mig = VfioMigration.attach(m, vf);
        VfioDmaLog merged = new VfioDmaLog(vf, new Object(), m.memory(), new VfioMigrationStats("vf0",
                dev.ferry.vfio.uapi.VfioDeviceState.RUNNING, System::nanoTime), true, 1);
        merged.start();
        assertEquals(List.of(new IovaRange(0, (19 << 12) + (512 << 10))), merged.ranges());
        merged.stop();
        assertReportsExactlyWhatWasWritten(m, vf, merged);
        mig.close();
    }

    @Test
    void afterAFailedReportEverythingIsDirtyWithOneWarning() {
        Machine m = machine();
        DmaWritingVf vf = vf(m, "stop-copy,p2p");
        VfioMigration mig = VfioMigration.attach(m, vf);
        Bitmaps target = new Bitmaps(m.memory());
        open.add(target);
        VfioDmaLog log = mig.dmaLog();
        log.start();
        vf.dmaWrite(3 * PAGE, 1);
        // the log breaks behind our back: the next REPORT fails and the pages it held are gone
        try {
            vf.dmaLoggingStop();
        } catch (dev.ferry.vfio.device.VfioException e) {
            throw new AssertionError(e);
        }
        for (int i = 0; i < 3; i++) {
            log.sync(target);
            assertEquals(target.total(), target.drain().size(), "sync " + i + " reports all guest RAM");
        }
        assertTrue(log.allDirty());
        assertEquals(1, mig.stats().warnings().size(), mig.stats().warnings()::toString);
        assertTrue(mig.stats().warnings().get(0).contains("vf0: GET DMA_LOGGING_REPORT: EINVAL"),
                mig.stats().warnings()::toString);
        log.stop();
        log.start();
        assertFalse(log.allDirty(), "a new migration tracks again");
        log.sync(target);
        assertEquals(new TreeSet<Long>(), target.drain());
        log.stop();
    }

    @Test
    void aDeviceWithoutDmaLoggingDirtiesAllGuestRamOnEverySync() {
        Machine m = machine();
        VfioMigration mig = VfioMigration.attach(m, vf(m, "stop-copy,p2p,no-dma-log"));
        Bitmaps target = new Bitmaps(m.memory());
        open.add(target);
        VfioDmaLog log = mig.dmaLog();
        log.start();
        for (int i = 0; i < 3; i++) {
            log.sync(target);
            assertEquals(target.total(), target.drain().size(), "sync " + i + " reports all guest RAM");
        }
        log.stop();
        assertEquals(1, mig.stats().warnings().size(), "warned once, at attach");
        assertEquals(3 * target.total(), mig.stats().dmaDirtyPages());
    }

    @Test
    void rangesMergeAcrossTheSmallestGapsToFitTheKernelsLimit() {
        List<IovaRange> in = new ArrayList<>();
        for (int i = 0; i < 300; i++) {
            // gaps grow with i, so the first ones merge first
            in.add(new IovaRange((long) i * i * PAGE + i * 2 * PAGE, PAGE));
        }
        List<IovaRange> out = DmaLoggingRanges.of(in, PAGE, 256);
        assertEquals(256, out.size());
        for (int i = 0; i + 1 < out.size(); i++) {
            assertTrue(out.get(i).end() < out.get(i + 1).iova(), "sorted and apart: " + out.get(i));
        }
        for (IovaRange r : in) {
            assertTrue(out.stream().anyMatch(o -> o.iova() <= r.iova() && r.end() <= o.end()), "covered: " + r);
        }
        // the 44 merges took the 44 smallest gaps, all at the low end
        assertEquals(0, out.get(0).iova());
        assertEquals(in.get(44).end(), out.get(0).end());
        assertEquals(in.get(299), out.get(255));
    }

    @Test
    void rangesAreAlignedAndOverlapsJoined() {
        List<IovaRange> out = DmaLoggingRanges.of(List.of(new IovaRange(0x2100, 0x100), new IovaRange(0x1000, 0x1800),
                new IovaRange(0x9000, 0x1000)), PAGE, 256);
        assertEquals(List.of(new IovaRange(0x1000, 0x2000), new IovaRange(0x9000, 0x1000)), out);
    }
}
