package dev.ferry.vfio.migration;

import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.core.sys.Mapping;
import dev.ferry.vfio.device.PrecopyInfo;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.fsm.MigCapabilities;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.concurrent.locks.LockSupport;

import static dev.ferry.vfio.migration.VfioLiveHandler.isPrecopy;
import static dev.ferry.vfio.migration.VfioStreamTag.CONFIG_STATE;
import static dev.ferry.vfio.migration.VfioStreamTag.DATA_STATE;
import static dev.ferry.vfio.migration.VfioStreamTag.END_OF_STATE;
import static dev.ferry.vfio.migration.VfioStreamTag.INIT_DATA_SENT;
import static dev.ferry.vfio.migration.VfioStreamTag.SETUP_STATE;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;

/**
 * The source half of a VFIO device's section (QEMU's {@code vfio_save_*}): setup enters PRE_COPY
 * when the device has it and opens the data fd; each iterate step reads at most 1 MiB of
 * pre-copy data into a native buffer and sends it as one DATA_STATE block, then END_OF_STATE or,
 * once, INIT_DATA_SENT; complete enters STOP_COPY (a pre-copying device is there already, by the
 * VM-change-state handler) and reads to the end of the state; the config state follows as the
 * non-iterable part; cleanup, after the destination runs, closes the fd and takes the device from
 * STOP_COPY to STOP outside the downtime.
 *
 * <p>Migration thread, under the device's lock (shared with the VM-change-state handlers).
 */
final class VfioSaveSide {
    private static final Logger LOG = LoggerFactory.getLogger(VfioSaveSide.class);
    /** QEMU's VFIO_MIG_DEFAULT_DATA_BUFFER_SIZE: bigger did not help on mlx5. */
    static final int BUFFER_BYTES = 1 << 20;
    static final int MIN_BUFFER_BYTES = 64 << 10;
    /** QEMU's VFIO_MIG_STOP_COPY_SIZE: the exact pending figure when MIG_DATA_SIZE fails. */
    static final long STOP_COPY_SIZE_UNKNOWN = 100L << 30;
    /**
     * How many ENOMSG answers in a row a STOP_COPY read may give before the device counts as
     * broken. The uAPI has ENOMSG only in PRE_COPY; STOP_COPY ends with read() == 0. QEMU takes
     * the first ENOMSG as the end, which would hide a device that stopped early.
     */
    static final int STOP_COPY_NO_DATA_LIMIT = 100;
    private static final long NO_DATA_PAUSE_NANOS = 1_000_000;

    private final VfioDevice device;
    private final String name;
    private final MigCapabilities caps;
    private final Object lock;
    private final DeviceStateControl control;
    private final VfioMigrationStats stats;
    private final VfioDeviceConfig config;
    private Mapping buffer;
    private long precopyInitial;
    private long precopyDirty;
    private boolean initialDataSent;

    VfioSaveSide(VfioDevice device, MigCapabilities caps, Object lock, DeviceStateControl control,
                 VfioMigrationStats stats, VfioDeviceConfig config) {
        this.device = device;
        this.name = device.name();
        this.caps = caps;
        this.lock = lock;
        this.control = control;
        this.stats = stats;
        this.config = config;
    }

    void saveSetup(SaveStream out) throws IOException, MigrationException {
        synchronized (lock) {
            stats.begin();
            out.putBe64(SETUP_STATE);
            long stopCopy = stopCopySize(BUFFER_BYTES);
            buffer = Mapping.anonymous(Math.max(MIN_BUFFER_BYTES, Math.min(BUFFER_BYTES, stopCopy)));
            if (caps.hasAll(MigCapabilities.PRE_COPY)) {
                switch (control.state()) {
                    case RUNNING -> {
                        control.setForMigration(PRE_COPY, RUNNING);
                        control.requireDataFd();
                        queryPrecopy();
                    }
                    case STOP -> {
                        // the VM is paused: complete will enter STOP_COPY
                    }
                    default -> throw new MigrationException(name + ": cannot start saving with the device in "
                            + control.state() + " (expected RUNNING or STOP)");
                }
            }
            out.putBe64(END_OF_STATE);
        }
    }

    boolean saveIterate(SaveStream out) throws IOException, MigrationException {
        synchronized (lock) {
            if (!isPrecopy(control.state())) {
                // QEMU iterates only a pre-copying device; Ferry's engine asks every handler, and
                // an empty part keeps the stream readable by QEMU's loader.
                out.putBe64(END_OF_STATE);
                return true;
            }
            long n = saveBlock(out, control.requireDataFd());
            stats.iterateRead(n);
            updatePrecopy(n);
            if (out.switchoverAck() && precopyInitial == 0 && !initialDataSent) {
                out.putBe64(INIT_DATA_SENT);
                initialDataSent = true;
            } else {
                out.putBe64(END_OF_STATE);
            }
            return precopyInitial == 0 && precopyDirty == 0;
        }
    }

    long pendingEstimate() {
        synchronized (lock) {
            return isPrecopy(control.state()) ? precopyInitial + precopyDirty : 0;
        }
    }

    long pendingExact() {
        synchronized (lock) {
            long pending = stopCopySize(STOP_COPY_SIZE_UNKNOWN);
            if (isPrecopy(control.state())) {
                queryPrecopy();
                pending += precopyInitial + precopyDirty;
            }
            return pending;
        }
    }

    void saveComplete(SaveStream out) throws IOException, MigrationException {
        synchronized (lock) {
            control.setForMigration(STOP_COPY, STOP);
            VfioDataFd fd = control.requireDataFd();
            int noData = 0;
            while (true) {
                long n = saveBlock(out, fd);
                stats.stopCopyRead(n);
                if (n == 0) {
                    break;
                }
                if (n > 0) {
                    noData = 0;
                    continue;
                }
                if (++noData >= STOP_COPY_NO_DATA_LIMIT) {
                    throw new MigrationException(name + ": read(data_fd) in STOP_COPY answered ENOMSG " + noData
                            + " times in a row; a device in STOP_COPY must end its state with read() == 0, so this"
                            + " device never finished sending it");
                }
                LockSupport.parkNanos(NO_DATA_PAUSE_NANOS);
            }
            out.putBe64(END_OF_STATE);
        }
    }

    /** The config section (QEMU's {@code vfio_save_state}), in the downtime window. */
    void saveState(SaveStream out) throws IOException, MigrationException {
        synchronized (lock) {
            out.putBe64(CONFIG_STATE);
            byte[] state = config == null ? new byte[0] : config.save();
            if (state.length > VfioDeviceConfig.MAX_BYTES) {
                throw new MigrationException(name + ": config state of " + state.length + " bytes, at most "
                        + VfioDeviceConfig.MAX_BYTES);
            }
            out.putBe32(state.length);
            out.putBytes(state);
            out.putBe64(END_OF_STATE);
        }
    }

    void saveCleanup(boolean succeeded) {
        synchronized (lock) {
            if (control.state() == STOP_COPY && !control.lost()) {
                try {
                    control.setOrReset(STOP);
                } catch (StateChangeFailure f) {
                    LOG.error("{} (after the migration {})", f.getMessage(), succeeded ? "completed" : "ended");
                    stats.error(f.getMessage());
                }
            }
            if (buffer != null) {
                buffer.close();
                buffer = null;
            }
            precopyInitial = 0;
            precopyDirty = 0;
            initialDataSent = false;
            control.closeDataFd();
            stats.finish(control.state());
        }
    }

    /**
     * Reads one block into the native buffer and sends it as DATA_STATE (QEMU's
     * {@code vfio_save_block}). Returns the bytes sent, 0 at the end of the state, or
     * {@link VfioDataFd#NO_DATA} when a pre-copying device has nothing now; neither sends anything.
     */
    private long saveBlock(SaveStream out, VfioDataFd fd) throws IOException, MigrationException {
        long n;
        try {
            n = fd.read(buffer.address(), buffer.length());
        } catch (VfioException e) {
            throw new MigrationException(name + ": " + e.getMessage() + " with the device in " + control.state(), e);
        }
        if (n > buffer.length() || n < VfioDataFd.NO_DATA) {
            throw new MigrationException(name + ": read(data_fd) returned " + n + " for a buffer of "
                    + buffer.length() + " bytes");
        }
        if (n <= 0) {
            return n;
        }
        out.putBe64(DATA_STATE);
        out.putBe64(n);
        out.putNative(buffer.address(), n);
        return n;
    }

    /**
     * After an iterate read: PRECOPY_INFO says what is left. If the device cannot say, QEMU's
     * arithmetic stands in — what was read counts against initial data first, then dirty data.
     */
    private void updatePrecopy(long read) {
        try {
            PrecopyInfo info = control.requireDataFd().precopyInfo();
            precopyInitial = info.initialBytes();
            precopyDirty = info.dirtyBytes();
            return;
        } catch (VfioException | MigrationException e) {
            LOG.debug("{}: PRECOPY_INFO failed after a read: {}", name, e.getMessage());
        }
        if (read <= 0) {
            precopyInitial = 0;
            precopyDirty = 0;
            return;
        }
        long fromInitial = Math.min(precopyInitial, read);
        precopyInitial -= fromInitial;
        precopyDirty -= Math.min(precopyDirty, read - fromInitial);
    }

    /** PRECOPY_INFO into the estimates; a failure keeps the last figures. */
    private void queryPrecopy() {
        VfioDataFd fd = control.dataFd();
        if (fd == null) {
            return;
        }
        try {
            PrecopyInfo info = fd.precopyInfo();
            precopyInitial = info.initialBytes();
            precopyDirty = info.dirtyBytes();
        } catch (VfioException e) {
            LOG.debug("{}: {}", name, e.getMessage());
        }
    }

    /** MIG_DATA_SIZE, or {@code otherwise} when the device cannot tell. */
    private long stopCopySize(long otherwise) {
        try {
            return device.stopCopyLength();
        } catch (VfioException e) {
            LOG.debug("{}: {}", name, e.getMessage());
            return otherwise;
        }
    }
}
