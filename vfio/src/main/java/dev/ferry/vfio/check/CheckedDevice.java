package dev.ferry.vfio.check;

import dev.ferry.vfio.device.DmaSpace;
import dev.ferry.vfio.device.VfioDevice;

import java.util.Optional;
import java.util.OptionalLong;

/**
 * One opened instance of the device under check, owning the device and whatever it was opened
 * with (the guest memory mapped for its DMA). Closing it closes both, once.
 *
 * <p>The optional hooks are what a device kind can offer beyond the uAPI: a deterministic
 * workload and a digest of its internal state let {@link Rule#LOAD} compare a loaded device with
 * its source; a kernel device has neither, and the rule falls back to what the uAPI alone shows
 * (see {@link VfioCheck}).
 */
public interface CheckedDevice extends AutoCloseable {
    /** The device. */
    VfioDevice device();

    /**
     * The IOVA space mapped for the device, which the check logs with DMA logging and reads to
     * see which pages the device wrote; empty when the check cannot see it.
     */
    default Optional<DmaSpace> dmaSpace() {
        return Optional.empty();
    }

    /**
     * Runs {@code steps} steps of the device kind's own deterministic workload, on the caller's
     * thread, while the device is in a running state; false when the kind has none. A device may
     * DMA while doing so, which is what {@link Rule#DMA_LOG} looks for.
     */
    default boolean advance(int steps) {
        return false;
    }

    /**
     * A digest of the device's whole internal state; empty when the kind cannot show it. Equal
     * digests mean equal state.
     */
    default OptionalLong stateDigest() {
        return OptionalLong.empty();
    }

    /** Closes the device and what the instance owns; idempotent. */
    @Override
    void close();

    /** An instance that is just the device: no DMA space known, no workload, no digest. */
    static CheckedDevice of(VfioDevice device) {
        return new CheckedDevice() {
            @Override
            public VfioDevice device() {
                return device;
            }

            @Override
            public void close() {
                device.close();
            }
        };
    }

    /** A device that DMAs into {@code dma}, backed by {@code memory}; closes the device, then the memory. */
    static CheckedDevice withMemory(VfioDevice device, DmaSpace dma, AutoCloseable memory) {
        return new CheckedDevice() {
            private boolean closed;

            @Override
            public VfioDevice device() {
                return device;
            }

            @Override
            public Optional<DmaSpace> dmaSpace() {
                return Optional.of(dma);
            }

            @Override
            public synchronized void close() {
                if (closed) {
                    return;
                }
                closed = true;
                try {
                    device.close();
                } finally {
                    try {
                        memory.close();
                    } catch (Exception e) {
                        throw new IllegalStateException("closing the memory of " + device.name(), e);
                    }
                }
            }
        };
    }
}
