package dev.ferry.migration.analyze;

import java.util.List;

/**
 * The CONFIGURATION section: the source's machine type and the subsections QEMU adds when they
 * matter to the destination.
 *
 * @param machineType    e.g. "pc-i440fx-7.2", or "ferry"
 * @param capabilities   migration capabilities the destination must share (QEMU: x-ignore-shared, mapped-ram)
 * @param targetPageBits the target page size as a shift, or -1 when the stream does not say (x86)
 * @param uuid           the VM's UUID when the validate-uuid capability sent it, else null
 */
public record MachineConfiguration(String machineType, List<String> capabilities, int targetPageBits, String uuid) {
}
