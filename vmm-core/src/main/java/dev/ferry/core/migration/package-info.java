/**
 * The migration SPI: what a device implements so that a live migration carries its state. The
 * engine (module {@code migration-state-machine}) reads only this package's
 * {@link dev.ferry.core.migration.MigrationRegistry} and never sees a device class.
 *
 * <ul>
 *   <li>{@link dev.ferry.core.migration.VmStateDescription} — declarative, versioned state sent
 *       once in the downtime window (QEMU's VMStateDescription): fields, arrays of structs,
 *       subsections gated by {@code needed}, pre-save and post-load hooks; loaded after RAM, so a
 *       post-load check may read guest memory. Register it with
 *       {@code registry.registerVmState(idstr, instance, description, state, priority)}. A custom
 *       {@link dev.ferry.core.migration.VmStateField} writes a format of its own (virtio's).</li>
 *   <li>{@link dev.ferry.core.migration.LiveSaveHandler} — iterable state sent while the guest runs
 *       (RAM, VFIO device data), QEMU's SaveVMHandlers; {@link dev.ferry.core.migration.NonIterableSave}
 *       for its once-at-switchover part.</li>
 *   <li>{@link dev.ferry.core.migration.MigrationNotifier}, {@link dev.ferry.core.migration.MigrationBlocker}
 *       — rollback on failure; refusing a migration with a reason.</li>
 *   <li>{@link dev.ferry.core.migration.MigrationPriority} — save order (DMA devices before RAM, vCPUs last).</li>
 * </ul>
 * Every load treats its input as hostile: bound every count and length before use, refuse with a
 * {@link dev.ferry.core.migration.MigrationException} that says what and where, and apply nothing
 * until everything checked.
 */
package dev.ferry.core.migration;
