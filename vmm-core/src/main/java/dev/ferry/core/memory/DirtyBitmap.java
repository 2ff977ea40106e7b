package dev.ferry.core.memory;

import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;

/**
 * One bit per 4 KiB page, off-heap, set atomically from any thread. Words are 64-bit, bit
 * {@code p % 64} of word {@code p / 64} is page {@code p} — the layout of KVM's dirty log and the
 * vhost-user shared log, so sources can OR their words in directly.
 *
 * <p>Writers (vCPUs, devices) only set bits; the migration thread harvests with
 * {@link #getAndClearWord}. Owns its mapping; close once.
 */
public final class DirtyBitmap implements AutoCloseable {
    public static final int PAGE_SHIFT = 12;
    /** The low bits of an address or length that must be zero for whole pages. */
    public static final long PAGE_SIZE_MASK = (1L << PAGE_SHIFT) - 1;
    private final long pages;
    private final long words;
    private final Mapping mapping;
    private final long base;

    public DirtyBitmap(long pages) {
        this.pages = pages;
        this.words = (pages + 63) >>> 6;
        this.mapping = Mapping.anonymous(Math.max(8, words * 8));
        this.base = mapping.address();
    }

    public long pages() {
        return pages;
    }

    public long words() {
        return words;
    }

    /** Address of the first word, for sources that fill the bitmap natively (KVM_GET_DIRTY_LOG). */
    public long address() {
        return base;
    }

    public void set(long page) {
        check(page);
        NativeMemory.getAndOrLong(base + (page >>> 6) * 8, 1L << (page & 63));
    }

    /** Marks every page touched by {@code [offset, offset + length)} (byte offsets in the region). */
    public void markBytes(long offset, long length) {
        if (length <= 0) {
            return;
        }
        long first = offset >>> PAGE_SHIFT;
        long last = (offset + length - 1) >>> PAGE_SHIFT;
        for (long p = first; p <= last; p++) {
            set(p);
        }
    }

    /**
     * Clears pages {@code [first, first + n)}, a word at a time, atomically against concurrent
     * setters; returns how many of them were set. A page set again after its word was cleared
     * stays set.
     */
    public long clearRange(long first, long n) {
        if (n <= 0) {
            return 0;
        }
        check(first);
        check(first + n - 1);
        long cleared = 0;
        long p = first;
        long end = first + n;
        while (p < end) {
            long w = p >>> 6;
            int lo = (int) (p & 63);
            int count = (int) Math.min(64 - lo, end - p);
            long bits = count == 64 ? -1L : ((1L << count) - 1) << lo;
            long prev = NativeMemory.getAndAndLong(base + w * 8, ~bits);
            cleared += Long.bitCount(prev & bits);
            p += count;
        }
        return cleared;
    }

    public boolean get(long page) {
        check(page);
        return (NativeMemory.getLongVolatile(base + (page >>> 6) * 8) & (1L << (page & 63))) != 0;
    }

    public long getWord(long word) {
        checkWord(word);
        return NativeMemory.getLongVolatile(base + word * 8);
    }

    /** Reads a word and clears it in one atomic step. */
    public long getAndClearWord(long word) {
        checkWord(word);
        return NativeMemory.getAndSetLong(base + word * 8, 0);
    }

    public void orWord(long word, long bits) {
        checkWord(word);
        if (bits != 0) {
            NativeMemory.getAndOrLong(base + word * 8, bits);
        }
    }

    /** Marks every page dirty (the first pass of a migration sends everything). */
    public void setAll() {
        for (long w = 0; w < words; w++) {
            NativeMemory.putLongVolatile(base + w * 8, wordMask(w));
        }
    }

    public void clearAll() {
        NativeMemory.fill(base, words * 8, (byte) 0);
    }

    /** ORs every set bit of {@code other} (same size) into this bitmap, clearing {@code other}. */
    public long drainFrom(DirtyBitmap other) {
        if (other.pages != pages) {
            throw new IllegalArgumentException("bitmap sizes differ: " + other.pages + " vs " + pages);
        }
        long count = 0;
        for (long w = 0; w < words; w++) {
            if (other.getWord(w) != 0) {
                long bits = other.getAndClearWord(w);
                orWord(w, bits);
                count += Long.bitCount(bits);
            }
        }
        return count;
    }

    public long count() {
        long n = 0;
        for (long w = 0; w < words; w++) {
            n += Long.bitCount(getWord(w));
        }
        return n;
    }

    private long wordMask(long w) {
        long remaining = pages - w * 64;
        return remaining >= 64 ? -1L : (1L << remaining) - 1;
    }

    private void check(long page) {
        if (page < 0 || page >= pages) {
            throw new IndexOutOfBoundsException("page " + page + " outside bitmap of " + pages + " pages");
        }
    }

    private void checkWord(long word) {
        if (word < 0 || word >= words) {
            throw new IndexOutOfBoundsException("word " + word + " outside bitmap of " + words + " words");
        }
    }

    @Override
    public void close() {
        mapping.close();
    }
}
