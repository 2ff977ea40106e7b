package dev.ferry.core.cpu.soft;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.core.migration.MigrationRegistry;
import dev.ferry.core.migration.SaveEntry;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.testing.ByteArrayLoadStream;
import dev.ferry.core.testing.ByteArraySaveStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.util.List;

import static dev.ferry.core.cpu.soft.SoftEngineFixture.MIB;
import static dev.ferry.core.cpu.soft.SoftEngineFixture.awaitPagesWritten;
import static dev.ferry.core.cpu.soft.SoftEngineFixture.copyOf;
import static dev.ferry.core.cpu.soft.SoftEngineFixture.vcpuThreads;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Source engine → vCPU state through the "soft-vcpu" VmStateDescription → destination engine on a
 * copy of the source's RAM, which then continues the workload. The copy stands in for RAM
 * migration; the section loop stands in for the migration engine.
 */
@Timeout(60)
class SoftMigrationTest {
    private final SoftWorkload workload = new SoftWorkload(2, 256 * MIB, 16 * MIB, 4 * MIB, 0xFE77);
    private GuestMemory srcMemory;
    private SoftCpuEngine src;
    private final MigrationRegistry srcRegistry = new MigrationRegistry();
    private GuestMemory dstMemory;
    private SoftCpuEngine dst;
    private long threadsBefore;

    @BeforeEach
    void runSourceToSwitchover() throws Exception {
        threadsBefore = vcpuThreads();
        srcMemory = GuestMemory.ofSize(32 * MIB);
        src = new SoftCpuEngine(srcMemory, workload);
        src.registerMigration(srcRegistry);
        src.populate(0.25);
        src.resume();
        awaitPagesWritten(src, 3000);
        src.pause();
        dstMemory = copyOf(srcMemory);
    }

    @AfterEach
    void tearDown() {
        if (dst != null) {
            dst.close();
        }
        src.close();
        dstMemory.close();
        srcMemory.close();
        assertEquals(threadsBefore, vcpuThreads(), "vCPU threads left behind");
    }

    @Test
    void registersOneCpuSectionPerVcpu() {
        List<SaveEntry> entries = srcRegistry.entries();
        assertEquals(2, entries.size());
        for (int v = 0; v < 2; v++) {
            SaveEntry e = entries.get(v);
            assertEquals("cpu-soft", e.idstr());
            assertEquals(v, e.instanceId());
            assertEquals(1, e.version());
            assertEquals(MigrationPriority.CPU, e.priority());
        }
        assertEquals(List.of("index", "seed", "vcpus", "working_set", "working_set_base", "rng", "writes",
                        "bytes_dirtied"),
                ((List<?>) ((SaveEntry.VmState<?>) entries.get(0)).describe().get("fields")).stream()
                        .map(f -> ((java.util.Map<?, ?>) f).get("name")).toList());
    }

    @Test
    void destinationContinuesExactlyWhereTheSourceStopped() throws Exception {
        List<SoftVcpuState> saved = src.snapshot();
        byte[] stream = save(srcRegistry);
        dst = new SoftCpuEngine(dstMemory, workload.withDirtyRate(128 * MIB));
        load(dst, stream);
        List<SoftVcpuState> loaded = dst.snapshot();
        for (int v = 0; v < 2; v++) {
            assertEquals(saved.get(v).rng(), loaded.get(v).rng());
            assertEquals(saved.get(v).writes(), loaded.get(v).writes());
            assertEquals(saved.get(v).bytesDirtied(), loaded.get(v).bytesDirtied());
        }
        assertEquals(srcMemory.digest(), dstMemory.digest());

        dst.resume();
        awaitPagesWritten(dst, src.pagesWritten() + 3000);
        dst.pause();
        ContinuationCheck c = SoftCpuEngine.verifyContinuation(dstMemory, workload, saved, dst.snapshot());
        assertTrue(c.ok(), c.toString());
        assertEquals(dst.pagesWritten() - src.pagesWritten(), c.stepsReplayed());
        assertTrue(SoftCpuEngine.verifyWorkingSet(dstMemory, workload).intact());
    }

    @Test
    void aDestinationStartedFromAWrongRngStateIsCaught() throws Exception {
        List<SoftVcpuState> saved = src.snapshot();
        dst = new SoftCpuEngine(dstMemory, workload);
        load(dst, save(srcRegistry));
        dst.state(1).forceRng(SplitMix64.step(saved.get(1).rng())); // one step skipped
        dst.resume();
        awaitPagesWritten(dst, src.pagesWritten() + 1000);
        dst.pause();
        ContinuationCheck c = SoftCpuEngine.verifyContinuation(dstMemory, workload, saved, dst.snapshot());
        assertFalse(c.ok());
        assertTrue(c.problems().stream().anyMatch(p -> p.startsWith("vCPU 1: replaying")
                && p.contains("did not continue from the saved position")), c.toString());
        assertTrue(c.problems().stream().noneMatch(p -> p.startsWith("vCPU 0")), c.toString());
    }

    @Test
    void aLostPageOnTheDestinationIsCaught() throws Exception {
        List<SoftVcpuState> saved = src.snapshot();
        dst = new SoftCpuEngine(dstMemory, workload);
        load(dst, save(srcRegistry));
        dst.resume();
        awaitPagesWritten(dst, src.pagesWritten() + 1000);
        dst.pause();
        List<SoftVcpuState> now = dst.snapshot();
        // the page of vCPU 0's last step, as if RAM migration had lost it
        SoftVcpuState last = now.get(0);
        long page = workload.partitionStart(0) + SplitMix64.pick(last.rng(), workload.partitionSize(0));
        NativeMemory.copy(srcMemory.hostAddress(new dev.ferry.core.memory.Gpa(workload.gpaOf(page)), 4096),
                dstMemory.hostAddress(new dev.ferry.core.memory.Gpa(workload.gpaOf(page)), 4096), 4096);
        ContinuationCheck c = SoftCpuEngine.verifyContinuation(dstMemory, workload, saved, now);
        assertFalse(c.ok());
        assertTrue(c.problems().get(0).startsWith("vCPU 0 step " + last.writes() + ": page " + page), c.toString());
    }

    @Test
    void loadingIntoAnotherWorkloadFailsAndChangesNothing() throws Exception {
        byte[] stream = save(srcRegistry);
        SoftWorkload otherSeed = new SoftWorkload(2, 256 * MIB, 16 * MIB, 4 * MIB, 0xFE78);
        dst = new SoftCpuEngine(dstMemory, otherSeed);
        MigrationException e = assertThrows(MigrationException.class, () -> load(dst, stream));
        assertEquals("field seed: soft workload mismatch on vCPU 0: the source ran with seed 0xfe77, this engine runs"
                + " with seed 0xfe78; start the destination with the source's soft workload (seed, vcpus, working set)",
                e.getMessage());
        assertEquals(0, dst.state(0).writes());
        dst.close();

        dst = new SoftCpuEngine(dstMemory, new SoftWorkload(2, 256 * MIB, 8 * MIB, 4 * MIB, 0xFE77));
        e = assertThrows(MigrationException.class, () -> load(dst, stream));
        assertTrue(e.getMessage().contains("working_set 0x1000000, this engine runs with working_set 0x800000"),
                e.getMessage());
    }

    @Test
    void stateCannotBeLoadedIntoRunningVcpus() throws Exception {
        byte[] stream = save(srcRegistry);
        dst = new SoftCpuEngine(dstMemory, workload);
        dst.resume();
        MigrationException e = assertThrows(MigrationException.class, () -> load(dst, stream));
        assertTrue(e.getMessage().contains("loaded while the vCPUs run"), e.getMessage());
    }

    @Test
    void hostileStreamValuesAreRefused() throws Exception {
        ByteArraySaveStream out = new ByteArraySaveStream();
        SoftVcpuState s = SoftVcpuState.of(workload, 0, 1, 5);
        SoftVcpuState.VMSTATE.save(s, out);
        byte[] bytes = out.toByteArray();
        bytes[bytes.length - 1] ^= 1; // bytes_dirtied no longer 5 pages
        dst = new SoftCpuEngine(dstMemory, workload);
        MigrationException e = assertThrows(MigrationException.class,
                () -> SoftVcpuState.VMSTATE.load(dst.state(0), new ByteArrayLoadStream(bytes), 1));
        assertTrue(e.getMessage().contains("bytes dirtied does not match 5 page writes"), e.getMessage());
        byte[] wrongIndex = out.toByteArray();
        wrongIndex[3] = 1;
        e = assertThrows(MigrationException.class,
                () -> SoftVcpuState.VMSTATE.load(dst.state(0), new ByteArrayLoadStream(wrongIndex), 1));
        assertTrue(e.getMessage().contains("stream carries vCPU 1 for soft vCPU 0"), e.getMessage());
    }

    /** Each section as the engine frames it, reduced to: idstr, instance, version, then the state. */
    private static byte[] save(MigrationRegistry registry) throws IOException {
        ByteArraySaveStream out = new ByteArraySaveStream();
        for (SaveEntry e : registry.entries()) {
            SaveEntry.VmState<?> vs = (SaveEntry.VmState<?>) e;
            byte[] id = vs.idstr().getBytes(java.nio.charset.StandardCharsets.US_ASCII);
            out.putU8(id.length);
            out.putBytes(id);
            out.putBe32(vs.instanceId());
            out.putBe32(vs.version());
            vs.save(out);
        }
        return out.toByteArray();
    }

    private static void load(SoftCpuEngine engine, byte[] stream) throws IOException, MigrationException {
        MigrationRegistry registry = new MigrationRegistry();
        engine.registerMigration(registry);
        ByteArrayLoadStream in = new ByteArrayLoadStream(stream);
        while (in.remaining() > 0) {
            byte[] id = new byte[in.getU8()];
            in.getBytes(id, 0, id.length);
            String idstr = new String(id, java.nio.charset.StandardCharsets.US_ASCII);
            int instance = in.getBe32();
            int version = in.getBe32();
            SaveEntry.VmState<?> target = registry.entries().stream()
                    .filter(x -> x.idstr().equals(idstr) && x.instanceId() == instance)
                    .map(x -> (SaveEntry.VmState<?>) x).findFirst()
                    .orElseThrow(() -> new MigrationException("unknown section " + idstr + " " + instance));
            target.load(in, version);
        }
    }
}
