package dev.ferry.vfio.migration;

/**
 * The part of a VFIO device's state its owner keeps in the VMM rather than in the device: what
 * QEMU's vfio-pci saves with {@code vfio_save_config} (PCI config space, BAR and MSI-X setup).
 * It travels in the device's config section (CONFIG_STATE ... END_OF_STATE) inside the downtime
 * window, after the device data. A device without such state passes none and the section is
 * empty.
 */
public interface VfioDeviceConfig {
    /** The largest config state a stream may carry; larger is refused on both sides. */
    int MAX_BYTES = 1 << 20;

    /** The config state now, at most {@link #MAX_BYTES}. Migration thread, VM stopped. */
    byte[] save();

    /**
     * Applies a config state read from the stream. Throws {@link IllegalArgumentException} when
     * the bytes are not a state this device accepts. Incoming thread, VM not running.
     */
    void load(byte[] state);
}
