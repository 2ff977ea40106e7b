package dev.ferry.vfio.check;

import dev.ferry.vfio.device.VfioException;

import java.util.Optional;

/**
 * What {@link VfioCheck} checks: a kind of device it can open fresh instances of. The check opens
 * several (one to walk the arcs, and a source and two destinations for the load test) and closes
 * each before opening the next, so a target may hand out the same physical device every time;
 * for a kernel device, closing the device fd resets it, which is what "fresh" needs.
 */
public interface CheckTarget {
    /** What is checked, for the report: {@code "emulated:stop-copy,p2p"}, a device path. */
    String description();

    /** Opens a fresh instance: a device in RUNNING with no data session. */
    CheckedDevice open() throws VfioException;

    /**
     * Opens a fresh instance whose internal state changes only through
     * {@link CheckedDevice#advance} and which reports {@link CheckedDevice#stateDigest}, so that
     * a device loaded from another's state can be shown to behave exactly as that one did. Empty
     * when the kind has no such instances (kernel devices).
     */
    default Optional<CheckedDevice> openReplayable() throws VfioException {
        return Optional.empty();
    }
}
