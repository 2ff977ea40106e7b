package dev.ferry.core.cpu.guest;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.Gpa;

/**
 * What ferry-guest runs: the seed its page contents derive from, its working set, how often it
 * reports a heartbeat and when it stops. The VMM writes these into the boot-parameter page at
 * {@link GuestLayout#BOOT_PARAMS_GPA} before the first run, and the guest reads them once at
 * entry. The page migrates with the rest of RAM. The layout is eight little-endian longs:
 * <pre>
 *  +0  magic "FerryBot"      +8  version (1)            +16 seed
 * +24  working-set base GPA  +32 working-set pages      +40 pages per heartbeat
 * +48  max steps (0: never stop)                         +56 progress-record GPA
 * </pre>
 * The progress-record GPA is always {@link GuestLayout#PROGRESS_GPA} in version 1. The guest
 * reads it from here rather than having it compiled in, which leaves room for per-vCPU records.
 *
 * <p>The checks below are the guest's own ({@code fg_read_params}), so parameters this class
 * accepts never make the guest fault. Whether the working set is RAM is checked later, by
 * {@link GuestLayout#prepare}. Immutable.
 *
 * @param seed              what every page's content and the RNG derive from
 * @param workingSetBase    GPA of the working set, 4 KiB aligned, at least
 *                          {@link GuestLayout#WORKING_SET_MIN_GPA}
 * @param workingSetPages   pages in the working set, {@code 1..}{@link #MAX_WORKING_SET_PAGES}
 * @param pagesPerHeartbeat steps between two heartbeats (an OUT to
 *                          {@link GuestLayout#HEARTBEAT_PORT}), at least 1
 * @param maxSteps          the counter at which the guest reports DONE and halts; 0 means never
 */
public record GuestParams(long seed, long workingSetBase, long workingSetPages, long pagesPerHeartbeat,
                          long maxSteps) {
    /** "FerryBot". */
    public static final long MAGIC = 0x4665727279426f74L;
    public static final long VERSION = 1;
    /** The guest's limit ({@code FG_MAX_WS_PAGES}), 4 PiB of working set. */
    public static final long MAX_WORKING_SET_PAGES = 1L << 40;
    /** The guest's limit on the working-set base (4 PiB), so that its end cannot wrap. */
    static final long MAX_WORKING_SET_BASE = 1L << 52;
    static final int BYTES = 64;

    public GuestParams {
        if (workingSetBase % GuestPage.SIZE != 0 || workingSetBase < GuestLayout.WORKING_SET_MIN_GPA
                || workingSetBase > MAX_WORKING_SET_BASE) {
            throw new IllegalArgumentException("ferry-guest: working-set base 0x" + Long.toHexString(workingSetBase)
                    + " must be 4 KiB aligned and at least 0x" + Long.toHexString(GuestLayout.WORKING_SET_MIN_GPA)
                    + " (below it lie the boot structures and the program)");
        }
        if (workingSetPages < 1 || workingSetPages > MAX_WORKING_SET_PAGES) {
            throw new IllegalArgumentException("ferry-guest: working set of " + workingSetPages
                    + " pages; it must have 1.." + MAX_WORKING_SET_PAGES + " pages");
        }
        if (pagesPerHeartbeat < 1) {
            throw new IllegalArgumentException("ferry-guest: pages per heartbeat must be at least 1, got "
                    + pagesPerHeartbeat);
        }
        if (maxSteps < 0) {
            throw new IllegalArgumentException("ferry-guest: max steps must be 0 (never stop) or positive, got "
                    + maxSteps);
        }
    }

    /** A guest that never stops, with its working set from 2 MiB. */
    public static GuestParams of(long seed, long workingSetPages, long pagesPerHeartbeat) {
        return new GuestParams(seed, GuestLayout.WORKING_SET_MIN_GPA, workingSetPages, pagesPerHeartbeat, 0);
    }

    public GuestParams withMaxSteps(long steps) {
        return new GuestParams(seed, workingSetBase, workingSetPages, pagesPerHeartbeat, steps);
    }

    public long workingSetBytes() {
        return workingSetPages * GuestPage.SIZE;
    }

    /** The first GPA after the working set. */
    public long workingSetEnd() {
        return workingSetBase + workingSetBytes();
    }

    /** The guest frame number of working-set page {@code page}. */
    public long gfnOf(long page) {
        return workingSetBase / GuestPage.SIZE + page;
    }

    /** True when a guest at {@code counter} has finished: it reported DONE or will before another step. */
    public boolean done(long counter) {
        return maxSteps != 0 && Long.compareUnsigned(counter, maxSteps) >= 0;
    }

    /** Writes the boot-parameter page (the first {@value #BYTES} bytes; the rest of the page is left as is). */
    public void write(GuestMemory memory) {
        long[] words = {MAGIC, VERSION, seed, workingSetBase, workingSetPages, pagesPerHeartbeat, maxSteps,
            GuestLayout.PROGRESS_GPA};
        for (int i = 0; i < words.length; i++) {
            memory.writeLong(Gpa.of(GuestLayout.BOOT_PARAMS_GPA + 8L * i), words[i]);
        }
    }

    /** Reads the boot-parameter page; throws when it does not hold version-1 parameters. */
    public static GuestParams read(GuestMemory memory) {
        long[] w = new long[8];
        for (int i = 0; i < w.length; i++) {
            w[i] = memory.readLong(Gpa.of(GuestLayout.BOOT_PARAMS_GPA + 8L * i));
        }
        if (w[0] != MAGIC || w[1] != VERSION) {
            throw new IllegalStateException("ferry-guest: no version-1 boot parameters at gpa 0x"
                    + Long.toHexString(GuestLayout.BOOT_PARAMS_GPA) + " (magic 0x" + Long.toHexString(w[0])
                    + ", version " + w[1] + "); was the guest set up with GuestLayout.prepare?");
        }
        if (w[7] != GuestLayout.PROGRESS_GPA) {
            throw new IllegalStateException("ferry-guest: the boot parameters put the progress record at gpa 0x"
                    + Long.toHexString(w[7]) + ", version 1 keeps it at 0x"
                    + Long.toHexString(GuestLayout.PROGRESS_GPA));
        }
        return new GuestParams(w[2], w[3], w[4], w[5], w[6]);
    }
}
