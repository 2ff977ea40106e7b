package dev.ferry.migration.analyze;

/**
 * One device section's state as the stream carried it.
 *
 * @param sectionType "FULL" for a device's whole state; "START", "PART" or "END" for an iterable
 *                    device the vmdesc describes
 * @param offset      file offset of the section header
 * @param bytes       bytes of the section's data (without header and footer)
 * @param vmsdName    the vmdesc's "vmsd_name", or null
 * @param state       the decoded fields and subsections, or null when not decoded (see {@code note})
 * @param note        why the state is not decoded, or null
 */
public record DeviceState(String idstr, long instanceId, long version, long sectionId, String sectionType, long offset,
                          long bytes, String vmsdName, FieldValue.Struct state, String note) {
}
