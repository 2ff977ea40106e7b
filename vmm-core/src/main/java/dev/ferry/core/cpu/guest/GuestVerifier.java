package dev.ferry.core.cpu.guest;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.PageResidency;

import java.util.ArrayList;
import java.util.List;

/**
 * Proves that ferry-guest continued exactly from a saved progress record: after a migration,
 * from the record as it stood at switchover to the record the destination shows now. It replays
 * the guest's steps in Java (the {@link GuestAlgorithm}) and checks three things:
 * <ol>
 *   <li>the counter went on: {@code now.counter >= saved.counter}, and never beyond max steps;</li>
 *   <li>the chain is unbroken: replaying {@code now - saved} steps from the saved RNG state and
 *       hash gives exactly the current record's RNG state, hash and last page. The guest
 *       neither skipped nor repeated a step, and it started from the saved position;</li>
 *   <li>memory matches: every page a replayed step wrote holds the content of the last such
 *       step. Every other working-set page is zero or holds a stamp no newer than the saved
 *       counter. This is the soft engine's {@code verifyContinuation}.</li>
 * </ol>
 * A vCPU can stop at any instruction, so the verifier relies only on what holds at every
 * instruction boundary (with {@code c} the record's counter; this is the same text as in
 * {@code ferry_guest.h}):
 * <pre>
 *   R1  slot[c % 2] holds exactly { c, rng_c, hash_c, gpa of step c's page } (for c = 0:
 *       { 0, rng_0, hash_0, 0 }).
 *   R2  every page of the working set holds the content of the last step &lt;= c that picked it,
 *       or is zero if no step picked it. The one exception is the in-flight page described in R3.
 *   R3  unless the guest is done (max_steps != 0 and c &gt;= max_steps), the page q that step c+1
 *       picks may be partly written. Either its stamp word already reads c+1, and then the whole
 *       page is step c+1's content. Or its stamp word still holds the old stamp (0 if the page
 *       was never written): then w[2] is 0, w[0] is the old or the new magic word, and the body
 *       is step c+1's words up to some index followed by the old content's words.
 * </pre>
 * So both records can be read while the guest is paused anywhere. The saved one can also be
 * read on the destination after RAM has loaded and before the vCPU resumes, since RAM at
 * switchover is exactly what arrived. The source's step in flight at switchover is the first
 * replayed step; the destination's vCPU finishes it from its migrated registers.
 *
 * <p>Reads memory only, so the guest must stay paused for the duration of the check. Pages that
 * the memfd never backed count as zero and are not touched ({@link PageResidency}). Runs on the
 * caller's thread. The cost is one pass over the replayed steps and one over the working set.
 */
public final class GuestVerifier {
    /** Largest working set the verifier's page bitmap handles (256 TiB). */
    static final long MAX_VERIFIABLE_PAGES = 1L << 36;
    /** Most steps one verification replays (a guest writing a page per 100 ns runs ~2 hours for it). */
    static final long MAX_REPLAY_STEPS = 1L << 36;

    private GuestVerifier() {
    }

    /** Verifies from the record the guest starts with: every page must be exactly what the run so far wrote. */
    public static GuestCheck verifyFromBoot(GuestMemory memory) {
        GuestParams params = GuestParams.read(memory);
        return verifyContinuation(memory, params, GuestProgress.initial(params), GuestProgress.read(memory, params));
    }

    /** Reads the boot parameters and the current record from {@code memory}, then verifies from {@code saved}. */
    public static GuestCheck verifyContinuation(GuestMemory memory, GuestProgress saved) {
        GuestParams params = GuestParams.read(memory);
        return verifyContinuation(memory, params, saved, GuestProgress.read(memory, params));
    }

    /**
     * Verifies that the guest {@code params} describe went from {@code saved} to {@code now}
     * exactly as its program does, and that {@code memory} holds what those steps wrote.
     * {@code now} must be the record of {@code memory}, read while the guest is paused.
     */
    public static GuestCheck verifyContinuation(GuestMemory memory, GuestParams params, GuestProgress saved,
                                                GuestProgress now) {
        Problems problems = new Problems();
        long from = saved.counter();
        long to = now.counter();
        if (Long.compareUnsigned(to, from) < 0) {
            problems.add("counter went back: " + Long.toUnsignedString(from) + " saved, " + Long.toUnsignedString(to)
                    + " now");
            return problems.check(0);
        }
        if (params.maxSteps() != 0 && Long.compareUnsigned(to, params.maxSteps()) > 0) {
            problems.add("counter " + Long.toUnsignedString(to) + " is past max steps " + params.maxSteps());
        }
        long steps = to - from;
        long pages = params.workingSetPages();
        if (pages > MAX_VERIFIABLE_PAGES) {
            throw new IllegalArgumentException("ferry-guest verifier: working set of " + pages
                    + " pages is larger than " + MAX_VERIFIABLE_PAGES);
        }
        // The parameters and the record live in guest memory, which the guest can overwrite:
        // both numbers are bounded before they size the page bitmap or the replay.
        if (pages > memory.totalSize() / GuestPage.SIZE) {
            problems.add("the boot parameters claim a working set of " + pages + " pages, more than the "
                    + memory.totalSize() / GuestPage.SIZE + " pages of guest RAM");
            return problems.check(0);
        }
        if (Long.compareUnsigned(steps, MAX_REPLAY_STEPS) > 0) {
            problems.add("the record's counter moved " + Long.toUnsignedString(steps) + " steps since the saved one;"
                    + " a verification replays at most " + MAX_REPLAY_STEPS);
            return problems.check(0);
        }

        long rng = saved.rng();
        long hash = saved.hash();
        long last = saved.lastPageGpa();
        for (long k = from + 1; k != to + 1; k++) {
            rng += GuestAlgorithm.GAMMA;
            long gfn = params.gfnOf(GuestAlgorithm.pick(rng, pages));
            hash = GuestAlgorithm.chain(hash, GuestAlgorithm.tag(gfn, k));
            last = gfn * GuestPage.SIZE;
        }
        if (rng != now.rng()) {
            problems.add("replaying " + steps + " steps from the saved RNG state 0x" + Long.toHexString(saved.rng())
                    + " gives 0x" + Long.toHexString(rng) + ", the record has 0x" + Long.toHexString(now.rng())
                    + ": the guest did not continue from the saved position");
            return problems.check(steps);
        }
        if (hash != now.hash()) {
            problems.add("hash chain broken: replaying " + steps + " steps from the saved hash 0x"
                    + Long.toHexString(saved.hash()) + " gives 0x" + Long.toHexString(hash) + ", the record has 0x"
                    + Long.toHexString(now.hash()));
        }
        if (last != now.lastPageGpa()) {
            problems.add("the record says step " + Long.toUnsignedString(to) + " wrote gpa 0x"
                    + Long.toHexString(now.lastPageGpa()) + ", the replay says 0x" + Long.toHexString(last));
        }

        long[] seen = new long[(int) ((pages + 63) >>> 6)];
        long inFlight = params.done(to) ? -1 : GuestAlgorithm.pick(now.rng() + GuestAlgorithm.GAMMA, pages);
        long inFlightOldStamp = -1;
        rng = now.rng();
        for (long k = to; k != from; k--, rng -= GuestAlgorithm.GAMMA) {
            long p = GuestAlgorithm.pick(rng, pages);
            if (!mark(seen, p)) {
                continue;
            }
            if (p == inFlight) {
                inFlightOldStamp = k;
            } else {
                checkWrittenBy(memory, params, p, k, problems);
            }
        }
        if (inFlight >= 0) {
            mark(seen, inFlight);
            long host = host(memory, params, inFlight);
            String p = GuestPage.inFlightProblem(host, params.gfnOf(inFlight), to + 1, params.seed(), inFlightOldStamp,
                    from);
            if (p != null) {
                problems.add(where(params, inFlight) + ", which step " + Long.toUnsignedString(to + 1)
                        + " may be writing: " + p);
            }
        }
        try (PageResidency residency = new PageResidency()) {
            for (long p = 0; p < pages; p++) {
                if ((seen[(int) (p >>> 6)] & 1L << p) == 0) {
                    checkUntouched(memory, params, residency, p, from, problems);
                }
            }
        }
        return problems.check(steps);
    }

    /** Page {@code p} was last written by replayed step {@code k}. */
    private static void checkWrittenBy(GuestMemory memory, GuestParams params, long p, long k, Problems problems) {
        long host = host(memory, params, p);
        if (GuestPage.isZero(host)) {
            problems.add(where(params, p) + " is zero, but step " + Long.toUnsignedString(k) + " wrote it");
            return;
        }
        int bad = GuestPage.firstBadOffset(host, params.gfnOf(p), params.seed());
        if (bad != GuestPage.GOOD) {
            problems.add(where(params, p) + " (last written by step " + Long.toUnsignedString(k) + "): "
                    + GuestPage.describe(host, params.gfnOf(p), params.seed(), bad));
        } else if (GuestPage.stamp(host) != k) {
            problems.add(where(params, p) + " holds stamp " + Long.toUnsignedString(GuestPage.stamp(host))
                    + ", but its last write in the replay was step " + Long.toUnsignedString(k));
        }
    }

    /** No replayed step wrote page {@code p}: zero, or valid with a stamp no newer than {@code from}. */
    private static void checkUntouched(GuestMemory memory, GuestParams params, PageResidency residency, long p,
                                       long from, Problems problems) {
        long gpa = params.gfnOf(p) * GuestPage.SIZE;
        GuestRegion r = memory.regionFor(gpa, GuestPage.SIZE);
        if (!residency.mayHoldData(r, (gpa - r.gpaBase()) / GuestPage.SIZE)) {
            return;
        }
        long host = r.hostAddress(gpa - r.gpaBase());
        if (GuestPage.isZero(host)) {
            return;
        }
        int bad = GuestPage.firstBadOffset(host, params.gfnOf(p), params.seed());
        if (bad != GuestPage.GOOD) {
            problems.add(where(params, p) + ": " + GuestPage.describe(host, params.gfnOf(p), params.seed(), bad));
        } else if (Long.compareUnsigned(GuestPage.stamp(host), from) > 0) {
            problems.add(where(params, p) + " holds stamp " + Long.toUnsignedString(GuestPage.stamp(host))
                    + ", newer than the saved counter " + Long.toUnsignedString(from)
                    + ", but no replayed step wrote it");
        }
    }

    private static long host(GuestMemory memory, GuestParams params, long p) {
        return memory.hostAddress(Gpa.of(params.gfnOf(p) * GuestPage.SIZE), GuestPage.SIZE);
    }

    /** Sets page {@code p}'s bit; true when it was clear. */
    private static boolean mark(long[] seen, long p) {
        int w = (int) (p >>> 6);
        if ((seen[w] & 1L << p) != 0) {
            return false;
        }
        seen[w] |= 1L << p;
        return true;
    }

    private static String where(GuestParams params, long p) {
        return "page " + p + " (gpa 0x" + Long.toHexString(params.gfnOf(p) * GuestPage.SIZE) + ")";
    }

    private static final class Problems {
        final List<String> listed = new ArrayList<>();
        long count;

        void add(String p) {
            count++;
            if (listed.size() < GuestCheck.MAX_LISTED) {
                listed.add(p);
            }
        }

        GuestCheck check(long steps) {
            return new GuestCheck(steps, count, listed);
        }
    }
}
