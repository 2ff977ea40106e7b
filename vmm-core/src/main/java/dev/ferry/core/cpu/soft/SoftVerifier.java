package dev.ferry.core.cpu.soft;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.sys.NativeMemory;

import java.util.ArrayList;
import java.util.List;

/**
 * Checks guest memory against what a soft workload can have written; the implementation behind
 * {@link SoftCpuEngine}'s static verification API. Reads memory only, so the engine that writes it
 * must be paused (or absent) for a meaningful answer: a page being written reads as corrupt.
 * Runs on the caller's thread.
 */
final class SoftVerifier {
    private SoftVerifier() {
    }

    static PageCheck verifyPage(WorkingSet ws, long page) {
        SoftWorkload w = ws.workload();
        long gpa = w.gpaOf(page);
        long host = ws.host(page);
        if (SoftPage.isZero(host)) {
            return new PageCheck(page, gpa, PageCheck.Status.ZERO, 0, 0, null);
        }
        long gfn = ws.gfn(page);
        int owner = w.ownerOf(page);
        long stamp = SoftPage.stamp(host);
        long vcpu = SoftPage.vcpu(host);
        int bad = SoftPage.firstBadOffset(host, gfn, owner, w.seed());
        if (bad == SoftPage.GOOD) {
            return new PageCheck(page, gpa, PageCheck.Status.WRITTEN, stamp, vcpu, null);
        }
        String where = "page " + page + " (gpa 0x" + Long.toHexString(gpa) + "): ";
        long found = NativeMemory.getLong(host + bad);
        String problem = switch (bad) {
            case 0 -> where + "header magic 0x" + Long.toHexString(found) + ", expected 0x"
                    + Long.toHexString(SoftPage.MAGIC ^ gfn) + " (not a soft page, or a page of another address)";
            case 8 -> where + "stamp " + Long.toUnsignedString(found) + " out of range";
            case 16 -> where + "written by vCPU " + found + " but it lies in vCPU " + owner + "'s partition";
            default -> where + "byte offset " + bad + " holds 0x" + Long.toHexString(found) + ", stamp " + stamp
                    + " of vCPU " + vcpu + " demands 0x"
                    + Long.toHexString(SoftPage.expectedBodyLong(gfn, stamp, w.seed(), bad));
        };
        return new PageCheck(page, gpa, PageCheck.Status.CORRUPT, stamp, vcpu, problem);
    }

    static WorkingSetCheck verifyWorkingSet(WorkingSet ws) {
        SoftWorkload w = ws.workload();
        long written = 0;
        long zero = 0;
        long corrupt = 0;
        PageCheck first = null;
        for (int v = 0; v < w.vcpus(); v++) {
            long start = w.partitionStart(v);
            long end = start + w.partitionSize(v);
            for (long p = start; p < end; p++) {
                long host = ws.host(p);
                if (SoftPage.isZero(host)) {
                    zero++;
                } else if (SoftPage.firstBadOffset(host, ws.gfn(p), v, w.seed()) == SoftPage.GOOD) {
                    written++;
                } else {
                    corrupt++;
                    if (first == null) {
                        first = verifyPage(ws, p);
                    }
                }
            }
        }
        return new WorkingSetCheck(w.pages(), written, zero, corrupt, first);
    }

    /**
     * For each vCPU: replays the RNG forward from the saved state over the steps the destination
     * counted and requires the destination's RNG state at the end (it continued from the saved
     * position, neither skipping nor repeating a step). Then walks the same steps backwards with
     * a set of pages already seen: the last step {@code k} that picked a page must have left it
     * valid with stamp exactly {@code k} (earlier picks were overwritten by the same vCPU — the
     * "stamp ≥ k" of each replayed step, made exact), and every page of the partition that no step
     * picked must hold a stamp from before the switchover. {@code dest} must not change during the
     * check, and {@code nowOnDestination} must describe it (both taken while paused).
     */
    static ContinuationCheck verifyContinuation(WorkingSet ws, List<SoftVcpuState> saved,
                                                List<SoftVcpuState> now) {
        SoftWorkload w = ws.workload();
        Problems problems = new Problems();
        SoftVcpuState[] before = byIndex(w, saved, "saved", problems);
        SoftVcpuState[] after = byIndex(w, now, "destination", problems);
        long steps = 0;
        for (int v = 0; v < w.vcpus(); v++) {
            if (before[v] != null && after[v] != null) {
                steps += verifyVcpu(ws, v, before[v], after[v], problems);
            }
        }
        return new ContinuationCheck(steps, problems.count, problems.listed);
    }

    private static long verifyVcpu(WorkingSet ws, int v, SoftVcpuState s, SoftVcpuState d, Problems problems) {
        SoftWorkload w = ws.workload();
        long n = d.writes() - s.writes();
        if (n < 0) {
            problems.add("vCPU " + v + ": destination has " + d.writes() + " writes, fewer than the " + s.writes()
                    + " saved at switchover");
            return 0;
        }
        if (d.bytesDirtied() - s.bytesDirtied() != n * SoftWorkload.PAGE_SIZE) {
            problems.add("vCPU " + v + ": bytes dirtied grew by " + (d.bytesDirtied() - s.bytesDirtied()) + " over "
                    + n + " page writes");
        }
        long rng = s.rng();
        for (long k = 0; k < n; k++) {
            rng = SplitMix64.step(rng);
        }
        if (rng != d.rng()) {
            problems.add("vCPU " + v + ": replaying " + n + " steps from the saved RNG state 0x"
                    + Long.toHexString(s.rng()) + " gives 0x" + Long.toHexString(rng) + ", the destination is at 0x"
                    + Long.toHexString(d.rng()) + ": it did not continue from the saved position");
            return n;
        }
        long start = w.partitionStart(v);
        long size = w.partitionSize(v);
        long[] seen = new long[(int) ((size + 63) >>> 6)];
        for (long k = d.writes(); k > s.writes(); k--, rng = SplitMix64.unstep(rng)) {
            long rel = SplitMix64.pick(rng, size);
            int word = (int) (rel >>> 6);
            if ((seen[word] & (1L << rel)) != 0) {
                continue;
            }
            seen[word] |= 1L << rel;
            PageCheck c = verifyPage(ws, start + rel);
            if (c.status() == PageCheck.Status.CORRUPT) {
                problems.add("vCPU " + v + " step " + k + ": " + c.problem());
            } else if (c.status() == PageCheck.Status.ZERO || c.stamp() != k) {
                problems.add("vCPU " + v + " step " + k + ": page " + (start + rel) + " holds stamp "
                        + (c.status() == PageCheck.Status.ZERO ? "none (zero page)" : c.stamp())
                        + ", but its last write in the replay was step " + k);
            }
        }
        for (long rel = 0; rel < size; rel++) {
            if ((seen[(int) (rel >>> 6)] & (1L << rel)) == 0) {
                PageCheck c = verifyPage(ws, start + rel);
                if (!c.valid()) {
                    problems.add("vCPU " + v + ": " + c.problem());
                } else if (c.status() == PageCheck.Status.WRITTEN && c.stamp() > s.writes()) {
                    problems.add("vCPU " + v + ": page " + (start + rel) + " holds stamp " + c.stamp()
                            + ", newer than the switchover (" + s.writes() + ") but no replayed step wrote it");
                }
            }
        }
        return n;
    }

    private static SoftVcpuState[] byIndex(SoftWorkload w, List<SoftVcpuState> states, String what,
                                           Problems problems) {
        SoftVcpuState[] out = new SoftVcpuState[w.vcpus()];
        for (SoftVcpuState s : states) {
            if (!s.workload().sameIdentity(w)) {
                problems.add(what + " state of vCPU " + s.index() + " belongs to another workload: " + s.workload());
            } else if (out[s.index()] != null) {
                problems.add(what + " states list vCPU " + s.index() + " twice");
            } else {
                out[s.index()] = s;
            }
        }
        for (int v = 0; v < out.length; v++) {
            if (out[v] == null) {
                problems.add(what + " states lack vCPU " + v);
            }
        }
        return out;
    }

    private static final class Problems {
        final List<String> listed = new ArrayList<>();
        long count;

        void add(String p) {
            count++;
            if (listed.size() < ContinuationCheck.MAX_LISTED) {
                listed.add(p);
            }
        }
    }
}
