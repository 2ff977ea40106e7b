package dev.ferry.migration.analyze;

import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Everything {@link StreamAnalyzer} learned from one stream file. Immutable.
 *
 * @param file          the name the caller gave the file
 * @param pageSize      target page size (the vmdesc's "page_size"; 4096 without vmdesc)
 * @param configuration the CONFIGURATION section, or null when the stream has none
 * @param sections      every section by id, in the order of their first header
 * @param ramBlocks     the RAM blocks MEM_SIZE listed, in its order, with their page counts
 * @param devices       device sections in stream order
 * @param disks         disks of QEMU's block migration, if the stream has a "block" section
 * @param vfioDevices   VFIO devices (sections named {@code <device>/vfio}) and what their sections carried
 * @param commands      COMMAND sections by name (OPEN_RETURN_PATH, PING, ...) and how many
 * @param vmdesc        the trailing VMDESCRIPTION, or null
 * @param eofOffset     file offset of the EOF marker
 * @param notes         things a reader should know that are not errors ("no vmdesc", trailing bytes, ...)
 */
public record StreamAnalysis(String file, long fileSize, int pageSize, MachineConfiguration configuration,
                             List<SectionSummary> sections, List<RamBlockSummary> ramBlocks, List<DeviceState> devices,
                             List<DiskSummary> disks, List<VfioDeviceSummary> vfioDevices, Map<String, Integer> commands, VmDescription vmdesc,
                             long eofOffset, List<String> notes) {

    public Optional<VmDescription> description() {
        return Optional.ofNullable(vmdesc);
    }

    /** Sum of the RAM block lengths: QEMU's {@code query-migrate} ram "total". */
    public long ramTotalBytes() {
        return ramBlocks.stream().mapToLong(RamBlockSummary::length).sum();
    }

    /** ZERO records of all blocks: QEMU's ram "duplicate". */
    public long zeroPages() {
        return ramBlocks.stream().mapToLong(RamBlockSummary::zeroPages).sum();
    }

    /** PAGE records of all blocks: QEMU's ram "normal". */
    public long normalPages() {
        return ramBlocks.stream().mapToLong(RamBlockSummary::normalPages).sum();
    }

    /** Pages sent at least once, or -1 when not tracked. */
    public long distinctPages() {
        long sum = 0;
        for (RamBlockSummary b : ramBlocks) {
            if (b.distinctPages() < 0) {
                return -1;
            }
            sum += b.distinctPages();
        }
        return sum;
    }

    /** The first device section named {@code idstr} with instance {@code instanceId}. */
    public Optional<DeviceState> device(String idstr, long instanceId) {
        return devices.stream().filter(d -> d.idstr().equals(idstr) && d.instanceId() == instanceId).findFirst();
    }
}
