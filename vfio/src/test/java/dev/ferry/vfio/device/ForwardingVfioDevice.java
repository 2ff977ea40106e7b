package dev.ferry.vfio.device;

import dev.ferry.vfio.fsm.MigCapabilities;
import dev.ferry.vfio.uapi.VfioDeviceState;

import java.util.List;

/**
 * A VFIO device that passes every call to another one: the base of test devices that override
 * one call (to record it, or to break one rule) and keep the real device's behaviour otherwise.
 */
public class ForwardingVfioDevice implements VfioDevice {
    protected final VfioDevice delegate;

    public ForwardingVfioDevice(VfioDevice delegate) {
        this.delegate = delegate;
    }

    @Override
    public String name() {
        return delegate.name();
    }

    @Override
    public MigCapabilities migrationFlags() throws VfioException {
        return delegate.migrationFlags();
    }

    @Override
    public VfioDeviceState deviceState() throws VfioException {
        return delegate.deviceState();
    }

    @Override
    public VfioDataFd setDeviceState(VfioDeviceState target) throws VfioException {
        return delegate.setDeviceState(target);
    }

    @Override
    public long stopCopyLength() throws VfioException {
        return delegate.stopCopyLength();
    }

    @Override
    public boolean dmaLoggingSupported() {
        return delegate.dmaLoggingSupported();
    }

    @Override
    public void dmaLoggingStart(long pageSize, List<IovaRange> ranges) throws VfioException {
        delegate.dmaLoggingStart(pageSize, ranges);
    }

    @Override
    public void dmaLoggingStop() throws VfioException {
        delegate.dmaLoggingStop();
    }

    @Override
    public void dmaLoggingReport(long iova, long length, long pageSize, long bitmapAddress) throws VfioException {
        delegate.dmaLoggingReport(iova, length, pageSize, bitmapAddress);
    }

    @Override
    public void reset() throws VfioException {
        delegate.reset();
    }

    @Override
    public void close() {
        delegate.close();
    }
}
