package dev.ferry.vfio.device;

/**
 * What VFIO_MIG_GET_PRECOPY_INFO reports: {@code initialBytes} still to read before the device's
 * initial state is out (counts down as the data fd is read), and {@code dirtyBytes} the device
 * changed since (grows while the device runs).
 */
public record PrecopyInfo(long initialBytes, long dirtyBytes) {
    public long total() {
        return initialBytes + dirtyBytes;
    }
}
