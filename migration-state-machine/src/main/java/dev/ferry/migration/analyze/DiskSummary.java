package dev.ferry.migration.analyze;

/**
 * A block device copied by QEMU's (pre-9.1) block migration, the "block" section.
 *
 * @param blocks     1 MiB chunks sent with their data
 * @param zeroBlocks chunks sent as "all zero" without data
 */
public record DiskSummary(String name, long blocks, long zeroBlocks) {
}
