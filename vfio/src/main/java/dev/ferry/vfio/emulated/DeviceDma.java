package dev.ferry.vfio.emulated;

import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.DmaSpace;
import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.device.VfioException;

import java.util.List;

/**
 * The DMA side of an {@link EmulatedVfioDevice}: its reads and writes of the IOVA space, each
 * checked to happen under the device lock while the device runs, the writes logged, and the DMA
 * logging uAPI (start, stop, read-and-clear reports) over a {@link DmaLog}.
 *
 * <h2>Threads</h2>
 * Every method runs holding the device lock; the accessors check that they do.
 */
final class DeviceDma {
    private final EmulatedVfioDevice dev;
    private final DmaSpace dma;
    private DmaLog log;
    /** Bytes the device wrote by DMA so far. */
    long bytes;

    DeviceDma(EmulatedVfioDevice dev, DmaSpace dma) {
        this.dev = dev;
        this.dma = dma;
    }

    /** SET DMA_LOGGING_START, once the device is open and can track DMA. */
    void startLogging(String op, long pageSize, List<IovaRange> ranges) throws VfioException {
        DmaLog.checkStart(op, pageSize, ranges);
        if (log != null) {
            throw new VfioException(op, Errno.EBUSY, "DMA logging already started");
        }
        log = new DmaLog(ranges);
    }

    /** SET DMA_LOGGING_STOP, and closing: the log goes, if there is one. */
    void stopLogging() {
        if (log != null) {
            log.close();
            log = null;
        }
    }

    /** GET DMA_LOGGING_REPORT into the bitmap at {@code bitmapAddress}, clearing what it reports when {@code clear}. */
    void report(String op, long iova, long length, long pageSize, long bitmapAddress, boolean clear)
            throws VfioException {
        if (log == null) {
            throw new VfioException(op, Errno.EINVAL, "DMA logging is not started");
        }
        DmaLog.checkReport(op, iova, length, pageSize, bitmapAddress);
        log.report(iova, length, pageSize, bitmapAddress, clear);
    }

    void write(long iova, long src, long length) {
        check(iova);
        long host = dma.hostAddress(iova, length);
        NativeMemory.copy(src, host, length);
        mark(iova, length);
    }

    void putLong(long iova, long value) {
        check(iova);
        NativeMemory.putLong(dma.hostAddress(iova, 8), value);
        mark(iova, 8);
    }

    void putInt(long iova, int value) {
        check(iova);
        NativeMemory.putInt(dma.hostAddress(iova, 4), value);
        mark(iova, 4);
    }

    long getLong(long iova) {
        check(iova);
        return NativeMemory.getLong(dma.hostAddress(iova, 8));
    }

    int getInt(long iova) {
        check(iova);
        return NativeMemory.getInt(dma.hostAddress(iova, 4));
    }

    /** A DMA read: not logged. */
    void read(long iova, long dst, long length) {
        check(iova);
        NativeMemory.copy(dma.hostAddress(iova, length), dst, length);
    }

    /** Fills {@code length} bytes at {@code iova} as inbound traffic would, logged. */
    void simulate(long iova, long length) {
        check(iova);
        long host = dma.hostAddress(iova, length);
        NativeMemory.fill(host, length, (byte) (0xA5 ^ (bytes >>> 12)));
        mark(iova, length);
    }

    private void check(long iova) {
        if (!Thread.holdsLock(dev.lock)) {
            throw new IllegalStateException(dev.name + ": DMA without the device lock");
        }
        if (!dev.dataPlaneRunning) {
            throw new IllegalStateException(dev.name + ": DMA to 0x" + Long.toHexString(iova) + " while " + dev.state);
        }
    }

    private void mark(long iova, long length) {
        bytes += length;
        if (log != null) {
            log.mark(iova, length);
        }
    }
}
