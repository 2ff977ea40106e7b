package dev.ferry.core.cpu.soft;

import dev.ferry.core.sys.NativeMemory;

/**
 * The layout of a page the soft guest wrote, and the code that writes and checks it. Every long is
 * in host byte order (the bytes migrate unchanged, source and destination share the layout):
 * <pre>
 *  0                8                16               24                                  4096
 * +----------------+----------------+----------------+-------------------- ... ----------+
 * | MAGIC ^ gfn    | stamp          | vCPU index     | body: 509 longs, body(seed,gfn,stamp) |
 * +----------------+----------------+----------------+-------------------- ... ----------+
 * </pre>
 * {@code gfn} is the page's guest frame number (guest-physical address / 4096), so a page that
 * lands at the wrong address fails its check. {@code stamp} is the owning vCPU's write count at
 * the time of the write (1, 2, ...), or 0 for a page {@link SoftCpuEngine#populate populated}
 * before the run. The body is a SplitMix64 stream seeded by {@code mix(seed, gfn, stamp)}, so
 * any byte can be recomputed from the header and the workload's seed. A page that is all zero
 * was never written and is valid.
 *
 * <p>Stateless and allocation-free; the caller guarantees {@code host} addresses a whole, mapped
 * page (it comes from {@link WorkingSet}).
 */
final class SoftPage {
    /** Header word 0 is this XOR the guest frame number ("FerrySft"). */
    static final long MAGIC = 0x4665727279536674L;
    static final int HEADER_BYTES = 24;
    static final int SIZE = SoftWorkload.PAGE_SIZE;
    static final int BODY_LONGS = (SIZE - HEADER_BYTES) / 8;
    /** {@link #firstBadOffset} result for a page that checks out. */
    static final int GOOD = -1;

    private SoftPage() {
    }

    /** Writes the whole page: header, then the body derived from {@code (seed, gfn, stamp)}. */
    static void write(long host, long gfn, long stamp, int vcpu, long seed) {
        NativeMemory.putLong(host, MAGIC ^ gfn);
        NativeMemory.putLong(host + 8, stamp);
        NativeMemory.putLong(host + 16, vcpu);
        long s = bodySeed(seed, gfn, stamp);
        long body = host + HEADER_BYTES;
        for (int i = 0; i < BODY_LONGS; i++) { // an int counted loop: C2 unrolls it
            s += SplitMix64.GAMMA;
            NativeMemory.putLong(body + 8L * i, scramble(s));
        }
    }

    static boolean isZero(long host) {
        return NativeMemory.isZero(host, SIZE);
    }

    static long stamp(long host) {
        return NativeMemory.getLong(host + 8);
    }

    static long vcpu(long host) {
        return NativeMemory.getLong(host + 16);
    }

    /**
     * The byte offset of the first long that differs from what {@code (gfn, owner, seed)} and the
     * page's own stamp demand, or {@link #GOOD}. A zero page is not special here: callers test
     * {@link #isZero} first.
     */
    static int firstBadOffset(long host, long gfn, int owner, long seed) {
        if (NativeMemory.getLong(host) != (MAGIC ^ gfn)) {
            return 0;
        }
        long stamp = stamp(host);
        if (stamp < 0) {
            return 8;
        }
        if (vcpu(host) != owner) {
            return 16;
        }
        long s = bodySeed(seed, gfn, stamp);
        long body = host + HEADER_BYTES;
        for (int i = 0; i < BODY_LONGS; i++) {
            s += SplitMix64.GAMMA;
            if (NativeMemory.getLong(body + 8L * i) != scramble(s)) {
                return HEADER_BYTES + 8 * i;
            }
        }
        return GOOD;
    }

    /** The value the long at {@code offset} (≥ {@link #HEADER_BYTES}) of a valid page must hold. */
    static long expectedBodyLong(long gfn, long stamp, long seed, int offset) {
        long s = bodySeed(seed, gfn, stamp) + SplitMix64.GAMMA * ((offset - HEADER_BYTES) / 8 + 1);
        return scramble(s);
    }

    private static long bodySeed(long seed, long gfn, long stamp) {
        return SplitMix64.mix(seed ^ SplitMix64.mix(gfn ^ SplitMix64.mix(stamp)));
    }

    /** A one-multiply finalizer: cheap enough for 509 longs a page, still no visible pattern. */
    private static long scramble(long z) {
        z = (z ^ (z >>> 32)) * 0xD6E8FEB86659FD93L;
        return z ^ (z >>> 32);
    }
}
