package dev.ferry.core.memory;

import dev.ferry.core.sys.NativeMemory;

/**
 * A fast 64-bit content digest of native memory (four multiply-rotate lanes over 8-byte words,
 * then a final mix), used to prove source and destination RAM identical. Not cryptographic: it
 * catches corruption and lost pages, not an adversary. Runs at memory speed, no allocation.
 */
public final class MemoryDigest {
    private static final long P1 = 0x9E3779B185EBCA87L;
    private static final long P2 = 0xC2B2AE3D27D4EB4FL;

    /** The digest of one 4 KiB page of zeros. */
    public static final long ZERO_PAGE;

    static {
        long zeros = NativeMemory.allocate(4096);
        try {
            ZERO_PAGE = of(zeros, 4096);
        } finally {
            NativeMemory.free(zeros);
        }
    }

    private MemoryDigest() {
    }

    /**
     * Digest of the {@code length} bytes at {@code address}, and of nothing beyond them: whole
     * 32-byte blocks go through the four lanes; a tail of fewer than 32 bytes feeds its 8-byte
     * words, then its last bytes zero-padded, into the lanes in order. For multiples of 32 (pages)
     * the tail is empty.
     */
    public static long of(long address, long length) {
        long a = 1, b = 2, c = 3, d = 4;
        long blocksEnd = address + (length & ~31L);
        for (long p = address; p < blocksEnd; p += 32) {
            a = Long.rotateLeft(a + NativeMemory.getLong(p) * P2, 31) * P1;
            b = Long.rotateLeft(b + NativeMemory.getLong(p + 8) * P2, 31) * P1;
            c = Long.rotateLeft(c + NativeMemory.getLong(p + 16) * P2, 31) * P1;
            d = Long.rotateLeft(d + NativeMemory.getLong(p + 24) * P2, 31) * P1;
        }
        int tail = (int) (length & 31);
        long p = blocksEnd;
        for (int lane = 0; tail > 0; lane++) {
            long word;
            if (tail >= 8) {
                word = NativeMemory.getLong(p);
                p += 8;
                tail -= 8;
            } else {
                word = 0;
                for (int i = 0; i < tail; i++) {
                    word |= (NativeMemory.getByte(p + i) & 0xffL) << (8 * i);
                }
                tail = 0;
            }
            switch (lane) {
                case 0 -> a = Long.rotateLeft(a + word * P2, 31) * P1;
                case 1 -> b = Long.rotateLeft(b + word * P2, 31) * P1;
                case 2 -> c = Long.rotateLeft(c + word * P2, 31) * P1;
                default -> d = Long.rotateLeft(d + word * P2, 31) * P1;
            }
        }
        long h = Long.rotateLeft(a, 1) + Long.rotateLeft(b, 7) + Long.rotateLeft(c, 12) + Long.rotateLeft(d, 18);
        return mix(h ^ length);
    }

    public static long combine(long h, long next) {
        return mix(h * P1 + next);
    }

    public static long mix(long h) {
        h ^= h >>> 33;
        h *= 0xff51afd7ed558ccdL;
        h ^= h >>> 33;
        h *= 0xc4ceb93fe53a87c5L;
        h ^= h >>> 33;
        return h;
    }
}
