package dev.ferry.vfio.migration;

import dev.ferry.vfio.device.ForwardingVfioDevice;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.uapi.VfioDeviceState;

import java.util.List;
import java.util.function.UnaryOperator;

/**
 * Passes every call to a real (emulated) device and writes each SET MIG_DEVICE_STATE into a log
 * shared by several devices as "name target", so a test sees the order across devices — which
 * per-device histories cannot show. Optionally wraps the data fds the device returns (to make its
 * writes short, say).
 */
final class RecordingVfioDevice extends ForwardingVfioDevice {
    private final List<String> log;
    private final UnaryOperator<VfioDataFd> fds;

    RecordingVfioDevice(VfioDevice inner, List<String> log) {
        this(inner, log, fd -> fd);
    }

    RecordingVfioDevice(VfioDevice inner, List<String> log, UnaryOperator<VfioDataFd> fds) {
        super(inner);
        this.log = log;
        this.fds = fds;
    }

    @Override
    public VfioDataFd setDeviceState(VfioDeviceState target) throws VfioException {
        log.add(delegate.name() + " " + target);
        VfioDataFd fd = delegate.setDeviceState(target);
        return fd == null ? null : fds.apply(fd);
    }
}
