package dev.ferry.migration.analyze;

/**
 * One section of a stream (by section id) and how often each header type carried it.
 *
 * @param bytes       all bytes of the section's appearances: headers, data and footers
 * @param firstOffset file offset of its START or FULL header
 */
public record SectionSummary(long sectionId, String idstr, long instanceId, long version, Kind kind, int starts,
                             int parts, int ends, int fulls, long bytes, long firstOffset) {
    /** How the analyzer read the section's data. */
    public enum Kind {
        /** QEMU's "ram" v4: records counted per block. */
        RAM,
        /** Decoded with its vmdesc entry. */
        DEVICE,
        /** QEMU's "block" v1 block migration: records counted per disk. */
        BLOCK,
        /** A VFIO device's section: its tags walked, data blocks counted. */
        VFIO,
        /** A device section of a stream without vmdesc: skipped to its footer, not decoded. */
        UNDESCRIBED
    }
}
