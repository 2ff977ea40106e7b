package dev.ferry.vmm.bench;

/**
 * Where the i-th request of a disk benchmark goes: a pure function of the request's index, so the
 * guest's ring and the host's pread/pwrite loop touch exactly the same offsets in the same order.
 *
 * @param ioSize bytes per request (a multiple of 4096)
 * @param random uniformly random {@code ioSize}-aligned offsets, or sequential ones wrapping at
 *               the image's end
 * @param blocks {@code ioSize} blocks in the image
 */
record DiskPattern(int ioSize, boolean random, long blocks) {
    static final int KiB4 = 4096;
    static final int MiB1 = 1 << 20;

    DiskPattern {
        if (ioSize <= 0 || ioSize % KiB4 != 0) {
            throw new IllegalArgumentException("request size " + ioSize + " is not a multiple of 4096");
        }
        if (blocks < 1) {
            throw new IllegalArgumentException("an image of " + blocks + " blocks of " + ioSize + " bytes");
        }
    }

    static DiskPattern random4k(long imageBytes) {
        return new DiskPattern(KiB4, true, imageBytes / KiB4);
    }

    static DiskPattern sequential1m(long imageBytes) {
        return new DiskPattern(MiB1, false, imageBytes / MiB1);
    }

    /** The byte offset of request {@code i}. */
    long offset(long i) {
        long block = random ? Long.remainderUnsigned(mix(i), blocks) : Long.remainderUnsigned(i, blocks);
        return block * ioSize;
    }

    /** SplitMix64's finalizer: consecutive indices give unrelated blocks. */
    private static long mix(long z) {
        z += 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    @Override
    public String toString() {
        return (ioSize >= MiB1 ? ioSize / MiB1 + " MiB" : ioSize / 1024 + " KiB") + (random ? " random" : " sequential");
    }
}
