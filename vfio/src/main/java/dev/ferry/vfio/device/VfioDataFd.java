package dev.ferry.vfio.device;

/**
 * The migration data fd a SET of MIG_DEVICE_STATE returns when an arc opens a data session:
 * RUNNING→PRE_COPY, RUNNING_P2P→PRE_COPY_P2P and STOP→STOP_COPY open a saving session (one fd
 * for the whole PRE_COPY / PRE_COPY_P2P / STOP_COPY group), STOP→RESUMING a resuming one. When the
 * device leaves the session's states the fd stops working (reads and writes fail with ENODEV)
 * but stays open until its owner closes it.
 *
 * <p>Buffers are native memory (guest-page-sized transfers, no heap copy). One thread uses a data
 * fd at a time.
 */
public interface VfioDataFd extends AutoCloseable {
    /** {@link #read} result for {@code -1/ENOMSG} in PRE_COPY*: no data at the moment. */
    long NO_DATA = -1;

    /**
     * Reads up to {@code length} bytes of device state into {@code address}. Returns the count
     * read (&gt; 0), 0 at the end of the state (STOP_COPY: all sent, permanently), or
     * {@link #NO_DATA} when a PRE_COPY device has nothing now. Any other failure throws.
     */
    long read(long address, long length) throws VfioException;

    /** Writes device state (RESUMING); returns the count accepted, which may be less than asked. */
    long write(long address, long length) throws VfioException;

    /** VFIO_MIG_GET_PRECOPY_INFO; fails with EINVAL outside PRE_COPY / PRE_COPY_P2P. */
    PrecopyInfo precopyInfo() throws VfioException;

    /** Closes the fd; idempotent. */
    @Override
    void close();
}
