package dev.ferry.core.cpu.guest;

import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The verifier against the Java mirror of the guest. Runs forward, saves the record part-way,
 * and continues: the replay must accept that, including when the guest is paused at every one
 * of a step's stores. It must also catch every way a migration can go wrong: a corrupt or lost
 * page, a broken hash chain, a counter that went back, and a guest that resumed from a stale
 * record.
 */
class GuestVerifierTest {
    private static GuestMemory memoryFor(GuestParams params) {
        GuestMemory memory = GuestMemory.ofSize(params.workingSetEnd());
        params.write(memory);
        return memory;
    }

    private static void assertOk(GuestCheck check) {
        assertTrue(check.ok(), check.toString());
    }

    private static void assertProblem(GuestCheck check, String expected) {
        assertFalse(check.ok(), "expected a problem containing '" + expected + "'");
        assertTrue(check.problems().stream().anyMatch(p -> p.contains(expected)), check.toString());
    }

    /**
     * The boot parameters and the progress record are guest memory: a guest that overwrites them
     * with huge numbers gets a problem named at once, not a page bitmap sized by its number or a
     * replay of 2^60 steps.
     */
    @Test
    void hugeNumbersTheGuestWroteAreBoundedBeforeUse() {
        GuestParams params = GuestParams.of(5, 64, 8);
        try (GuestMemory memory = memoryFor(params)) {
            GuestMirror guest = GuestMirror.boot(memory);
            guest.run(100);
            GuestProgress saved = GuestProgress.read(memory);
            memory.writeLong(Gpa.of(GuestLayout.BOOT_PARAMS_GPA + 8L * 4), 1L << 36); // working-set pages
            GuestCheck check = org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(
                    java.time.Duration.ofSeconds(10), () -> GuestVerifier.verifyContinuation(memory, saved));
            assertProblem(check, "the boot parameters claim a working set of 68719476736 pages, more than the");

            params.write(memory);
            GuestProgress now = GuestProgress.read(memory);
            GuestProgress forged = new GuestProgress(saved.counter() + (1L << 60), now.rng(), now.hash(),
                    now.lastPageGpa());
            GuestCheck replay = org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(
                    java.time.Duration.ofSeconds(10),
                    () -> GuestVerifier.verifyContinuation(memory, params, saved, forged));
            assertProblem(replay, "steps since the saved one; a verification replays at most");
        }
    }

    @Test
    void continuationFromAMidwayRecordVerifies() {
        SplittableRandom random = new SplittableRandom(20240611);
        long[] sizes = {1, 2, 7, 64, 513, 4096};
        for (int trial = 0; trial < 40; trial++) {
            GuestParams params = GuestParams.of(random.nextLong(), sizes[trial % sizes.length], 1 + random.nextInt(50));
            try (GuestMemory memory = memoryFor(params)) {
                GuestMirror guest = GuestMirror.boot(memory);
                assertEquals(GuestStatus.STARTED, guest.bootStatus());
                long before = random.nextInt(3000);
                long after = random.nextInt(3000);
                guest.run(before);
                GuestProgress saved = GuestProgress.read(memory);
                assertEquals(guest.progress(), saved);
                assertEquals(before, saved.counter());
                guest.run(after);
                GuestCheck check = GuestVerifier.verifyContinuation(memory, saved);
                assertOk(check);
                assertEquals(after, check.stepsReplayed());
                assertOk(GuestVerifier.verifyFromBoot(memory));
            }
        }
    }

    @Test
    void aGuestPausedAtAnyStoreOfAStepVerifies() {
        for (long pages : new long[] {3, 4096}) {
            GuestParams params = GuestParams.of(pages * 31 + 5, pages, 8);
            try (GuestMemory memory = memoryFor(params)) {
                GuestMirror guest = GuestMirror.boot(memory);
                guest.run(20);
                GuestProgress saved = guest.progress();
                for (int stores = 0; stores <= GuestMirror.STORES_PER_STEP; stores++) {
                    guest.stepPartially(stores);
                    GuestProgress now = GuestProgress.read(memory);
                    assertEquals(guest.progress(), now, "paused after " + stores + " stores");
                    assertOk(GuestVerifier.verifyContinuation(memory, saved));
                    assertOk(GuestVerifier.verifyFromBoot(memory));
                    // a record saved mid-step is a valid switchover point; the vCPU finishes the step
                    GuestProgress midStep = now;
                    if (stores < GuestMirror.STORES_PER_STEP) {
                        guest.step();
                    }
                    guest.run(3);
                    assertOk(GuestVerifier.verifyContinuation(memory, midStep));
                }
            }
        }
    }

    @Test
    void aGuestThatReachedMaxStepsHasNoPageInFlight() {
        GuestParams params = GuestParams.of(7, 16, 4).withMaxSteps(50);
        try (GuestMemory memory = memoryFor(params)) {
            GuestMirror guest = GuestMirror.boot(memory);
            assertEquals(50, guest.run(1000));
            assertTrue(guest.done());
            assertThrows(IllegalStateException.class, guest::step);
            assertOk(GuestVerifier.verifyFromBoot(memory));
            // the page step 51 would pick must be exactly what the run left there, not "maybe in flight"
            long q = GuestAlgorithm.pick(guest.progress().rng() + GuestAlgorithm.GAMMA, params.workingSetPages());
            long host = memory.hostAddress(Gpa.of(params.gfnOf(q) * 4096), 4096);
            long stamp = GuestPage.stamp(host);
            GuestPage.writeStores(host, params.gfnOf(q), 51, params.seed(), 10);
            assertProblem(GuestVerifier.verifyFromBoot(memory), "page " + q);
            GuestPage.write(host, params.gfnOf(q), stamp, params.seed());
            assertOk(GuestVerifier.verifyFromBoot(memory));
        }
    }

    @Test
    void corruptPagesAreCaughtWhereverTheyAre() {
        GuestParams params = GuestParams.of(0xC0FFEE, 64, 16);
        try (GuestMemory memory = memoryFor(params)) {
            GuestMirror guest = GuestMirror.boot(memory);
            guest.run(300);
            GuestProgress saved = guest.progress();
            guest.run(40);
            long recent = (guest.progress().lastPageGpa() - params.workingSetBase()) / 4096;
            for (int offset : new int[] {0, 8, 16, 24, 2000, 4095}) {
                byte b = memory.readByte(Gpa.of(guest.progress().lastPageGpa() + offset));
                memory.writeByte(Gpa.of(guest.progress().lastPageGpa() + offset), (byte) (b ^ 0x04));
                assertProblem(GuestVerifier.verifyContinuation(memory, saved), "page " + recent + " ");
                memory.writeByte(Gpa.of(guest.progress().lastPageGpa() + offset), b);
            }
            assertOk(GuestVerifier.verifyContinuation(memory, saved));

            // a page no replayed step wrote: corrupt, or newer than the switchover
            long old = untouchedSince(params, saved, guest.progress());
            Gpa oldGpa = Gpa.of(params.gfnOf(old) * 4096);
            long word = memory.readLong(oldGpa.plus(1000));
            memory.writeLong(oldGpa.plus(1000), ~word);
            assertProblem(GuestVerifier.verifyContinuation(memory, saved), "byte offset 1000");
            memory.writeLong(oldGpa.plus(1000), word);
            long stamp = memory.readLong(oldGpa.plus(8));
            assertTrue(stamp > 0 && stamp <= saved.counter(), "page " + old + " stamp " + stamp);
            GuestPage.write(memory.hostAddress(oldGpa, 4096), params.gfnOf(old), saved.counter() + 1, params.seed());
            assertProblem(GuestVerifier.verifyContinuation(memory, saved), "newer than the saved counter");
        }
    }

    @Test
    void lostZeroedAndMisplacedPagesAreCaught() {
        GuestParams params = GuestParams.of(42, 32, 1);
        try (GuestMemory memory = memoryFor(params)) {
            GuestMirror guest = GuestMirror.boot(memory);
            guest.run(100);
            GuestProgress saved = guest.progress();
            byte[] before = new byte[(int) params.workingSetBytes()];
            memory.read(Gpa.of(params.workingSetBase()), before, 0, before.length);
            guest.run(64);
            // a page rewritten after the save, as a migration that missed its later writes leaves it
            long rewritten = -1;
            for (long p = 0; p < params.workingSetPages() && rewritten < 0; p++) {
                long stamp = memory.readLong(Gpa.of(params.gfnOf(p) * 4096 + 8));
                long oldStamp = ByteBuffer.wrap(before).order(ByteOrder.LITTLE_ENDIAN).getLong((int) p * 4096 + 8);
                if (stamp > saved.counter() && oldStamp != 0) {
                    rewritten = p;
                }
            }
            assertTrue(rewritten >= 0, "64 steps over 32 pages rewrote no page written before");
            Gpa page = Gpa.of(params.gfnOf(rewritten) * 4096);
            byte[] current = new byte[4096];
            memory.read(page, current, 0, 4096);
            memory.write(page, before, (int) rewritten * 4096, 4096);
            assertProblem(GuestVerifier.verifyContinuation(memory, saved), "but its last write in the replay was step");
            memory.write(page, current, 0, 4096);
            assertOk(GuestVerifier.verifyContinuation(memory, saved));

            Gpa now = Gpa.of(guest.progress().lastPageGpa());
            memory.read(now, current, 0, 4096);
            memory.fill(now, 4096, (byte) 0);
            assertProblem(GuestVerifier.verifyContinuation(memory, saved),
                    "is zero, but step " + guest.progress().counter());
            memory.write(now, current, 0, 4096);

            // a page copied to another address fails its magic
            long other = (now.raw() - params.workingSetBase()) / 4096 == 0 ? 1 : 0;
            Gpa otherGpa = Gpa.of(params.gfnOf(other) * 4096);
            byte[] saveOther = new byte[4096];
            memory.read(otherGpa, saveOther, 0, 4096);
            memory.write(otherGpa, current, 0, 4096);
            assertProblem(GuestVerifier.verifyContinuation(memory, saved), "header magic");
            memory.write(otherGpa, saveOther, 0, 4096);
            assertOk(GuestVerifier.verifyContinuation(memory, saved));
        }
    }

    @Test
    void aBrokenChainOrACounterThatWentBackIsCaught() {
        GuestParams params = GuestParams.of(5, 16, 2);
        try (GuestMemory memory = memoryFor(params)) {
            GuestMirror guest = GuestMirror.boot(memory);
            guest.run(200);
            GuestProgress saved = guest.progress();
            guest.run(50);
            GuestProgress now = guest.progress();

            GuestProgress badHash = new GuestProgress(now.counter(), now.rng(), now.hash() ^ 1, now.lastPageGpa());
            assertProblem(GuestVerifier.verifyContinuation(memory, params, saved, badHash), "hash chain broken");
            GuestProgress savedBadHash = new GuestProgress(saved.counter(), saved.rng(), saved.hash() + 1,
                    saved.lastPageGpa());
            assertProblem(GuestVerifier.verifyContinuation(memory, params, savedBadHash, now), "hash chain broken");

            // the hash in the record itself (slot of the current counter)
            Gpa slotHash = Gpa.of(GuestLayout.PROGRESS_GPA + 32 + 32 * (now.counter() & 1) + 16);
            memory.writeLong(slotHash, now.hash() ^ (1L << 40));
            assertProblem(GuestVerifier.verifyContinuation(memory, saved), "hash chain broken");
            memory.writeLong(slotHash, now.hash());

            assertProblem(GuestVerifier.verifyContinuation(memory, params, now, saved), "counter went back");
            GuestProgress skipped = new GuestProgress(now.counter() + 1, now.rng(), now.hash(), now.lastPageGpa());
            assertProblem(GuestVerifier.verifyContinuation(memory, params, saved, skipped), "did not continue");
            GuestProgress wrongLast = new GuestProgress(now.counter(), now.rng(), now.hash(), now.lastPageGpa() + 4096);
            assertProblem(GuestVerifier.verifyContinuation(memory, params, saved, wrongLast), "the replay says");
            assertOk(GuestVerifier.verifyContinuation(memory, params, saved, now));
        }
    }

    @Test
    void aGuestThatResumedFromAStaleRecordIsCaught() {
        GuestParams params = GuestParams.of(77, 256, 4);
        try (GuestMemory memory = memoryFor(params)) {
            GuestMirror guest = GuestMirror.boot(memory);
            guest.run(100);
            byte[] staleRecord = new byte[96];
            memory.read(Gpa.of(GuestLayout.PROGRESS_GPA), staleRecord, 0, staleRecord.length);
            GuestProgress saved = guest.progress();
            guest.run(150);
            // a migration that sent every page but an old copy of the record: the guest repeats steps 101..
            memory.write(Gpa.of(GuestLayout.PROGRESS_GPA), staleRecord, 0, staleRecord.length);
            GuestMirror repeated = GuestMirror.boot(memory);
            assertEquals(GuestStatus.RESUMED, repeated.bootStatus());
            repeated.run(20);
            assertProblem(GuestVerifier.verifyContinuation(memory, saved), "newer than the saved counter 100");
        }
    }

    @Test
    void theInFlightPageMustBeAPrefixOfTheStep() {
        GuestParams params = GuestParams.of(9, 4, 1);
        try (GuestMemory memory = memoryFor(params)) {
            GuestMirror guest = GuestMirror.boot(memory);
            guest.run(40); // every page written: the in-flight page has old content
            guest.stepPartially(200);
            assertOk(GuestVerifier.verifyFromBoot(memory));
            long q = GuestAlgorithm.pick(guest.progress().rng() + GuestAlgorithm.GAMMA, 4);
            Gpa page = Gpa.of(params.gfnOf(q) * 4096);
            // a word beyond the written prefix that is neither old nor new
            Gpa word = page.plus(8 * (3 + 300));
            long v = memory.readLong(word);
            memory.writeLong(word, v ^ 0xFF);
            assertProblem(GuestVerifier.verifyFromBoot(memory), "may be writing");
            memory.writeLong(word, v);
            // a stamp that says the step finished while its body did not
            long stamp = memory.readLong(page.plus(8));
            memory.writeLong(page.plus(8), guest.progress().counter() + 1);
            assertProblem(GuestVerifier.verifyFromBoot(memory), "finished writing it");
            memory.writeLong(page.plus(8), stamp);
            assertOk(GuestVerifier.verifyFromBoot(memory));
        }
    }

    @Test
    void progressRecordReadsInitialTornAndForeign() {
        GuestParams params = GuestParams.of(11, 8, 1);
        try (GuestMemory memory = memoryFor(params)) {
            assertEquals(GuestProgress.initial(params), GuestProgress.read(memory));
            assertOk(GuestVerifier.verifyFromBoot(memory));
            GuestMirror guest = GuestMirror.boot(memory);
            assertEquals(GuestProgress.initial(params), GuestProgress.read(memory));
            guest.run(5);
            Gpa counter = Gpa.of(GuestLayout.PROGRESS_GPA + 24);
            memory.writeLong(counter, 7);
            IllegalStateException torn = assertThrows(IllegalStateException.class, () -> GuestProgress.read(memory));
            assertTrue(torn.getMessage().contains("torn"), torn.getMessage());
            assertThrows(IllegalStateException.class, () -> GuestMirror.boot(memory), "the guest faults 0x85 here");
            memory.writeLong(counter, 5);
            GuestParams other = GuestParams.of(12, 8, 1);
            IllegalStateException foreign = assertThrows(IllegalStateException.class,
                    () -> GuestProgress.read(memory, other));
            assertTrue(foreign.getMessage().contains("seed"), foreign.getMessage());
            assertEquals(5, GuestMirror.boot(memory).progress().counter());
        }
    }

    @Test
    void paramsRoundTripAndRefuseWhatTheGuestRefuses() {
        GuestParams params = new GuestParams(-5, 0x400000, 1000, 3, 77);
        try (GuestMemory memory = GuestMemory.ofSize(8L << 20)) {
            params.write(memory);
            assertEquals(params, GuestParams.read(memory));
            assertEquals(GuestParams.MAGIC, memory.readLong(Gpa.of(0x1000)));
            assertEquals(GuestLayout.PROGRESS_GPA, memory.readLong(Gpa.of(0x1038)));
            memory.writeLong(Gpa.of(0x1008), 2);
            assertThrows(IllegalStateException.class, () -> GuestParams.read(memory));
        }
        assertThrows(IllegalArgumentException.class, () -> new GuestParams(1, 0x100000, 1, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> new GuestParams(1, 0x200800, 1, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> new GuestParams(1, 0x200000, 0, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> new GuestParams(1, 0x200000, 1, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new GuestParams(1, 0x200000, 1, 1, -1));
        assertTrue(GuestParams.of(1, 1, 1).withMaxSteps(3).done(3));
        assertFalse(GuestParams.of(1, 1, 1).done(Long.MAX_VALUE));
    }

    @Test
    void contentDependsOnSeedPageAndStamp() {
        assertNotEquals(GuestPage.bodyWord(600, 1, 1, 0), GuestPage.bodyWord(601, 1, 1, 0));
        assertNotEquals(GuestPage.bodyWord(600, 1, 1, 0), GuestPage.bodyWord(600, 2, 1, 0));
        assertNotEquals(GuestPage.bodyWord(600, 1, 1, 0), GuestPage.bodyWord(600, 1, 2, 0));
        assertNotEquals(GuestPage.bodyWord(600, 1, 1, 0), GuestPage.bodyWord(600, 1, 1, 1));
    }

    /**
     * A working-set page that an earlier step wrote, and that the steps after {@code saved} up to
     * {@code now} (and the next step) did not pick.
     */
    private static long untouchedSince(GuestParams params, GuestProgress saved, GuestProgress now) {
        boolean[] picked = new boolean[(int) params.workingSetPages()];
        long rng = saved.rng();
        for (long k = saved.counter(); k <= now.counter(); k++) {
            rng += GuestAlgorithm.GAMMA;
            picked[(int) GuestAlgorithm.pick(rng, params.workingSetPages())] = true;
        }
        rng = GuestProgress.initial(params).rng();
        for (long k = 1; k <= saved.counter(); k++) {
            rng += GuestAlgorithm.GAMMA;
            long p = GuestAlgorithm.pick(rng, params.workingSetPages());
            if (!picked[(int) p]) {
                return p;
            }
        }
        throw new AssertionError("every page written before the save was written again after it; "
                + "enlarge the working set");
    }
}
