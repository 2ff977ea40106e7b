package dev.ferry.migration.analyze;

import java.util.List;

/**
 * One RAM block of a stream: its name and length from the MEM_SIZE record, and what the RAM
 * sections sent for it.
 *
 * @param zeroPages     ZERO records (QEMU's {@code query-migrate} "duplicate"; a page sent twice counts twice)
 * @param normalPages   PAGE records (QEMU's "normal")
 * @param distinctPages pages that got at least one record, or -1 when not tracked (RAM above
 *                      {@link RamSectionReader#TRACK_LIMIT})
 * @param runs          the block's pages as runs of their final state; empty unless asked for
 * @param runsCut       true when there were more runs than the analyzer keeps
 */
public record RamBlockSummary(String name, long length, long zeroPages, long normalPages, long distinctPages,
                              List<PageRun> runs, boolean runsCut) {
}
