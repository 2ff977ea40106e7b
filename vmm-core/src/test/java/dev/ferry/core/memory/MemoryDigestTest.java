package dev.ferry.core.memory;

import dev.ferry.core.sys.NativeMemory;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

/** The digest covers exactly the bytes asked for — no byte beyond, every byte within. */
class MemoryDigestTest {
    private static final int SIZE = 4096 + 64;

    @Test
    void bytesBeyondTheLengthDoNotCount() {
        long m = NativeMemory.allocate(SIZE);
        try {
            SplittableRandom rnd = new SplittableRandom(3);
            for (int i = 0; i < SIZE; i++) {
                NativeMemory.putByte(m + i, (byte) rnd.nextInt());
            }
            for (int n = 0; n <= 100; n++) {
                long before = MemoryDigest.of(m, n);
                for (int i = n; i < n + 40; i++) {
                    NativeMemory.putByte(m + i, (byte) (NativeMemory.getByte(m + i) ^ 0x5a));
                }
                assertEquals(before, MemoryDigest.of(m, n), "length " + n);
            }
        } finally {
            NativeMemory.free(m);
        }
    }

    @Test
    void everyByteWithinTheLengthCounts() {
        long m = NativeMemory.allocate(SIZE);
        try {
            NativeMemory.fill(m, SIZE, (byte) 0);
            for (int n : new int[] {1, 7, 8, 20, 24, 31, 32, 33, 63, 4096}) {
                long base = MemoryDigest.of(m, n);
                for (int i = 0; i < n; i++) {
                    NativeMemory.putByte(m + i, (byte) 1);
                    assertNotEquals(base, MemoryDigest.of(m, n), "byte " + i + " of " + n);
                    NativeMemory.putByte(m + i, (byte) 0);
                }
            }
        } finally {
            NativeMemory.free(m);
        }
    }

    /** Pages (multiples of 32) digest as before the tail was handled: RAM digests did not change. */
    @Test
    void wholeBlocksDigestAsTheyAlwaysDid() {
        long m = NativeMemory.allocate(SIZE);
        try {
            SplittableRandom rnd = new SplittableRandom(9);
            for (int i = 0; i < SIZE; i += 8) {
                NativeMemory.putLong(m + i, rnd.nextLong());
            }
            assertEquals(blocksOnly(m, 4096), MemoryDigest.of(m, 4096));
            assertEquals(blocksOnly(m, 64), MemoryDigest.of(m, 64));
        } finally {
            NativeMemory.free(m);
        }
    }

    /** The digest's definition for whole 32-byte blocks, written out. */
    private static long blocksOnly(long address, long length) {
        long p1 = 0x9E3779B185EBCA87L;
        long p2 = 0xC2B2AE3D27D4EB4FL;
        long a = 1, b = 2, c = 3, d = 4;
        for (long p = address; p < address + length; p += 32) {
            a = Long.rotateLeft(a + NativeMemory.getLong(p) * p2, 31) * p1;
            b = Long.rotateLeft(b + NativeMemory.getLong(p + 8) * p2, 31) * p1;
            c = Long.rotateLeft(c + NativeMemory.getLong(p + 16) * p2, 31) * p1;
            d = Long.rotateLeft(d + NativeMemory.getLong(p + 24) * p2, 31) * p1;
        }
        long h = Long.rotateLeft(a, 1) + Long.rotateLeft(b, 7) + Long.rotateLeft(c, 12) + Long.rotateLeft(d, 18);
        return MemoryDigest.mix(h ^ length);
    }
}
