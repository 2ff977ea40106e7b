package dev.ferry.core.migration;

import java.io.IOException;

/**
 * The non-iterable part of a {@link LiveSaveHandler} (QEMU's {@code save_state} next to the live
 * callbacks): state sent once in the downtime window, after every live handler's complete step,
 * as a SECTION_FULL under the handler's own idstr and instance, among the device states. VFIO
 * sends a device's config space this way. The destination hands that section to the same
 * {@link LiveSaveHandler#loadState}, which tells it apart by its content.
 *
 * <p>Runs on the migration thread with the VM stopped.
 */
public interface NonIterableSave {
    void saveState(SaveStream out) throws IOException, MigrationException;
}
