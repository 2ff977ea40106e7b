/**
 * QEMU's VFIO migration (hw/vfio/migration.c) over the {@link dev.ferry.vfio.device.VfioDevice}
 * contract and the vmm-core migration SPI, so kernel and emulated devices migrate alike and the
 * engine never sees a VFIO class. {@link dev.ferry.vfio.migration.VfioMigration#attach} is the
 * entry point; {@link dev.ferry.vfio.migration.VfioMigrationSet} holds a machine's devices, their
 * shared blocker and their statistics for {@code query-migrate}.
 */
package dev.ferry.vfio.migration;
