package dev.ferry.vfio.kernel;

/**
 * The seam between Ferry's VFIO code and the kernel: the five system calls a VFIO device needs,
 * on bare fd numbers. {@link NativeVfioSyscalls} makes them; tests put a fake kernel here that
 * enforces the uAPI's rules byte by byte, so everything above this interface runs unchanged
 * against both.
 *
 * <p>Every failure is a {@link dev.ferry.core.sys.NativeCallException} carrying the errno, as
 * {@code -1/errno} from the kernel. Callers react to specific values: ENOMSG from {@link #read}
 * of a migration data fd means "no data now", not an error.
 *
 * <p>Arguments are native addresses: {@code argAddress} points to the ioctl's struct (or is
 * the integer argument itself for ioctls that take one, like VFIO_CHECK_EXTENSION).
 */
public interface VfioSyscalls {
    /** open(2); returns the new fd, which the caller owns. */
    int open(String path, int flags);

    /** close(2); the fd is gone afterwards even when this throws. */
    void close(int fd);

    /** ioctl(2); returns the non-negative result (a new fd for VFIO_GROUP_GET_DEVICE_FD). */
    int ioctl(int fd, long request, long argAddress);

    /** read(2) into native memory: the byte count, 0 at end of file. */
    long read(int fd, long address, long length);

    /** write(2) from native memory: the byte count accepted, possibly fewer than asked. */
    long write(int fd, long address, long length);
}
