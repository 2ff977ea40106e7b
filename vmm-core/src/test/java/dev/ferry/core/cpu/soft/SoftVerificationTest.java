package dev.ferry.core.cpu.soft;

import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.sys.NativeMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Page layout and the static verification API, on pages written by hand (no threads). */
class SoftVerificationTest {
    private static final long MIB = 1L << 20;
    private final SoftWorkload workload = new SoftWorkload(4, 64 * MIB, 8 * MIB, 4 * MIB, 0xC0FFEE);
    private GuestMemory memory;
    private WorkingSet ws;

    @BeforeEach
    void setUp() {
        memory = GuestMemory.ofSize(16 * MIB);
        ws = new WorkingSet(memory, workload);
    }

    @AfterEach
    void tearDown() {
        memory.close();
    }

    private void write(long page, long stamp) {
        SoftPage.write(ws.host(page), ws.gfn(page), stamp, workload.ownerOf(page), workload.seed());
    }

    @Test
    void writtenPagesVerifyAndZeroPagesAreValid() {
        long page = workload.partitionStart(2) + 5;
        write(page, 17);
        PageCheck c = SoftCpuEngine.verifyPage(memory, workload, page);
        assertEquals(PageCheck.Status.WRITTEN, c.status(), String.valueOf(c.problem()));
        assertEquals(17, c.stamp());
        assertEquals(2, c.vcpu());
        assertEquals(4 * MIB + page * 4096, c.gpa());
        assertEquals(SoftPage.MAGIC ^ ((4 * MIB) / 4096 + page), memory.readLong(new Gpa(c.gpa())));
        assertEquals(PageCheck.Status.ZERO, SoftCpuEngine.verifyPage(memory, workload, page + 1).status());
        assertTrue(SoftCpuEngine.verifyPage(memory, workload, page + 1).valid());
    }

    @Test
    void contentDependsOnSeedPageAndStamp() {
        write(0, 1);
        write(1, 1);
        long body0 = NativeMemory.getLong(ws.host(0) + 1000);
        long body1 = NativeMemory.getLong(ws.host(1) + 1000);
        write(0, 2);
        assertNotEquals(body0, body1);
        assertNotEquals(body0, NativeMemory.getLong(ws.host(0) + 1000));
        assertFalse(NativeMemory.isZero(ws.host(0) + 24, 32));
    }

    @Test
    void everyCorruptedByteIsDetected() {
        long page = 100;
        write(page, 3);
        long host = ws.host(page);
        for (int offset : new int[] {0, 7, 8, 16, 23, 24, 2000, 4095}) {
            byte orig = NativeMemory.getByte(host + offset);
            NativeMemory.putByte(host + offset, (byte) (orig ^ 0x10));
            PageCheck c = SoftCpuEngine.verifyPage(memory, workload, page);
            assertEquals(PageCheck.Status.CORRUPT, c.status(), "flip at byte " + offset);
            assertTrue(c.problem().startsWith("page 100 (gpa 0x464000): "), c.problem());
            NativeMemory.putByte(host + offset, orig);
        }
        assertEquals(PageCheck.Status.WRITTEN, SoftCpuEngine.verifyPage(memory, workload, page).status());
        NativeMemory.putByte(host + 2000, (byte) ~NativeMemory.getByte(host + 2000));
        assertTrue(SoftCpuEngine.verifyPage(memory, workload, page).problem().contains("byte offset 2000"));
    }

    @Test
    void aPageAtTheWrongAddressOrFromAnotherPartitionIsCorrupt() {
        write(10, 1);
        NativeMemory.copy(ws.host(10), ws.host(11), 4096);
        assertTrue(SoftCpuEngine.verifyPage(memory, workload, 11).problem().contains("header magic"));
        long page = workload.partitionStart(1);
        SoftPage.write(ws.host(page), ws.gfn(page), 1, 0, workload.seed());
        assertTrue(SoftCpuEngine.verifyPage(memory, workload, page).problem()
                .contains("written by vCPU 0 but it lies in vCPU 1's partition"));
    }

    @Test
    void aPageOfAnotherSeedIsCorrupt() {
        write(10, 1);
        SoftWorkload other = new SoftWorkload(4, 64 * MIB, 8 * MIB, 4 * MIB, 0xC0FFEF);
        assertEquals(PageCheck.Status.CORRUPT, SoftCpuEngine.verifyPage(memory, other, 10).status());
    }

    @Test
    void workingSetScanCountsAndFindsTheFirstCorruptPage() {
        for (long p = 0; p < 300; p += 3) {
            write(p, p + 1);
        }
        WorkingSetCheck ok = SoftCpuEngine.verifyWorkingSet(memory, workload);
        assertEquals(new WorkingSetCheck(2048, 100, 1948, 0, null), ok);
        assertTrue(ok.intact());
        NativeMemory.putByte(ws.host(1500) + 9, (byte) 1);
        NativeMemory.putByte(ws.host(2047) + 4000, (byte) 1);
        WorkingSetCheck bad = SoftCpuEngine.verifyWorkingSet(memory, workload);
        assertFalse(bad.intact());
        assertEquals(2, bad.corrupt());
        assertEquals(1500, bad.firstCorrupt().page());
    }

    @Test
    void populateWritesAboutTheFractionAsValidStampZeroPages() {
        try (SoftCpuEngine engine = new SoftCpuEngine(memory, workload)) {
            assertEquals(0, engine.populate(0));
            long n = engine.populate(0.5);
            assertTrue(n > 2048 * 0.4 && n < 2048 * 0.6, n + " of 2048 pages");
            WorkingSetCheck c = SoftCpuEngine.verifyWorkingSet(memory, workload);
            assertEquals(new WorkingSetCheck(2048, n, 2048 - n, 0, null), c);
            assertEquals(0, engine.pagesWritten(), "populate is not the workload's progress");
            assertEquals(2048, engine.populate(1.0));
            assertEquals(2048, SoftCpuEngine.verifyWorkingSet(memory, workload).written());
            assertEquals(0, SoftCpuEngine.verifyPage(memory, workload, 77).stamp());
            assertThrows(IllegalArgumentException.class, () -> engine.populate(1.5));
        }
    }
}
