package dev.ferry.core.cpu.soft;

/**
 * One vCPU's page budget: a credit that accrues at the vCPU's share of the dirty rate, scaled by
 * the throttle, and is spent in whole pages. The vCPU asks for a {@link #grant} about once per
 * {@link #SLICE_NANOS}, writes that many pages, and parks until {@link #nextGrantAt}. Credit is
 * capped at {@link #CATCH_UP_SLICES} slices' worth (at least one page), so a vCPU that was
 * descheduled, stopped by a GC or paused catches up a little and never bursts; {@link #restart}
 * (on every resume) forgets all credit.
 *
 * <p>Pure arithmetic over the clock values it is given, so tests step time instead of sleeping.
 * Owned and used by one vCPU thread.
 */
final class DirtyPacer {
    static final long SLICE_NANOS = 1_000_000;
    static final int CATCH_UP_SLICES = 4;
    /** Longest park between grants, so a throttle change is seen promptly even at tiny rates. */
    static final long MAX_PARK_NANOS = 100_000_000;
    /** Absorbs floating-point error so that exactly N pages of credit grant N pages. */
    private static final double EPSILON = 1e-6;

    private final double pagesPerNano;
    private double credit;
    private long last;

    /** A pacer for one of {@code vcpus} vCPUs sharing {@code bytesPerSec}. */
    DirtyPacer(long bytesPerSec, int vcpus) {
        this.pagesPerNano = (double) bytesPerSec / vcpus / SoftWorkload.PAGE_SIZE / 1e9;
    }

    /** The effective pages per nanosecond at {@code throttlePercent} (0..99). */
    double pagesPerNano(int throttlePercent) {
        return pagesPerNano * (100 - throttlePercent) / 100.0;
    }

    /** Forgets all credit; the budget accrues from {@code now}. */
    void restart(long now) {
        last = now;
        credit = 0;
    }

    /** Whole pages the vCPU may write now; the remainder of the credit is kept. */
    long grant(long now, int throttlePercent) {
        long elapsed = Math.max(0, now - last);
        last = now;
        double rate = pagesPerNano(throttlePercent);
        double cap = Math.max(1.0, rate * SLICE_NANOS * CATCH_UP_SLICES);
        credit = Math.min(cap, credit + rate * elapsed);
        long pages = (long) (credit + EPSILON);
        credit = Math.max(0, credit - pages);
        return pages;
    }

    /**
     * The clock value at which the next grant is due: one slice after the last grant, or later
     * when the rate is below one page per slice (when the next whole page will have accrued),
     * but never more than {@link #MAX_PARK_NANOS} after it.
     */
    long nextGrantAt(int throttlePercent) {
        double rate = pagesPerNano(throttlePercent);
        double untilOnePage = (1.0 - credit) / rate;
        long wait = untilOnePage >= MAX_PARK_NANOS ? MAX_PARK_NANOS
                : Math.max(SLICE_NANOS, (long) Math.ceil(untilOnePage));
        return last + wait;
    }
}
