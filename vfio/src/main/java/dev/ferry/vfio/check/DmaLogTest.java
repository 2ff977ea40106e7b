package dev.ferry.vfio.check;

import dev.ferry.core.memory.MemoryDigest;
import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.DmaSpace;
import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.device.VfioException;

import java.util.List;
import java.util.Optional;

import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;

/**
 * {@link Rule#DMA_LOG}, on what the device writes by itself: the check cannot make an arbitrary
 * device DMA, so it logs the whole IOVA space mapped for the device, lets it run (its workload
 * steps if it has any, and {@link VfioCheck.Options#dmaRun()} of its own activity), stops it, and
 * compares the log with the pages whose content changed:
 * <ol>
 *   <li>REPORT #1 (zeroed bitmap) must name every page that changed — a page rewritten with the
 *       same bytes cannot be seen, so only "changed ⊆ reported" is checked;</li>
 *   <li>REPORT #2 (zeroed bitmap), with the device stopped, must name nothing: a page of #1
 *       again means the report did not clear, any other page means DMA in STOP;</li>
 *   <li>REPORT #3 into a bitmap full of a sentinel pattern must leave it exactly as it was.</li>
 * </ol>
 * Also: START with no ranges fails with EINVAL, and REPORT after STOP fails. When the device
 * wrote nothing during the run, setting and clearing are reported as not exercised.
 */
final class DmaLogTest {
    static final long PAGE = 4096;
    /** IOVA spaces larger than this are not scanned page by page. */
    static final long MAX_SCANNED = 4L << 30;
    private static final long SENTINEL = 0xA5A5A5A5A5A5A5A5L;

    private DmaLogTest() {
    }

    static void run(CheckRun run, DeviceSession s) throws CheckAbortedException {
        Findings f = run.findings;
        if (!run.dmaLogging) {
            f.notApplicable(Rule.DMA_LOG, "the device offers no DMA logging (PROBE of DMA_LOGGING_START fails);"
                    + " QEMU then needs IOMMU dirty tracking or blocks migration");
            return;
        }
        Optional<DmaSpace> space = s.instance().dmaSpace();
        if (space.isEmpty()) {
            f.incomplete(Rule.DMA_LOG, "no IOVA space is known for this device kind, so DMA logging was not exercised");
            return;
        }
        DmaSpace dma = space.get();
        List<IovaRange> ranges = dma.mappedRanges();
        long pages = 0;
        for (IovaRange r : ranges) {
            if ((r.iova() | r.length()) % PAGE != 0) {
                f.incomplete(Rule.DMA_LOG, "mapped range " + r + " is not page-aligned; DMA logging was not exercised");
                return;
            }
            pages += r.length() / PAGE;
        }
        if (ranges.isEmpty() || pages * PAGE > MAX_SCANNED) {
            f.incomplete(Rule.DMA_LOG, ranges.isEmpty() ? "nothing is mapped for the device's DMA"
                    : "the IOVA space is larger than " + (MAX_SCANNED >> 30) + " GiB; not scanned");
            return;
        }
        s.returnToRunning(null, null);

        try {
            run.call("SET DMA_LOGGING_START with no ranges", () -> {
                s.device().dmaLoggingStart(PAGE, List.of());
                return null;
            });
            f.violation(Rule.DMA_LOG, "DMA_LOGGING_START with no ranges succeeded; the kernel refuses num_ranges 0");
            stop(run, s);
        } catch (VfioException e) {
            f.expect(Rule.DMA_LOG, e.errno() == Errno.EINVAL, "DMA_LOGGING_START with no ranges failed with "
                    + Errno.name(e.errno()) + " instead of EINVAL");
        }

        try {
            run.call("SET DMA_LOGGING_START", () -> {
                s.device().dmaLoggingStart(PAGE, ranges);
                return null;
            });
        } catch (VfioException e) {
            f.violation(Rule.DMA_LOG, "DMA_LOGGING_START over the " + ranges.size() + " mapped range(s) failed: "
                    + DeviceSession.message(e));
            return;
        }
        long[] before = digests(dma, ranges, pages);
        Bitmaps bitmaps = new Bitmaps(ranges);
        try {
            int steps = run.options.workloadSteps();
            boolean workload = s.advance(steps);
            sleep(run.options.dmaRun().toMillis());
            if (!s.set(STOP).ok()) {
                stop(run, s);
                return;
            }
            long[] after = digests(dma, ranges, pages);

            if (!report(run, s, bitmaps, 0, "the first report")) {
                return;
            }
            long[] first = bitmaps.snapshot();
            int changed = 0;
            long firstMissing = -1;
            int missing = 0;
            for (int p = 0; p < before.length; p++) {
                if (before[p] != after[p]) {
                    changed++;
                    if (!bitmaps.test(first, p)) {
                        missing++;
                        if (firstMissing < 0) {
                            firstMissing = bitmaps.iova(p);
                        }
                    }
                }
            }
            int reported = count(first);
            if (missing > 0) {
                f.violation(Rule.DMA_LOG, "the device changed " + changed + " page(s) while logging, and the report"
                        + " left out " + missing + ", the first at IOVA 0x" + Long.toHexString(firstMissing));
            } else if (changed > 0) {
                f.pass(Rule.DMA_LOG);
            }

            if (!report(run, s, bitmaps, 0, "a second report on the stopped device")) {
                return;
            }
            long[] second = bitmaps.snapshot();
            int again = 0;
            int fresh = 0;
            long firstAgain = -1;
            for (int p = 0; p < before.length; p++) {
                if (bitmaps.test(second, p)) {
                    if (bitmaps.test(first, p)) {
                        again++;
                        if (firstAgain < 0) {
                            firstAgain = bitmaps.iova(p);
                        }
                    } else {
                        fresh++;
                    }
                }
            }
            if (again > 0) {
                f.violation(Rule.DMA_LOG, "a second DMA_LOGGING_REPORT on the stopped device named " + again + " of the "
                        + reported + " page(s) the first had reported (first at IOVA 0x" + Long.toHexString(firstAgain)
                        + "): the report did not clear the log");
            } else if (reported > 0) {
                f.pass(Rule.DMA_LOG);
            }
            if (fresh > 0) {
                f.violation(Rule.DMA_LOG, "a second DMA_LOGGING_REPORT named " + fresh + " page(s) written while the"
                        + " device was in STOP");
            }

            if (!report(run, s, bitmaps, SENTINEL, "a report into a pre-filled bitmap")) {
                return;
            }
            f.expect(Rule.DMA_LOG, bitmaps.allEqual(SENTINEL), "DMA_LOGGING_REPORT changed a caller's bitmap that"
                    + " was pre-filled with 0x" + Long.toHexString(SENTINEL) + " (it must only set bits, and had"
                    + " nothing new to set)");

            stop(run, s);
            try {
                run.call("GET DMA_LOGGING_REPORT after STOP", () -> {
                    s.device().dmaLoggingReport(ranges.get(0).iova(), ranges.get(0).length(), PAGE,
                            bitmaps.address(0));
                    return null;
                });
                f.violation(Rule.DMA_LOG, "DMA_LOGGING_REPORT succeeded after DMA_LOGGING_STOP");
            } catch (VfioException e) {
                f.pass(Rule.DMA_LOG);
            }

            if (changed == 0 && reported == 0) {
                f.incomplete(Rule.DMA_LOG, "the device wrote no page in " + run.options.dmaRun().toMillis()
                        + " ms of running" + (workload ? " and " + steps + " workload steps" : "")
                        + ", so setting and clearing bits were not exercised (START, REPORT and STOP answered as"
                        + " they should)");
            } else {
                f.note(Rule.DMA_LOG, "the device changed " + changed + " page(s) while logging; the report named "
                        + reported);
            }
        } finally {
            bitmaps.close();
            s.returnToRunning(null, null);
        }
    }

    private static void stop(CheckRun run, DeviceSession s) throws CheckAbortedException {
        try {
            run.call("SET DMA_LOGGING_STOP", () -> {
                s.device().dmaLoggingStop();
                return null;
            });
        } catch (VfioException e) {
            run.findings.violation(Rule.DMA_LOG, "DMA_LOGGING_STOP failed: " + DeviceSession.message(e));
        }
    }

    /** Fills every bitmap with {@code fill}, then one REPORT per range. */
    private static boolean report(CheckRun run, DeviceSession s, Bitmaps bitmaps, long fill, String which)
            throws CheckAbortedException {
        bitmaps.fill(fill);
        for (int i = 0; i < bitmaps.ranges.size(); i++) {
            IovaRange r = bitmaps.ranges.get(i);
            long address = bitmaps.address(i);
            try {
                run.call("GET DMA_LOGGING_REPORT " + r, () -> {
                    s.device().dmaLoggingReport(r.iova(), r.length(), PAGE, address);
                    return null;
                });
            } catch (VfioException e) {
                run.findings.violation(Rule.DMA_LOG, which + " (DMA_LOGGING_REPORT of " + r + ") failed: "
                        + DeviceSession.message(e));
                stop(run, s);
                return false;
            }
        }
        return true;
    }

    private static long[] digests(DmaSpace dma, List<IovaRange> ranges, long pages) {
        long[] d = new long[(int) pages];
        int p = 0;
        for (IovaRange r : ranges) {
            long host = dma.hostAddress(r.iova(), r.length());
            for (long off = 0; off < r.length(); off += PAGE) {
                d[p++] = MemoryDigest.of(host + off, PAGE);
            }
        }
        return d;
    }

    private static int count(long[] words) {
        int n = 0;
        for (long w : words) {
            n += Long.bitCount(w);
        }
        return n;
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * One native bitmap per range, one bit per page ({@code bit p % 64 of little-endian word
     * p / 64}), and a flat page numbering across ranges for comparing with the digests.
     */
    private static final class Bitmaps implements AutoCloseable {
        final List<IovaRange> ranges;
        private final Mapping memory;
        private final long[] offsets;
        private final long[] firstPage;
        private final long totalWords;

        Bitmaps(List<IovaRange> ranges) {
            this.ranges = ranges;
            this.offsets = new long[ranges.size()];
            this.firstPage = new long[ranges.size()];
            long words = 0;
            long pages = 0;
            for (int i = 0; i < ranges.size(); i++) {
                offsets[i] = words * 8;
                firstPage[i] = pages;
                long n = ranges.get(i).length() / PAGE;
                words += (n + 63) / 64;
                pages += n;
            }
            this.totalWords = words;
            this.memory = Mapping.anonymous(Math.max(8, words * 8));
        }

        long address(int range) {
            return memory.address() + offsets[range];
        }

        void fill(long value) {
            for (long w = 0; w < totalWords; w++) {
                NativeMemory.putLong(memory.address() + w * 8, value);
            }
        }

        boolean allEqual(long value) {
            for (long w = 0; w < totalWords; w++) {
                if (NativeMemory.getLong(memory.address() + w * 8) != value) {
                    return false;
                }
            }
            return true;
        }

        /** The bits of every range, with flat page numbering: bit {@code p} for flat page {@code p}. */
        long[] snapshot() {
            long pages = 0;
            for (IovaRange r : ranges) {
                pages += r.length() / PAGE;
            }
            long[] out = new long[(int) ((pages + 63) / 64)];
            for (int i = 0; i < ranges.size(); i++) {
                long n = ranges.get(i).length() / PAGE;
                for (long p = 0; p < n; p++) {
                    long word = NativeMemory.getLong(address(i) + (p >>> 6) * 8);
                    if ((word & (1L << (p & 63))) != 0) {
                        long flat = firstPage[i] + p;
                        out[(int) (flat >>> 6)] |= 1L << (flat & 63);
                    }
                }
            }
            return out;
        }

        boolean test(long[] flatBits, int page) {
            return (flatBits[page >>> 6] & (1L << (page & 63))) != 0;
        }

        /** The IOVA of flat page {@code p}. */
        long iova(int p) {
            for (int i = ranges.size() - 1; i >= 0; i--) {
                if (p >= firstPage[i]) {
                    return ranges.get(i).iova() + (p - firstPage[i]) * PAGE;
                }
            }
            throw new IllegalArgumentException("page " + p);
        }

        @Override
        public void close() {
            memory.close();
        }
    }
}
