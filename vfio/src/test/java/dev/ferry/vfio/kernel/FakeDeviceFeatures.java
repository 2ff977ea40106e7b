package dev.ferry.vfio.kernel;

import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;
import dev.ferry.vfio.uapi.VfioDeviceState;
import dev.ferry.vfio.uapi.VfioIoctls;

import java.util.ArrayList;
import java.util.List;

import static dev.ferry.core.sys.Errno.EFAULT;
import static dev.ferry.core.sys.Errno.EINVAL;
import static dev.ferry.core.sys.Errno.ENOTTY;
import static dev.ferry.vfio.kernel.FakeVfioKernel.E2BIG;
import static dev.ferry.vfio.kernel.FakeVfioKernel.EOVERFLOW;
import static dev.ferry.vfio.kernel.FakeVfioKernel.fail;
import static dev.ferry.vfio.uapi.VfioIoctls.VFIO_DEVICE_FEATURE_GET;
import static dev.ferry.vfio.uapi.VfioIoctls.VFIO_DEVICE_FEATURE_MASK;
import static dev.ferry.vfio.uapi.VfioIoctls.VFIO_DEVICE_FEATURE_PROBE;
import static dev.ferry.vfio.uapi.VfioIoctls.VFIO_DEVICE_FEATURE_SET;

/**
 * One VFIO_DEVICE_FEATURE call on a device fd of the {@link FakeVfioKernel}: the checks of
 * {@code vfio_ioctl_device_feature()} and its per-feature handlers in {@code drivers/vfio/vfio_main.c}
 * and of {@code vfio_check_feature()} in {@code include/linux/vfio.h}, then the call into the
 * emulated driver, and the answer written back into the caller's struct. The rules are listed in
 * {@link FakeVfioKernel}'s documentation.
 */
final class FakeDeviceFeatures {
    /** Refuses a short argsz (EINVAL), counting it. */
    interface ArgszRejector {
        NativeCallException reject(String call, long argsz, long minsz);
    }

    /** Installs an fd for a data session the driver opened. */
    interface DataFdOpener {
        int open(FakeHostDevice device, VfioDataFd session, boolean saving);
    }

    private static final String CALL = "VFIO_DEVICE_FEATURE";
    private static final int HEADER = 8;
    private static final int MAX_RANGES = 256; // LOG_MAX_RANGES with 4 KiB pages
    private static final long SZ_4K = 4096;

    private final FakeHostDevice device;
    private final EmulatedVfioDevice driver;
    private final ArgszRejector argsz;
    private final DataFdOpener dataFds;

    FakeDeviceFeatures(FakeHostDevice device, ArgszRejector argsz, DataFdOpener dataFds) {
        this.device = device;
        this.driver = device.emulated();
        this.argsz = argsz;
        this.dataFds = dataFds;
    }

    int call(long arg) {
        if (arg == 0) {
            throw fail(CALL, EFAULT, "NULL argument");
        }
        int size = NativeMemory.getInt(arg);
        int flags = NativeMemory.getInt(arg + 4);
        if (size < HEADER) {
            throw argsz.reject(CALL, size, HEADER);
        }
        int known = VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET
                | VFIO_DEVICE_FEATURE_PROBE;
        if ((flags & ~known) != 0) {
            throw fail(CALL, EINVAL, "unknown flags 0x" + Integer.toHexString(flags & ~known));
        }
        boolean get = (flags & VFIO_DEVICE_FEATURE_GET) != 0;
        boolean set = (flags & VFIO_DEVICE_FEATURE_SET) != 0;
        boolean probe = (flags & VFIO_DEVICE_FEATURE_PROBE) != 0;
        if (!probe && get && set) {
            throw fail(CALL, EINVAL, "GET and SET together without PROBE");
        }
        long data = arg + HEADER;
        int payload = size - HEADER;
        int feature = flags & VFIO_DEVICE_FEATURE_MASK;
        boolean migration = driver.spec().migration();
        boolean logging = driver.dmaLoggingSupported();
        boolean migrationFeature = feature == VfioIoctls.VFIO_DEVICE_FEATURE_MIGRATION
                || feature == VfioIoctls.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE
                || feature == VfioIoctls.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE;
        boolean loggingFeature = feature == VfioIoctls.VFIO_DEVICE_FEATURE_DMA_LOGGING_START
                || feature == VfioIoctls.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP
                || feature == VfioIoctls.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT;
        if (migrationFeature && !migration || loggingFeature && !logging) {
            // !device->mig_ops / !device->log_ops: before any other check of the call
            throw fail(CALL, ENOTTY, device.pciAddress() + " has no " + (migrationFeature ? "migration" : "DMA logging")
                    + " support");
        }
        switch (feature) {
            case VfioIoctls.VFIO_DEVICE_FEATURE_MIGRATION -> {
                if (!check(flags, payload, VFIO_DEVICE_FEATURE_GET, 8, "MIGRATION")) {
                    return 0;
                }
                NativeMemory.putLong(data, driverCall("GET MIGRATION", () -> driver.migrationFlags().flags()));
                return 0;
            }
            case VfioIoctls.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE -> {
                if (!check(flags, payload, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET, 8,
                        "MIG_DEVICE_STATE")) {
                    return 0;
                }
                return get ? getState(data) : setState(data);
            }
            case VfioIoctls.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE -> {
                if (!check(flags, payload, VFIO_DEVICE_FEATURE_GET, 8, "MIG_DATA_SIZE")) {
                    return 0;
                }
                NativeMemory.putLong(data, driverCall("GET MIG_DATA_SIZE", driver::stopCopyLength));
                return 0;
            }
            case VfioIoctls.VFIO_DEVICE_FEATURE_DMA_LOGGING_START -> {
                if (!check(flags, payload, VFIO_DEVICE_FEATURE_SET, 24, "DMA_LOGGING_START")) {
                    return 0;
                }
                return loggingStart(data);
            }
            case VfioIoctls.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP -> {
                if (!check(flags, payload, VFIO_DEVICE_FEATURE_SET, 0, "DMA_LOGGING_STOP")) {
                    return 0;
                }
                driverCall("SET DMA_LOGGING_STOP", () -> {
                    driver.dmaLoggingStop();
                    return 0L;
                });
                return 0;
            }
            case VfioIoctls.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT -> {
                if (!check(flags, payload, VFIO_DEVICE_FEATURE_GET, 32, "DMA_LOGGING_REPORT")) {
                    return 0;
                }
                return loggingReport(data);
            }
            default -> throw fail(CALL, ENOTTY, "feature " + feature + " is unknown to " + device.pciAddress());
        }
    }

    /** vfio_check_feature: true to execute the call, false for a PROBE that succeeded. */
    private boolean check(int flags, int payload, int supportedOps, int minsz, String feature) {
        int ops = flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET);
        if ((ops & ~supportedOps) != 0) {
            throw fail(CALL, EINVAL, feature + " does not support " + ((ops & VFIO_DEVICE_FEATURE_GET) != 0
                    && (supportedOps & VFIO_DEVICE_FEATURE_GET) == 0 ? "GET" : "SET"));
        }
        if ((flags & VFIO_DEVICE_FEATURE_PROBE) != 0) {
            return false;
        }
        if (ops == 0) {
            throw fail(CALL, EINVAL, feature + ": neither GET nor SET");
        }
        if (payload < minsz) {
            throw argsz.reject(CALL + " " + feature, payload + HEADER, minsz + HEADER);
        }
        return true;
    }

    private int getState(long data) {
        long state = driverCall("GET MIG_DEVICE_STATE", () -> driver.deviceState().value());
        NativeMemory.putInt(data, (int) state);
        NativeMemory.putInt(data + 4, -1);
        return 0;
    }

    private int setState(long data) {
        int requested = NativeMemory.getInt(data);
        VfioDeviceState target;
        try {
            target = VfioDeviceState.fromValue(requested);
        } catch (IllegalArgumentException e) {
            NativeMemory.putInt(data + 4, -1);
            throw fail(CALL, EINVAL, "device_state " + Integer.toUnsignedString(requested) + " is past the enum");
        }
        VfioDataFd session;
        try {
            session = driver.setDeviceState(target);
        } catch (VfioException e) {
            NativeMemory.putInt(data + 4, -1); // out_copy: the requested state stays, data_fd -1
            throw fail(CALL, e.errno(), e.getMessage());
        }
        int fd = session == null ? -1 : dataFds.open(device, session, target != VfioDeviceState.RESUMING);
        NativeMemory.putInt(data + 4, fd);
        return 0;
    }

    private int loggingStart(long data) {
        long pageSize = NativeMemory.getLong(data);
        int n = NativeMemory.getInt(data + 8);
        long rangesPtr = NativeMemory.getLong(data + 16);
        if (n == 0) {
            throw fail(CALL, EINVAL, "num_ranges 0");
        }
        if (Integer.toUnsignedLong(n) > MAX_RANGES) {
            throw fail(CALL, E2BIG, Integer.toUnsignedString(n) + " ranges > " + MAX_RANGES);
        }
        if (rangesPtr == 0) {
            throw fail(CALL, EFAULT, "ranges NULL");
        }
        List<IovaRange> ranges = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            long iova = NativeMemory.getLong(rangesPtr + 16L * i);
            long length = NativeMemory.getLong(rangesPtr + 16L * i + 8);
            if ((iova & (pageSize - 1)) != 0 || (length & (pageSize - 1)) != 0) {
                throw fail(CALL, EINVAL, "range " + i + " not aligned to page_size " + pageSize);
            }
            if (Long.compareUnsigned(iova + length, iova) < 0) {
                throw fail(CALL, EOVERFLOW, "range " + i + " wraps");
            }
            if (length == 0) {
                // the kernel would hand an empty range to the driver; the fake refuses it
                throw fail(CALL, EINVAL, "range " + i + " is empty");
            }
            IovaRange r = new IovaRange(iova, length);
            for (IovaRange other : ranges) {
                if (other.overlaps(r)) {
                    throw fail(CALL, EINVAL, "ranges " + other + " and " + r + " overlap");
                }
            }
            ranges.add(r);
        }
        driverCall("SET DMA_LOGGING_START", () -> {
            driver.dmaLoggingStart(pageSize, ranges);
            return 0L;
        });
        NativeMemory.putLong(data, pageSize); // the kernel copies the control struct back
        return 0;
    }

    private int loggingReport(long data) {
        long iova = NativeMemory.getLong(data);
        long length = NativeMemory.getLong(data + 8);
        long pageSize = NativeMemory.getLong(data + 16);
        long bitmap = NativeMemory.getLong(data + 24);
        if (Long.compareUnsigned(pageSize, SZ_4K) < 0 || Long.bitCount(pageSize) != 1) {
            throw fail(CALL, EINVAL, "page_size " + pageSize);
        }
        if (Long.compareUnsigned(iova + length, iova) < 0) {
            throw fail(CALL, EOVERFLOW, "range wraps");
        }
        if (bitmap == 0) {
            throw fail(CALL, EFAULT, "bitmap NULL");
        }
        driverCall("GET DMA_LOGGING_REPORT", () -> {
            driver.dmaLoggingReport(iova, length, pageSize, bitmap);
            return 0L;
        });
        return 0;
    }

    private interface DriverCall {
        long run() throws VfioException;
    }

    /** Calls the emulated driver; its VfioException becomes the ioctl's errno. */
    private static long driverCall(String what, DriverCall c) {
        try {
            return c.run();
        } catch (VfioException e) {
            throw fail(CALL + " " + what, e.errno(), e.getMessage());
        }
    }
}
