package dev.ferry.virtio.guest;

/**
 * The content of a 4 KiB disk block as Ferry's guest disk drivers write it, so that anyone holding
 * the image can tell which write a block holds and whether it is whole:
 * <pre>
 *   w[0] = BLOCK_MAGIC ^ block      w[1] = block (LBA in 4 KiB units)     w[2] = generation
 *   w[3] = seed                      w[4 + i] = scramble(b + (i + 1) * GAMMA), i = 0..506,
 *                                    b = mix(seed ^ mix(block ^ mix(generation)))
 *   w[511] = checksum = fold of mix(c ^ w[j]) over j = 0..510, from c = CHECK_IV
 * </pre>
 * (u64 words, little-endian.) The generation is the sequence number of the request that wrote
 * the block, unique across the guest's life, so a verifier can name the write. Stateless.
 */
public final class DiskBlock {
    public static final int SIZE = 4096;
    public static final int WORDS = 512;
    public static final long BLOCK_MAGIC = 0x4665727279447368L; // "FerryDsh"
    private static final long CHECK_IV = 0x4665727279436b73L;    // "FerryCks"
    private static final long GAMMA = 0x9E3779B97F4A7C15L;

    private DiskBlock() {
    }

    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    private static long scramble(long z) {
        z = (z ^ (z >>> 32)) * 0xD6E8FEB86659FD93L;
        return z ^ (z >>> 32);
    }

    /** Fills {@code words} (512) with block {@code block}'s content at {@code generation}. */
    public static void fill(long[] words, long block, long generation, long seed) {
        words[0] = BLOCK_MAGIC ^ block;
        words[1] = block;
        words[2] = generation;
        words[3] = seed;
        long b = mix(seed ^ mix(block ^ mix(generation)));
        for (int i = 0; i < WORDS - 5; i++) {
            words[4 + i] = scramble(b + (i + 1) * GAMMA);
        }
        words[WORDS - 1] = checksum(words);
    }

    static long checksum(long[] words) {
        long c = CHECK_IV;
        for (int j = 0; j < WORDS - 1; j++) {
            c = mix(c ^ words[j]);
        }
        return c;
    }

    /**
     * What {@code words} hold: the generation of a whole, valid block {@code block} written with
     * {@code seed}; 0 for an all-zero block (never written); -1 for anything else (torn, another
     * block's data, garbage).
     */
    public static long generationOf(long[] words, long block, long seed) {
        boolean zero = true;
        for (long w : words) {
            if (w != 0) {
                zero = false;
                break;
            }
        }
        if (zero) {
            return 0;
        }
        if (words[0] != (BLOCK_MAGIC ^ block) || words[1] != block || words[3] != seed || words[2] <= 0
                || words[WORDS - 1] != checksum(words)) {
            return -1;
        }
        long[] expect = new long[WORDS];
        fill(expect, block, words[2], seed);
        return java.util.Arrays.equals(expect, words) ? words[2] : -1;
    }
}
