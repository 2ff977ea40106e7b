package dev.ferry.vfio.device;

import dev.ferry.vfio.fsm.MigCapabilities;
import dev.ferry.vfio.uapi.VfioDeviceState;

import java.util.List;

/**
 * A VFIO device as its device fd presents it (see {@code include/uapi/linux/vfio.h}). Every call
 * maps to one ioctl and keeps the kernel's semantics:
 * <ul>
 *   <li>{@link #setDeviceState} is one SET of MIG_DEVICE_STATE: the device walks the arc table
 *       to {@code target} internally. It refuses (EINVAL) a state the device does not support or
 *       a request the table maps to ERROR. When it fails part-way the device may be anywhere on
 *       the path, or in ERROR: call {@link #deviceState()} to learn where.</li>
 *   <li>Only {@link #reset()} leaves ERROR, and it leaves the device RUNNING with a fresh
 *       guest-visible state and any data session ended.</li>
 *   <li>DMA logging reports are read-and-clear and only set bits.</li>
 * </ul>
 * Implementations are used by one thread at a time (the VMM's run-state protocol serializes
 * migration and VM-change-state callers); the device's own data plane runs on its own threads.
 */
public interface VfioDevice extends AutoCloseable {
    /** The name the VMM uses in messages and sections, e.g. {@code "vf0"} or a PCI address. */
    String name();

    /**
     * GET MIGRATION: the migration flags. Throws ENOTTY when the device has no migration support.
     */
    MigCapabilities migrationFlags() throws VfioException;

    /** GET MIG_DEVICE_STATE. */
    VfioDeviceState deviceState() throws VfioException;

    /**
     * SET MIG_DEVICE_STATE. Returns the data fd when the final arc opened a data session, else
     * null; the caller owns and closes it.
     */
    VfioDataFd setDeviceState(VfioDeviceState target) throws VfioException;

    /** GET MIG_DATA_SIZE: the device's estimate of the STOP_COPY data still to come. */
    long stopCopyLength() throws VfioException;

    /** PROBE of DMA_LOGGING_START: whether the device can track the pages it writes by DMA. */
    boolean dmaLoggingSupported();

    /**
     * DMA_LOGGING_START over at most 256 non-overlapping, page-aligned ranges (none is EINVAL);
     * EBUSY when logging already runs.
     */
    void dmaLoggingStart(long pageSize, List<IovaRange> ranges) throws VfioException;

    /** DMA_LOGGING_STOP. */
    void dmaLoggingStop() throws VfioException;

    /**
     * DMA_LOGGING_REPORT: sets one bit per {@code pageSize} page of {@code [iova, iova + length)}
     * that the device wrote since the last report, in the bitmap at native {@code bitmapAddress}
     * (bit {@code p % 64} of little-endian word {@code p / 64}), and clears those pages in the
     * device's log. Never clears a bit in the caller's bitmap.
     */
    void dmaLoggingReport(long iova, long length, long pageSize, long bitmapAddress) throws VfioException;

    /** VFIO_DEVICE_RESET: function-level reset; the device ends RUNNING. */
    void reset() throws VfioException;

    /** Releases the device (closes its fds); idempotent. */
    @Override
    void close();

    /** Convenience for messages: the state, or ERROR when even GET fails. */
    default VfioDeviceState deviceStateOrError() {
        try {
            return deviceState();
        } catch (VfioException e) {
            return VfioDeviceState.ERROR;
        }
    }
}
