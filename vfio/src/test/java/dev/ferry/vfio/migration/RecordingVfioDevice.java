package dev.ferry.vfio.migration;

import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.fsm.MigCapabilities;
import dev.ferry.vfio.uapi.VfioDeviceState;

import java.util.List;
import java.util.function.UnaryOperator;

/**
 * Passes every call to a real (emulated) device and writes each SET MIG_DEVICE_STATE into a log
 * shared by several devices as "name target", so a test sees the order across devices — which
 * per-device histories cannot show. Optionally wraps the data fds the device returns (to make its
 * writes short, say).
 */
final class RecordingVfioDevice implements VfioDevice {
    private final VfioDevice inner;
    private final List<String> log;
    private final UnaryOperator<VfioDataFd> fds;

    RecordingVfioDevice(VfioDevice inner, List<String> log) {
        this(inner, log, fd -> fd);
    }

    RecordingVfioDevice(VfioDevice inner, List<String> log, UnaryOperator<VfioDataFd> fds) {
        this.inner = inner;
        this.log = log;
        this.fds = fds;
    }

    @Override
    public String name() {
        return inner.name();
    }

    @Override
    public MigCapabilities migrationFlags() throws VfioException {
        return inner.migrationFlags();
    }

    @Override
    public VfioDeviceState deviceState() throws VfioException {
        return inner.deviceState();
    }

    @Override
    public VfioDataFd setDeviceState(VfioDeviceState target) throws VfioException {
        log.add(inner.name() + " " + target);
        VfioDataFd fd = inner.setDeviceState(target);
        return fd == null ? null : fds.apply(fd);
    }

    @Override
    public long stopCopyLength() throws VfioException {
        return inner.stopCopyLength();
    }

    @Override
    public boolean dmaLoggingSupported() {
        return inner.dmaLoggingSupported();
    }

    @Override
    public void dmaLoggingStart(long pageSize, List<IovaRange> ranges) throws VfioException {
        inner.dmaLoggingStart(pageSize, ranges);
    }

    @Override
    public void dmaLoggingStop() throws VfioException {
        inner.dmaLoggingStop();
    }

    @Override
    public void dmaLoggingReport(long iova, long length, long pageSize, long bitmapAddress) throws VfioException {
        inner.dmaLoggingReport(iova, length, pageSize, bitmapAddress);
    }

    @Override
    public void reset() throws VfioException {
        inner.reset();
    }

    @Override
    public void close() {
        inner.close();
    }
}
