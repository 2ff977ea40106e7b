package dev.ferry.migration.analyze;

/**
 * One bit per page of a RAM block, allocated in chunks of {@value #CHUNK_PAGES} pages the first
 * time a page in them is set, so a sparse stream of a large guest costs little. The block's page
 * count bounds the chunk table; the analyzer only tracks blocks whose total is capped, so a
 * hostile MEM_SIZE cannot make this large. Not thread-safe.
 */
final class PageBitmap {
    static final int CHUNK_SHIFT = 15;
    static final int CHUNK_PAGES = 1 << CHUNK_SHIFT;
    private static final int WORDS = CHUNK_PAGES / 64;

    private final long pages;
    private final long[][] chunks;
    private long count;

    PageBitmap(long pages) {
        this.pages = pages;
        this.chunks = new long[(int) ((pages + CHUNK_PAGES - 1) >>> CHUNK_SHIFT)][];
    }

    long pages() {
        return pages;
    }

    /** Pages whose bit is set. */
    long count() {
        return count;
    }

    boolean get(long page) {
        long[] c = chunks[(int) (page >>> CHUNK_SHIFT)];
        return c != null && (c[word(page)] & bit(page)) != 0;
    }

    /** Sets the page's bit; returns true if it was clear. */
    boolean set(long page) {
        int ci = (int) (page >>> CHUNK_SHIFT);
        long[] c = chunks[ci];
        if (c == null) {
            c = new long[WORDS];
            chunks[ci] = c;
        }
        int w = word(page);
        long b = bit(page);
        if ((c[w] & b) != 0) {
            return false;
        }
        c[w] |= b;
        count++;
        return true;
    }

    void clear(long page) {
        long[] c = chunks[(int) (page >>> CHUNK_SHIFT)];
        int w = word(page);
        long b = bit(page);
        if (c != null && (c[w] & b) != 0) {
            c[w] &= ~b;
            count--;
        }
    }

    private static int word(long page) {
        return (int) ((page & (CHUNK_PAGES - 1)) >>> 6);
    }

    private static long bit(long page) {
        return 1L << (page & 63);
    }
}
