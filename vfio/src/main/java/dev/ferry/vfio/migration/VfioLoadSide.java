package dev.ferry.vfio.migration;

import dev.ferry.core.migration.LoadContext;
import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.sys.Mapping;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.fsm.MigCapabilities;

import java.io.IOException;

import static dev.ferry.vfio.migration.VfioStreamTag.CONFIG_LOAD_READY;
import static dev.ferry.vfio.migration.VfioStreamTag.CONFIG_STATE;
import static dev.ferry.vfio.migration.VfioStreamTag.DATA_STATE;
import static dev.ferry.vfio.migration.VfioStreamTag.END_OF_STATE;
import static dev.ferry.vfio.migration.VfioStreamTag.INIT_DATA_SENT;
import static dev.ferry.vfio.migration.VfioStreamTag.SETUP_STATE;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;

/**
 * The destination half of a VFIO device's section (QEMU's {@code vfio_load_*}): setup enters
 * RESUMING and takes the data fd; every DATA_STATE block is copied through a 1 MiB native buffer
 * into the fd, resuming after short writes; INIT_DATA_SENT approves switchover; the config state
 * goes to the owner's provider. When the whole stream is loaded, {@link #loadComplete} takes the
 * device to STOP — where it validates the image — before the destination answers the source; the
 * VM start moves it on from there (see {@link VfioMigration}).
 *
 * <p>The input is hostile: a tag this code does not know, a block over {@value #MAX_DATA_BLOCK}
 * bytes, INIT_DATA_SENT where switchover-ack is not in use, CONFIG_LOAD_READY (multifd), config
 * state nobody can take, or device data before load setup end the load with an error naming the
 * device.
 *
 * <p>Incoming thread, under the device's lock.
 */
final class VfioLoadSide {
    /**
     * The largest DATA_STATE block the destination takes. QEMU and Ferry write at most their
     * 1 MiB buffer per block; the block is copied through a 1 MiB buffer anyway, so the cap only
     * tells a corrupt length from a real one.
     */
    static final long MAX_DATA_BLOCK = 64L << 20;

    private final String name;
    private final MigCapabilities caps;
    private final Object lock;
    private final DeviceStateControl control;
    private final VfioMigrationStats stats;
    private final VfioDeviceConfig config;
    private LoadContext context;
    private Mapping loadBuffer;

    VfioLoadSide(VfioDevice device, MigCapabilities caps, Object lock, DeviceStateControl control,
                 VfioMigrationStats stats, VfioDeviceConfig config) {
        this.name = device.name();
        this.caps = caps;
        this.lock = lock;
        this.control = control;
        this.stats = stats;
        this.config = config;
    }

    private boolean precopyCapable() {
        return caps.hasAll(MigCapabilities.PRE_COPY);
    }

    void loadSetup(LoadContext ctx) throws MigrationException {
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
            control.setForMigration(RESUMING, control.state());
            control.requireDataFd();
            loadBuffer = Mapping.anonymous(VfioSaveSide.BUFFER_BYTES);
        }
    }

    void loadState(LoadStream in, int versionId) throws IOException, MigrationException {
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

    /**
     * RESUMING→STOP once the stream is loaded: the device checks the image written to it when it
     * leaves RESUMING, and this is the destination's last chance to refuse before it answers the
     * source. A refusal resets the device (QEMU's policy for a failed resume) and fails the load;
     * the VM start later takes the device from STOP to RUNNING.
     */
    void loadComplete() throws MigrationException {
        synchronized (lock) {
            if (control.state() != RESUMING) {
                throw new MigrationException(name + ": the stream is loaded but the device is in " + control.state()
                        + ", not RESUMING");
            }
            try {
                control.setOrReset(STOP);
            } catch (StateChangeFailure f) {
                stats.error(f.getMessage());
                throw new MigrationException(f.getMessage(), f);
            }
        }
    }

    void loadCleanup(boolean succeeded) {
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
}
