package dev.ferry.vfio.migration;

import dev.ferry.core.migration.LiveSaveHandler;
import dev.ferry.core.migration.LoadContext;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.NonIterableSave;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.core.sys.Mapping;
import dev.ferry.vfio.device.PrecopyInfo;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.fsm.MigCapabilities;
import dev.ferry.vfio.uapi.VfioDeviceState;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.concurrent.locks.LockSupport;

import static dev.ferry.vfio.migration.VfioStreamTag.CONFIG_LOAD_READY;
import static dev.ferry.vfio.migration.VfioStreamTag.CONFIG_STATE;
import static dev.ferry.vfio.migration.VfioStreamTag.DATA_STATE;
import static dev.ferry.vfio.migration.VfioStreamTag.END_OF_STATE;
import static dev.ferry.vfio.migration.VfioStreamTag.INIT_DATA_SENT;
import static dev.ferry.vfio.migration.VfioStreamTag.SETUP_STATE;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;

/**
 * One VFIO device's section, QEMU's {@code savevm_vfio_handlers}. Source: setup enters PRE_COPY
 * (when the device has it) and opens the data fd; each iterate step reads at most 1 MiB of
 * pre-copy data into a native buffer and sends it as one DATA_STATE block; complete enters
 * STOP_COPY (after the VM-change-state handler already did, for a pre-copying device) and reads
 * to the end of the state; the config state follows as a FULL section; cleanup, after the
 * destination runs, closes the fd and takes the device from STOP_COPY to STOP, outside the
 * downtime. Destination: setup enters RESUMING, every DATA_STATE block is written into the data
 * fd; the VM start moves the device on (see {@link VfioMigration}).
 *
 * <p>The incoming stream is hostile: a tag this code does not know, a block over
 * {@value #MAX_DATA_BLOCK} bytes, INIT_DATA_SENT where switchover-ack is not in use, or device
 * data before load setup end the migration with an error naming the device.
 *
 * <p>Source callbacks on the migration thread, destination ones on the incoming thread; every
 * call takes the owning {@link VfioMigration}'s lock, which VM-change-state handlers share.
 */
final class VfioLiveHandler implements LiveSaveHandler, NonIterableSave {
    private static final Logger LOG = LoggerFactory.getLogger(VfioLiveHandler.class);
    /** QEMU's VFIO_MIG_DEFAULT_DATA_BUFFER_SIZE: bigger did not help on mlx5. */
    static final int BUFFER_BYTES = 1 << 20;
    static final int MIN_BUFFER_BYTES = 64 << 10;
    /** QEMU's VFIO_MIG_STOP_COPY_SIZE: the exact pending figure when MIG_DATA_SIZE fails. */
    static final long STOP_COPY_SIZE_UNKNOWN = 100L << 30;
    /**
     * The largest DATA_STATE block the destination takes. QEMU and Ferry write at most their
     * 1 MiB buffer per block; the block is copied through a 1 MiB buffer anyway, so the cap only
     * tells a corrupt length from a real one.
     */
    static final long MAX_DATA_BLOCK = 64L << 20;
    /**
     * How many ENOMSG answers in a row a STOP_COPY read may give before the device counts as
     * broken. The uAPI has ENOMSG only in PRE_COPY; STOP_COPY ends with read() == 0. QEMU takes
     * the first ENOMSG as the end, which would hide a device that stopped early.
     */
    static final int STOP_COPY_NO_DATA_LIMIT = 100;
    private static final long NO_DATA_PAUSE_NANOS = 1_000_000;

    private final VfioDevice device;
    private final String name;
    private final String idstr;
    private final MigCapabilities caps;
    private final Object lock;
    private final DeviceStateControl control;
    private final VfioMigrationStats stats;
    private final VfioDeviceConfig config;

    // save side
    private Mapping buffer;
    private long precopyInitial;
    private long precopyDirty;
    private boolean initialDataSent;
    // load side
    private LoadContext context;
    private Mapping loadBuffer;

    VfioLiveHandler(VfioDevice device, MigCapabilities caps, Object lock, DeviceStateControl control,
                    VfioMigrationStats stats, VfioDeviceConfig config) {
        this.device = device;
        this.name = device.name();
        this.idstr = name + "/vfio";
        this.caps = caps;
        this.lock = lock;
        this.control = control;
        this.stats = stats;
        this.config = config;
    }

    @Override
    public String idstr() {
        return idstr;
    }

    @Override
    public int instanceId() {
        return 0;
    }

    @Override
    public int version() {
        return 1;
    }

    private boolean precopyCapable() {
        return caps.hasAll(MigCapabilities.PRE_COPY);
    }

    static boolean isPrecopy(VfioDeviceState s) {
        return s == PRE_COPY || s == PRE_COPY_P2P;
    }

    // ---------------------------------------------------------------------------------------
    // Source

    @Override
    public void saveSetup(SaveStream out) throws IOException, MigrationException {
        synchronized (lock) {
            stats.begin();
            out.putBe64(SETUP_STATE);
            long stopCopy = stopCopySize(BUFFER_BYTES);
            buffer = Mapping.anonymous(Math.max(MIN_BUFFER_BYTES, Math.min(BUFFER_BYTES, stopCopy)));
            if (precopyCapable()) {
                switch (control.state()) {
                    case RUNNING -> {
                        set(PRE_COPY, RUNNING);
                        requireDataFd();
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

    @Override
    public boolean saveIterate(SaveStream out) throws IOException, MigrationException {
        synchronized (lock) {
            if (!isPrecopy(control.state())) {
                // QEMU iterates only a pre-copying device; Ferry's engine asks every handler, and
                // an empty part keeps the stream readable by QEMU's loader.
                out.putBe64(END_OF_STATE);
                return true;
            }
            long n = saveBlock(out, requireDataFd());
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

    @Override
    public long pendingEstimate() {
        synchronized (lock) {
            return isPrecopy(control.state()) ? precopyInitial + precopyDirty : 0;
        }
    }

    @Override
    public long pendingExact() {
        synchronized (lock) {
            long pending = stopCopySize(STOP_COPY_SIZE_UNKNOWN);
            if (isPrecopy(control.state())) {
                queryPrecopy();
                pending += precopyInitial + precopyDirty;
            }
            return pending;
        }
    }

    @Override
    public void saveComplete(SaveStream out) throws IOException, MigrationException {
        synchronized (lock) {
            set(STOP_COPY, STOP);
            VfioDataFd fd = requireDataFd();
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
    @Override
    public void saveState(SaveStream out) throws IOException, MigrationException {
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

    @Override
    public void saveCleanup(boolean succeeded) {
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
            PrecopyInfo info = requireDataFd().precopyInfo();
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

    private VfioDataFd requireDataFd() throws MigrationException {
        VfioDataFd fd = control.dataFd();
        if (fd == null) {
            throw new MigrationException(name + ": the device is in " + control.state()
                    + " but no data session is open (the SET that entered it returned no data fd)");
        }
        return fd;
    }

    private void set(VfioDeviceState target, VfioDeviceState recover) throws MigrationException {
        try {
            control.set(target, recover);
        } catch (StateChangeFailure f) {
            stats.error(f.getMessage());
            throw new MigrationException(f.getMessage(), f);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Destination

    @Override
    public void loadSetup(LoadContext ctx) throws MigrationException {
        synchronized (lock) {
            stats.begin();
            context = ctx;
            if (control.state() == RESUMING && !control.lost()) {
                // An earlier incoming migration failed and left part of an image in the device;
                // a reset discards it so RESUMING starts a fresh session.
                try {
                    control.reset("discarding the image of an earlier failed incoming migration");
                } catch (StateChangeFailure f) {
                    throw new MigrationException(f.getMessage(), f);
                }
            }
            set(RESUMING, control.state());
            requireDataFd();
            loadBuffer = Mapping.anonymous(BUFFER_BYTES);
        }
    }

    @Override
    public void loadState(LoadStream in, int versionId) throws IOException, MigrationException {
        synchronized (lock) {
            while (true) {
                long tag = in.getBe64();
                if (tag == END_OF_STATE) {
                    return;
                } else if (tag == DATA_STATE) {
                    long length = in.getBe64();
                    if (length < 0 || length > MAX_DATA_BLOCK) {
                        throw new MigrationException(name + ": DATA_STATE block of " + Long.toUnsignedString(length)
                                + " bytes, at most " + MAX_DATA_BLOCK + " accepted");
                    }
                    loadData(in, length);
                } else if (tag == SETUP_STATE) {
                    long next = in.getBe64();
                    if (next != END_OF_STATE) {
                        throw new MigrationException(name + ": SETUP_STATE followed by " + VfioStreamTag.name(next)
                                + ", expected END_OF_STATE");
                    }
                    return;
                } else if (tag == INIT_DATA_SENT) {
                    if (!precopyCapable() || context == null || !context.switchoverAck()) {
                        throw new MigrationException(name + ": INIT_DATA_SENT arrived but switchover-ack is not in use"
                                + (precopyCapable() ? " on this destination" : " (this device has no PRE_COPY)"));
                    }
                    context.approveSwitchover();
                    return;
                } else if (tag == CONFIG_STATE) {
                    loadConfig(in);
                    return;
                } else if (tag == CONFIG_LOAD_READY) {
                    throw new MigrationException(name + ": CONFIG_LOAD_READY belongs to multifd device-state"
                            + " transfer, which this VMM does not support");
                } else {
                    throw new MigrationException(name + ": unknown VFIO migration tag " + VfioStreamTag.name(tag));
                }
            }
        }
    }

    /** Copies one DATA_STATE block into the resuming device through the native buffer. */
    private void loadData(LoadStream in, long length) throws IOException, MigrationException {
        VfioDataFd fd = control.dataFd();
        if (fd == null || loadBuffer == null || control.state() != RESUMING) {
            throw new MigrationException(name + ": device data arrived before load setup (the device is in "
                    + control.state() + ", not RESUMING with a data fd)");
        }
        long left = length;
        while (left > 0) {
            long n = Math.min(left, loadBuffer.length());
            in.getNative(loadBuffer.address(), n);
            writeAll(fd, loadBuffer.address(), n);
            left -= n;
        }
        stats.loaded(length);
    }

    /** Writes all of {@code [address, address + length)}, resuming after short writes. */
    private void writeAll(VfioDataFd fd, long address, long length) throws MigrationException {
        long done = 0;
        while (done < length) {
            long w;
            try {
                w = fd.write(address + done, length - done);
            } catch (VfioException e) {
                throw new MigrationException(name + ": " + e.getMessage() + " with the device in RESUMING", e);
            }
            if (w <= 0 || w > length - done) {
                throw new MigrationException(name + ": write(data_fd) accepted " + w + " of " + (length - done)
                        + " bytes; the resuming device does not take its state");
            }
            done += w;
        }
    }

    private void loadConfig(LoadStream in) throws IOException, MigrationException {
        int length = in.getBe32();
        if (length < 0 || length > VfioDeviceConfig.MAX_BYTES) {
            throw new MigrationException(name + ": config state of " + Integer.toUnsignedString(length)
                    + " bytes, at most " + VfioDeviceConfig.MAX_BYTES);
        }
        if (length > 0 && config == null) {
            throw new MigrationException(name + ": the stream carries " + length + " bytes of config state, but this"
                    + " device was attached without a config provider");
        }
        byte[] state = new byte[length];
        in.getBytes(state, 0, length);
        long end = in.getBe64();
        if (end != END_OF_STATE) {
            throw new MigrationException(name + ": config state followed by " + VfioStreamTag.name(end)
                    + ", expected END_OF_STATE");
        }
        if (config != null) {
            try {
                config.load(state);
            } catch (IllegalArgumentException e) {
                throw new MigrationException(name + ": config state refused: " + e.getMessage(), e);
            }
        }
    }

    @Override
    public void loadCleanup(boolean succeeded) {
        synchronized (lock) {
            control.closeDataFd();
            if (loadBuffer != null) {
                loadBuffer.close();
                loadBuffer = null;
            }
            context = null;
            if (!succeeded) {
                stats.finish(control.state());
            }
        }
    }

    @Override
    public boolean switchoverAckNeeded() {
        return precopyCapable();
    }
}
