package dev.ferry.vfio.kernel;

import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.fsm.MigCapabilities;
import dev.ferry.vfio.uapi.VfioDeviceFeature;
import dev.ferry.vfio.uapi.VfioDeviceFeatureDmaLoggingControl;
import dev.ferry.vfio.uapi.VfioDeviceFeatureDmaLoggingReport;
import dev.ferry.vfio.uapi.VfioDeviceFeatureMigDataSize;
import dev.ferry.vfio.uapi.VfioDeviceFeatureMigState;
import dev.ferry.vfio.uapi.VfioDeviceFeatureMigration;
import dev.ferry.vfio.uapi.VfioDeviceInfo;
import dev.ferry.vfio.uapi.VfioDeviceState;
import dev.ferry.vfio.uapi.VfioIoctls;
import dev.ferry.vfio.uapi.VfioStruct;

import java.util.ArrayList;
import java.util.List;

/**
 * A VFIO device opened through the kernel — its device fd and the container/group or
 * iommufd fds that map guest RAM for it — presenting the {@link VfioDevice} contract with one
 * ioctl per call. {@link KernelVfioDeviceFactory} opens it; this class owns every fd from then
 * on and closes them once, in reverse order of opening.
 *
 * <p>Each call fills a flyweight with its exact {@code argsz}, issues the ioctl through
 * {@link VfioSyscalls}, and turns {@code -1/errno} into a {@link VfioException} naming the call.
 * What the kernel alone decides (arc validity, data sessions, ENOMSG, DMA logging rules) is left
 * to the kernel; the few requests the flyweights cannot express (ERROR as a target, no ranges,
 * more than 256) are refused here with the errno the kernel would give.
 *
 * <p>Data fds returned by SET MIG_DEVICE_STATE belong to the caller; any still open when the
 * device closes are closed with it, since the kernel's session files would otherwise outlive
 * the device as dead fds.
 *
 * <p>One thread at a time, per {@link VfioDevice}; the flyweights are reused across calls so a
 * migration allocates nothing per call (DMA_LOGGING_START, once per migration, excepted).
 */
public final class KernelVfioDevice implements VfioDevice {
    private final VfioSyscalls sys;
    private final String name;
    private final OwnedFds fds;
    private final int deviceFd;
    private final boolean canReset;
    private final int numRegions;
    private final int numIrqs;

    private final VfioDeviceFeature header = new VfioDeviceFeature();
    private final VfioDeviceFeatureMigration migration = new VfioDeviceFeatureMigration();
    private final VfioDeviceFeatureMigState migState = new VfioDeviceFeatureMigState();
    private final VfioDeviceFeatureMigDataSize dataSize = new VfioDeviceFeatureMigDataSize();
    private final VfioDeviceFeatureDmaLoggingReport report = new VfioDeviceFeatureDmaLoggingReport();
    private final List<KernelDataFd> dataFds = new ArrayList<>();
    private boolean closed;

    private KernelVfioDevice(VfioSyscalls sys, String name, OwnedFds fds, int deviceFd, VfioDeviceInfo info) {
        this.sys = sys;
        this.name = name;
        this.fds = fds;
        this.deviceFd = deviceFd;
        this.canReset = info.canReset();
        this.numRegions = info.numRegions();
        this.numIrqs = info.numIrqs();
    }

    /**
     * The last opening step: VFIO_DEVICE_GET_INFO on the device fd, which must describe a
     * vfio-pci device. On success the device owns {@code fds} (the device fd among them); on
     * failure the caller still does and closes them.
     */
    static KernelVfioDevice create(VfioSyscalls sys, String name, OwnedFds fds, int deviceFd) throws VfioException {
        try (VfioDeviceInfo info = new VfioDeviceInfo()) {
            info.prepare();
            try {
                sys.ioctl(deviceFd, VfioIoctls.VFIO_DEVICE_GET_INFO, info.address());
            } catch (NativeCallException e) {
                throw new VfioException("open " + name + ": VFIO_DEVICE_GET_INFO", e.errno(), null, e);
            }
            if (!info.isPci()) {
                throw new VfioException("open " + name + ": VFIO_DEVICE_GET_INFO", Errno.ENODEV,
                        "flags 0x" + Integer.toHexString(info.flags()) + " lack VFIO_DEVICE_FLAGS_PCI: not a vfio-pci "
                                + "device, which is all Ferry drives");
            }
            return new KernelVfioDevice(sys, name, fds, deviceFd, info);
        }
    }

    @Override
    public String name() {
        return name;
    }

    /** Whether VFIO_DEVICE_GET_INFO reported VFIO_DEVICE_FLAGS_RESET. */
    public boolean canReset() {
        return canReset;
    }

    /** {@code num_regions} of VFIO_DEVICE_GET_INFO (BARs, ROM, config space, ...). */
    public int numRegions() {
        return numRegions;
    }

    /** {@code num_irqs} of VFIO_DEVICE_GET_INFO. */
    public int numIrqs() {
        return numIrqs;
    }

    @Override
    public MigCapabilities migrationFlags() throws VfioException {
        checkOpen("GET MIGRATION");
        migration.prepareGet();
        feature("GET MIGRATION", migration);
        return new MigCapabilities(migration.migrationFlags());
    }

    @Override
    public VfioDeviceState deviceState() throws VfioException {
        checkOpen("GET MIG_DEVICE_STATE");
        migState.prepareGet();
        feature("GET MIG_DEVICE_STATE", migState);
        int v = migState.deviceStateValue();
        try {
            return VfioDeviceState.fromValue(v);
        } catch (IllegalArgumentException e) {
            throw new VfioException("GET MIG_DEVICE_STATE", Errno.ERANGE, name + ": " + e.getMessage(), e);
        }
    }

    @Override
    public VfioDataFd setDeviceState(VfioDeviceState target) throws VfioException {
        String op = "SET MIG_DEVICE_STATE ->" + target;
        checkOpen(op);
        if (target == VfioDeviceState.ERROR) {
            throw new VfioException(op, Errno.EINVAL, name + ": ERROR cannot be requested");
        }
        migState.prepareSet(target);
        feature(op, migState);
        int fd = migState.dataFd();
        if (fd < 0) {
            return null;
        }
        KernelDataFd data = new KernelDataFd(sys, fd, name, target);
        dataFds.removeIf(KernelDataFd::isClosed);
        dataFds.add(data);
        return data;
    }

    @Override
    public long stopCopyLength() throws VfioException {
        checkOpen("GET MIG_DATA_SIZE");
        dataSize.prepareGet();
        feature("GET MIG_DATA_SIZE", dataSize);
        return dataSize.stopCopyLength();
    }

    /**
     * PROBE | SET of DMA_LOGGING_START: succeeds when the driver tracks DMA (has log ops), ENOTTY
     * when it does not. Any failure, of whatever errno, reads as "not supported": the caller then
     * treats all DMA-able memory as dirty, which is always safe.
     */
    @Override
    public boolean dmaLoggingSupported() {
        if (closed) {
            return false;
        }
        header.prepareProbe(VfioIoctls.VFIO_DEVICE_FEATURE_DMA_LOGGING_START, VfioIoctls.VFIO_DEVICE_FEATURE_SET);
        try {
            sys.ioctl(deviceFd, VfioIoctls.VFIO_DEVICE_FEATURE, header.address());
            return true;
        } catch (NativeCallException e) {
            return false;
        }
    }

    @Override
    public void dmaLoggingStart(long pageSize, List<IovaRange> ranges) throws VfioException {
        String op = "SET DMA_LOGGING_START";
        checkOpen(op);
        if (ranges.isEmpty()) {
            throw new VfioException(op, Errno.EINVAL, name + ": num_ranges is 0");
        }
        if (ranges.size() > VfioDeviceFeatureDmaLoggingControl.MAX_RANGES) {
            throw new VfioException(op, Errno.E2BIG, name + ": " + ranges.size() + " ranges, the kernel takes at most "
                    + VfioDeviceFeatureDmaLoggingControl.MAX_RANGES);
        }
        try (var control = new VfioDeviceFeatureDmaLoggingControl(ranges.size())) {
            for (int i = 0; i < ranges.size(); i++) {
                control.setRange(i, ranges.get(i).iova(), ranges.get(i).length());
            }
            try {
                control.prepareStart(pageSize, ranges.size());
            } catch (IllegalArgumentException e) {
                throw new VfioException(op, Errno.EINVAL, name + ": " + e.getMessage(), e);
            }
            feature(op, control);
        }
    }

    @Override
    public void dmaLoggingStop() throws VfioException {
        checkOpen("SET DMA_LOGGING_STOP");
        header.prepare(VfioIoctls.VFIO_DEVICE_FEATURE_SET, VfioIoctls.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP);
        feature("SET DMA_LOGGING_STOP", header);
    }

    @Override
    public void dmaLoggingReport(long iova, long length, long pageSize, long bitmapAddress) throws VfioException {
        String op = "GET DMA_LOGGING_REPORT";
        checkOpen(op);
        try {
            report.prepareGet(iova, length, pageSize, bitmapAddress);
        } catch (IllegalArgumentException e) {
            throw new VfioException(op, Errno.EINVAL, name + ": " + e.getMessage(), e);
        }
        feature(op, report);
    }

    @Override
    public void reset() throws VfioException {
        checkOpen("VFIO_DEVICE_RESET");
        try {
            sys.ioctl(deviceFd, VfioIoctls.VFIO_DEVICE_RESET, 0);
        } catch (NativeCallException e) {
            throw new VfioException("VFIO_DEVICE_RESET", e.errno(),
                    canReset ? name : name + " does not report VFIO_DEVICE_FLAGS_RESET", e);
        }
    }

    /**
     * Closes data fds still open, frees the flyweights, and closes the device's fds newest first
     * (device, then group and container, or iommufd). Idempotent. A close(2) that fails is
     * reported after every fd has been closed — it means a double close somewhere.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        List<RuntimeException> failures = new ArrayList<>();
        for (KernelDataFd d : dataFds) {
            try {
                d.close();
            } catch (NativeCallException e) {
                failures.add(e);
            }
        }
        dataFds.clear();
        for (VfioStruct s : List.of(header, migration, migState, dataSize, report)) {
            s.close();
        }
        failures.addAll(fds.closeAll());
        if (!failures.isEmpty()) {
            RuntimeException first = failures.get(0);
            failures.subList(1, failures.size()).forEach(first::addSuppressed);
            throw first;
        }
    }

    @Override
    public String toString() {
        return "KernelVfioDevice[" + name + ", device fd " + deviceFd + (closed ? ", closed" : "") + "]";
    }

    /** One VFIO_DEVICE_FEATURE call with a prepared buffer; the caller checked {@link #checkOpen}. */
    private void feature(String op, VfioDeviceFeature buffer) throws VfioException {
        try {
            sys.ioctl(deviceFd, VfioIoctls.VFIO_DEVICE_FEATURE, buffer.address());
        } catch (NativeCallException e) {
            throw new VfioException(op, e.errno(), name, e);
        }
    }

    private void checkOpen(String op) throws VfioException {
        if (closed) {
            throw new VfioException(op, Errno.EBADF, name + " is closed");
        }
    }
}
