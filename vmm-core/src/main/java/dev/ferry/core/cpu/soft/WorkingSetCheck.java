package dev.ferry.core.cpu.soft;

/**
 * The result of scanning a whole working set (see {@link SoftCpuEngine#verifyWorkingSet}).
 *
 * @param pages        pages scanned
 * @param written      pages holding a valid soft page
 * @param zero         pages never written
 * @param corrupt      pages that are neither
 * @param firstCorrupt the lowest corrupt page's verdict, or null
 */
public record WorkingSetCheck(long pages, long written, long zero, long corrupt, PageCheck firstCorrupt) {
    /** True when no page is corrupt. */
    public boolean intact() {
        return corrupt == 0;
    }

    @Override
    public String toString() {
        return pages + " pages: " + written + " written, " + zero + " zero, " + corrupt + " corrupt"
                + (firstCorrupt == null ? "" : " (first: " + firstCorrupt.problem() + ")");
    }
}
