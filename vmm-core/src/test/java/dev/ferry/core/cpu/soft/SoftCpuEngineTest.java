package dev.ferry.core.cpu.soft;

import dev.ferry.core.memory.DirtyBitmap;
import dev.ferry.core.memory.DirtyPages;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.NativeMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;

import static dev.ferry.core.cpu.soft.SoftEngineFixture.MIB;
import static dev.ferry.core.cpu.soft.SoftEngineFixture.await;
import static dev.ferry.core.cpu.soft.SoftEngineFixture.awaitPagesWritten;
import static dev.ferry.core.cpu.soft.SoftEngineFixture.vcpuThreads;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The engine with real vCPU threads. Waits poll progress counters; nothing asserts on elapsed time. */
@Timeout(60)
class SoftCpuEngineTest {
    private final SoftWorkload workload = new SoftWorkload(3, 256 * MIB, 24 * MIB, 8 * MIB, 99);
    private GuestMemory memory;
    private SoftCpuEngine engine;
    private long threadsBefore;

    @BeforeEach
    void setUp() {
        threadsBefore = vcpuThreads();
        memory = GuestMemory.ofSize(32 * MIB);
        engine = new SoftCpuEngine(memory, workload);
    }

    @AfterEach
    void tearDown() {
        engine.close();
        memory.close();
        assertEquals(threadsBefore, vcpuThreads(), "vCPU threads left behind");
    }

    @Test
    void isCreatedPausedWithoutThreads() {
        assertEquals("soft", engine.name());
        assertEquals(3, engine.vcpuCount());
        assertFalse(engine.isRunning());
        assertEquals(threadsBefore, vcpuThreads());
        engine.pause();
        assertEquals(0, engine.pagesWritten());
        assertEquals(workload.pages(), SoftCpuEngine.verifyWorkingSet(memory, workload).zero());
    }

    @Test
    void pagesWrittenByTheVcpusVerify() throws Exception {
        engine.resume();
        assertTrue(engine.isRunning());
        assertEquals(threadsBefore + 3, vcpuThreads());
        awaitPagesWritten(engine, 3000);
        engine.pause();
        WorkingSetCheck c = SoftCpuEngine.verifyWorkingSet(memory, workload);
        assertTrue(c.intact(), c.toString());
        assertTrue(c.written() > 0 && c.written() <= engine.pagesWritten(), c.toString());
        assertEquals(engine.pagesWritten() * 4096, engine.bytesDirtied());
        List<SoftVcpuState> s = engine.snapshot();
        for (int v = 0; v < 3; v++) {
            assertTrue(s.get(v).writes() > 0, "vCPU " + v + " never ran");
            assertEquals(v, s.get(v).index());
        }
        assertTrue(NativeMemory.isZero(memory.hostAddress(new Gpa(0), 8 * MIB), 8 * MIB),
                "nothing below the working set is touched");
    }

    @Test
    void pauseReallyStopsWritesAndResumeContinues() throws Exception {
        engine.resume();
        awaitPagesWritten(engine, 2000);
        engine.pause();
        engine.pause(); // idempotent
        long written = engine.pagesWritten();
        List<SoftVcpuState> before = engine.snapshot();
        long digest = memory.digest();
        Thread.sleep(50); // a window in which a running vCPU would write ~3000 pages
        assertEquals(digest, memory.digest(), "guest memory changed while paused");
        assertEquals(written, engine.pagesWritten());
        assertEquals(threadsBefore + 3, vcpuThreads(), "pause parks threads, it does not end them");

        engine.resume();
        awaitPagesWritten(engine, written + 2000);
        engine.pause();
        List<SoftVcpuState> after = engine.snapshot();
        ContinuationCheck c = SoftCpuEngine.verifyContinuation(memory, workload, before, after);
        assertTrue(c.ok(), c.toString());
        assertTrue(SoftCpuEngine.verifyWorkingSet(memory, workload).intact());
    }

    @Test
    void manyPauseResumeCyclesKeepTheWorkloadConsistent() throws Exception {
        List<SoftVcpuState> start = engine.snapshot();
        for (int i = 0; i < 50; i++) {
            engine.resume();
            engine.resume(); // idempotent
            if (i % 10 == 0) {
                awaitPagesWritten(engine, engine.pagesWritten() + 100);
            }
            engine.pause();
        }
        ContinuationCheck c = SoftCpuEngine.verifyContinuation(memory, workload, start, engine.snapshot());
        assertTrue(c.ok(), c.toString());
        assertEquals(threadsBefore + 3, vcpuThreads());
    }

    @Test
    void everyWrittenPageReachesTheVmmWriteLog() throws Exception {
        memory.writeLog().start();
        engine.resume();
        awaitPagesWritten(engine, 2000);
        engine.pause();
        GuestRegion ram = memory.regions().get(0);
        try (DirtyBitmap log = new DirtyBitmap(ram.pages())) {
            memory.writeLog().sync(new DirtyPages() {
                @Override
                public DirtyBitmap bitmap(GuestRegion region) {
                    return log;
                }

                @Override
                public void mark(Gpa gpa, long length) {
                    throw new UnsupportedOperationException();
                }
            });
            long written = 0;
            for (long p = 0; p < workload.pages(); p++) {
                if (SoftCpuEngine.verifyPage(memory, workload, p).status() == PageCheck.Status.WRITTEN) {
                    written++;
                    assertTrue(log.get(workload.gpaOf(p) / 4096), "page " + p + " written but not logged");
                }
            }
            assertEquals(written, log.count());
        } finally {
            memory.writeLog().stop();
        }
    }

    @Test
    void throttleIsBoundedAndScalesTheRate() {
        assertEquals(0, engine.throttlePercentage());
        assertEquals(256.0 * MIB, engine.effectiveDirtyRate());
        engine.setThrottlePercentage(75);
        assertEquals(75, engine.throttlePercentage());
        assertEquals(64.0 * MIB, engine.effectiveDirtyRate());
        assertThrows(IllegalArgumentException.class, () -> engine.setThrottlePercentage(100));
        assertThrows(IllegalArgumentException.class, () -> engine.setThrottlePercentage(-1));
        assertEquals(75, engine.throttlePercentage());
    }

    @Test
    void aStoppedClockGrantsNoPages() throws Exception {
        engine.close();
        engine = new SoftCpuEngine(memory, workload, () -> 42L);
        long digest = memory.digest();
        engine.resume();
        await(() -> vcpuThreads() == threadsBefore + 3);
        engine.pause();
        assertEquals(0, engine.pagesWritten());
        assertEquals(digest, memory.digest());
    }

    @Test
    void aVcpuThatDiesIsReportedAndPauseDoesNotHang() throws Exception {
        engine.close();
        engine = new SoftCpuEngine(memory, workload, SoftEngineFixture.clockFailingAfter(200));
        engine.resume();
        await(() -> engine.failure().isPresent());
        engine.pause();
        Throwable f = engine.failure().orElseThrow();
        assertTrue(f.getMessage().startsWith("soft vCPU "), f.getMessage());
        assertEquals("test clock broke", f.getCause().getMessage());
        assertFalse(engine.isRunning(), "a dead vCPU stops the others");
        IllegalStateException e = assertThrows(IllegalStateException.class, engine::resume);
        assertTrue(e.getMessage().contains("cannot resume"), e.getMessage());
        assertTrue(SoftCpuEngine.verifyWorkingSet(memory, workload).intact());
    }

    @Test
    void closeEndsEveryThreadAndIsFinal() throws Exception {
        engine.resume();
        awaitPagesWritten(engine, 100);
        engine.close();
        assertEquals(threadsBefore, vcpuThreads());
        engine.close();
        engine.pause();
        assertThrows(IllegalStateException.class, engine::resume);
    }

    @Test
    void closeWhileRunningOrNeverStartedLeaksNothing() {
        try (GuestMemory m = GuestMemory.ofSize(16 * MIB)) {
            for (int i = 0; i < 5; i++) {
                SoftCpuEngine e = new SoftCpuEngine(m, SoftWorkload.of(4, 64 * MIB, 16 * MIB, i));
                if (i % 2 == 0) {
                    e.resume();
                }
                e.close();
            }
        }
        assertEquals(threadsBefore, vcpuThreads());
    }

    @Test
    void stateIsOnlyReadableWhilePaused() throws Exception {
        engine.resume();
        assertThrows(IllegalStateException.class, engine::snapshot);
        assertThrows(IllegalStateException.class, () -> engine.populate(0.1));
        engine.pause();
        assertNotEquals(0, engine.snapshot().size());
    }
}
