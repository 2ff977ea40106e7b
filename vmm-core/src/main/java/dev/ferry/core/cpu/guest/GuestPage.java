package dev.ferry.core.cpu.guest;

import dev.ferry.core.sys.NativeMemory;

/**
 * A working-set page as ferry-guest writes it: the soft engine's page format with its own
 * magic. It is 512 little-endian longs:
 * <pre>
 *  0                8                16               24                                  4096
 * +----------------+----------------+----------------+-------------------- ... ----------+
 * | MAGIC ^ gfn    | stamp k        | vCPU index (0) | body: 509 longs from (seed, gfn, k)  |
 * +----------------+----------------+----------------+-------------------- ... ----------+
 * </pre>
 * body long {@code i} = {@code scramble(mix(seed ^ t) + (i + 1) * GAMMA)}, where
 * {@code t = mix(gfn ^ mix(k))}. The guest stores the body in ascending order, then word 0,
 * then word 2, and the stamp (word 1) last. A page whose stamp reads {@code k} therefore holds
 * all of step {@code k}'s content.
 *
 * <p>Stateless and allocation-free. Callers pass the host address of a whole mapped page.
 */
final class GuestPage {
    /** "FerryGst". */
    static final long MAGIC = 0x4665727279477374L;
    static final int SIZE = 4096;
    static final int WORDS = SIZE / 8;
    static final int HEADER_WORDS = 3;
    static final int BODY_WORDS = WORDS - HEADER_WORDS;
    /** Stores one step makes to its page. */
    static final int STORES = WORDS;
    /** {@link #firstBadOffset} result for a page that checks out. */
    static final int GOOD = -1;

    private GuestPage() {
    }

    static void write(long host, long gfn, long k, long seed) {
        writeStores(host, gfn, k, seed, STORES);
    }

    /**
     * Performs the first {@code stores} of the guest's {@link #STORES} stores to page {@code gfn}
     * in step {@code k}, in the guest's order. A vCPU stopped in mid-write leaves the page like this.
     */
    static void writeStores(long host, long gfn, long k, long seed, int stores) {
        long s = GuestAlgorithm.mix(seed ^ GuestAlgorithm.tag(gfn, k));
        int body = Math.min(stores, BODY_WORDS);
        for (int i = 0; i < body; i++) {
            s += GuestAlgorithm.GAMMA;
            NativeMemory.putLong(host + 8L * (HEADER_WORDS + i), GuestAlgorithm.scramble(s));
        }
        if (stores > BODY_WORDS) {
            NativeMemory.putLong(host, MAGIC ^ gfn);
        }
        if (stores > BODY_WORDS + 1) {
            NativeMemory.putLong(host + 16, 0);
        }
        if (stores > BODY_WORDS + 2) {
            NativeMemory.putLong(host + 8, k);
        }
    }

    static boolean isZero(long host) {
        return NativeMemory.isZero(host, SIZE);
    }

    static long stamp(long host) {
        return NativeMemory.getLong(host + 8);
    }

    /** Body long {@code i} (0..508) of page {@code gfn} written with stamp {@code k}. */
    static long bodyWord(long gfn, long k, long seed, int i) {
        long b = GuestAlgorithm.mix(seed ^ GuestAlgorithm.tag(gfn, k));
        return GuestAlgorithm.scramble(b + GuestAlgorithm.GAMMA * (i + 1));
    }

    /**
     * The byte offset of the first long that differs from what {@code gfn}, {@code seed} and the
     * page's own stamp demand, or {@link #GOOD}. A stamp of 0 is never written, so it is bad here.
     * Test {@link #isZero} first.
     */
    static int firstBadOffset(long host, long gfn, long seed) {
        if (NativeMemory.getLong(host) != (MAGIC ^ gfn)) {
            return 0;
        }
        long k = stamp(host);
        if (k == 0) {
            return 8;
        }
        if (NativeMemory.getLong(host + 16) != 0) {
            return 16;
        }
        return firstBadBody(host, gfn, k, seed, 0);
    }

    /** The offset of the first body long from index {@code from} on that is not stamp {@code k}'s, or GOOD. */
    private static int firstBadBody(long host, long gfn, long k, long seed, int from) {
        long s = GuestAlgorithm.mix(seed ^ GuestAlgorithm.tag(gfn, k)) + GuestAlgorithm.GAMMA * from;
        for (int i = from; i < BODY_WORDS; i++) {
            s += GuestAlgorithm.GAMMA;
            if (NativeMemory.getLong(host + 8L * (HEADER_WORDS + i)) != GuestAlgorithm.scramble(s)) {
                return 8 * (HEADER_WORDS + i);
            }
        }
        return GOOD;
    }

    /** A readable description of what is wrong at {@code offset} (from {@link #firstBadOffset}). */
    static String describe(long host, long gfn, long seed, int offset) {
        long found = NativeMemory.getLong(host + offset);
        return switch (offset) {
            case 0 -> "header magic 0x" + Long.toHexString(found) + ", expected 0x" + Long.toHexString(MAGIC ^ gfn)
                    + " (not a ferry-guest page, or a page of another address)";
            case 8 -> "stamp 0 on a page that is not zero";
            case 16 -> "vCPU index " + found + ", expected 0";
            default -> "byte offset " + offset + " holds 0x" + Long.toHexString(found) + ", stamp " + stamp(host)
                    + " demands 0x" + Long.toHexString(bodyWord(gfn, stamp(host), seed, offset / 8 - HEADER_WORDS));
        };
    }

    /**
     * Checks the page that step {@code k} may be writing when the vCPU stopped (R3 in
     * {@link GuestVerifier}). Returns null when the page is a valid state of that write, and a
     * description otherwise.
     *
     * @param oldStamp the stamp the page held before step {@code k}, when the replay knows it;
     *                 -1 when the page's last write came before the saved record, and then the
     *                 old stamp must be at most {@code savedCounter} (0 means a zero page)
     */
    static String inFlightProblem(long host, long gfn, long k, long seed, long oldStamp, long savedCounter) {
        long st = stamp(host);
        if (st == k) {
            int bad = firstBadOffset(host, gfn, seed);
            return bad == GOOD ? null : "its stamp says step " + k + " finished writing it, but " + describe(host, gfn,
                    seed, bad);
        }
        if (oldStamp >= 0 && st != oldStamp) {
            return "holds stamp " + Long.toUnsignedString(st) + "; before step " + k + " it held stamp " + oldStamp;
        }
        if (oldStamp < 0 && Long.compareUnsigned(st, savedCounter) > 0) {
            return "holds stamp " + Long.toUnsignedString(st) + ", newer than the saved counter " + savedCounter
                    + ", but no replayed step wrote it";
        }
        boolean oldZero = st == 0;
        if (NativeMemory.getLong(host + 16) != 0) {
            return "vCPU index " + NativeMemory.getLong(host + 16) + ", expected 0";
        }
        long magic = NativeMemory.getLong(host);
        if (magic != (MAGIC ^ gfn) && !(oldZero && magic == 0)) {
            return "header magic 0x" + Long.toHexString(magic) + " is neither the page's old nor its new one";
        }
        // the body: step k's longs up to some index, the old content's after it
        long s = GuestAlgorithm.mix(seed ^ GuestAlgorithm.tag(gfn, k));
        int i = 0;
        while (i < BODY_WORDS) {
            s += GuestAlgorithm.GAMMA;
            if (NativeMemory.getLong(host + 8L * (HEADER_WORDS + i)) != GuestAlgorithm.scramble(s)) {
                break;
            }
            i++;
        }
        if (oldZero && magic != 0 && i < BODY_WORDS) {
            return "header magic written before the body was complete (" + i + " of " + BODY_WORDS + " longs)";
        }
        if (oldZero) {
            for (int j = i; j < BODY_WORDS; j++) {
                long v = NativeMemory.getLong(host + 8L * (HEADER_WORDS + j));
                if (v != 0) {
                    return "byte offset " + 8 * (HEADER_WORDS + j) + " holds 0x" + Long.toHexString(v)
                            + ", neither step " + k + "'s value nor zero (the page was zero before)";
                }
            }
            return null;
        }
        int bad = firstBadBody(host, gfn, st, seed, i);
        return bad == GOOD ? null : "byte offset " + bad + " holds 0x"
                + Long.toHexString(NativeMemory.getLong(host + bad)) + ", neither step " + k + "'s value nor stamp "
                + st + "'s";
    }
}
