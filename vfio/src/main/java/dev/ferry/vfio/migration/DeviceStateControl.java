package dev.ferry.vfio.migration;

import dev.ferry.core.migration.MigrationException;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.uapi.VfioDeviceState;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.function.Consumer;
import java.util.function.LongSupplier;

/**
 * Moves one device between migration states with QEMU's recovery policy
 * ({@code vfio_migration_set_state}): SET the target; if that fails, SET the recover state; if
 * that fails too — or the recover state is ERROR, meaning "reset if this fails" — reset the
 * device, which leaves it RUNNING with a fresh, guest-visible state; if even the reset fails, the
 * device is lost (QEMU aborts the process here; Ferry keeps the VM running without the device's
 * migration and says so).
 *
 * <p>Keeps what QEMU keeps in {@code VFIOMigration}: the state the VMM last set and the data fd
 * of the open session. The fd arrives with the SET that opens a session and is closed only by
 * {@link #closeDataFd()} (save or load cleanup), even when the session ends earlier.
 *
 * <p>Not thread-safe: the owning {@link VfioMigration} calls it under its lock.
 */
final class DeviceStateControl {
    private static final Logger LOG = LoggerFactory.getLogger(DeviceStateControl.class);

    private final VfioDevice device;
    private final String name;
    private final VfioMigrationStats stats;
    private final LongSupplier clock;
    private final Consumer<String> onLost;
    private VfioDeviceState state = VfioDeviceState.RUNNING;
    private VfioDataFd dataFd;
    private String lostReason;

    /**
     * @param onLost hears the reason when a reset failed and the device is lost (once)
     */
    DeviceStateControl(VfioDevice device, VfioMigrationStats stats, LongSupplier clock, Consumer<String> onLost) {
        this.device = device;
        this.name = device.name();
        this.stats = stats;
        this.clock = clock;
        this.onLost = onLost;
    }

    /** The state the VMM last set (QEMU's {@code migration->device_state}); RUNNING after a reset. */
    VfioDeviceState state() {
        return state;
    }

    boolean lost() {
        return lostReason != null;
    }

    String lostReason() {
        return lostReason;
    }

    /** The open session's data fd, or null. */
    VfioDataFd dataFd() {
        return dataFd;
    }

    /** The open session's data fd; a migration error when the SET that entered the state gave none. */
    VfioDataFd requireDataFd() throws MigrationException {
        if (dataFd == null) {
            throw new MigrationException(name + ": the device is in " + state
                    + " but no data session is open (the SET that entered it returned no data fd)");
        }
        return dataFd;
    }

    void closeDataFd() {
        if (dataFd != null) {
            dataFd.close();
            dataFd = null;
        }
    }

    /** {@link #set} from a migration callback: a failure becomes the migration's error. */
    void setForMigration(VfioDeviceState target, VfioDeviceState recover) throws MigrationException {
        try {
            set(target, recover);
        } catch (StateChangeFailure f) {
            stats.error(f.getMessage());
            throw new MigrationException(f.getMessage(), f);
        }
    }

    /** SET {@code target}; on failure reset the device (QEMU's {@code vfio_migration_set_state_or_reset}). */
    void setOrReset(VfioDeviceState target) throws StateChangeFailure {
        set(target, VfioDeviceState.ERROR);
    }

    /**
     * SET {@code target}; on failure SET {@code recover} (ERROR: reset instead), and reset when
     * that fails too. Throws whenever {@code target} was not reached, saying what happened.
     */
    void set(VfioDeviceState target, VfioDeviceState recover) throws StateChangeFailure {
        if (lostReason != null) {
            throw new StateChangeFailure(name + ": cannot SET " + target + ": the device is lost (" + lostReason + ")",
                    null);
        }
        VfioDeviceState from = state;
        VfioDataFd fd;
        try {
            fd = timedSet(from, target);
        } catch (VfioException e) {
            String failed = describe(from, target, e);
            VfioDeviceState now = device.deviceStateOrError();
            stats.entered(now, from + "->" + target, 0);
            if (recover == VfioDeviceState.ERROR) {
                throw resetAfter(failed + " (device now " + now + ")", e);
            }
            LOG.warn("{}; setting the recover state {}", failed, recover);
            try {
                fd = timedSet(now, recover);
            } catch (VfioException r) {
                VfioDeviceState after = device.deviceStateOrError();
                stats.entered(after, now + "->" + recover, 0);
                throw resetAfter(failed + "; recovering to " + recover + " failed too: " + r.getMessage()
                        + " (device now " + after + ")", r);
            }
            state = recover;
            adopt(fd);
            throw new StateChangeFailure(failed + "; recovered to " + recover, e);
        }
        state = target;
        adopt(fd);
    }

    private VfioDataFd timedSet(VfioDeviceState from, VfioDeviceState target) throws VfioException {
        long t0 = clock.getAsLong();
        VfioDataFd fd = device.setDeviceState(target);
        stats.entered(target, from + "->" + target, clock.getAsLong() - t0);
        return fd;
    }

    /**
     * Takes the fd a SET returned. A second session while one is held means the device ended a
     * transfer behind our back (QEMU: "data_fd out of sync"): the new fd is closed and the SET
     * counts as failed, with the device left where it went.
     */
    private void adopt(VfioDataFd fd) throws StateChangeFailure {
        if (fd == null) {
            return;
        }
        if (dataFd != null) {
            fd.close();
            throw new StateChangeFailure(name + ": SET MIG_DEVICE_STATE " + state + " opened a data session while the"
                    + " previous one's fd is still held (data_fd out of sync): EBADF", null);
        }
        dataFd = fd;
    }

    /**
     * VFIO_DEVICE_RESET for a reason other than a failed SET (a stale resume session): the device
     * ends RUNNING, or it is lost and this throws.
     */
    void reset(String why) throws StateChangeFailure {
        if (lostReason != null) {
            throw new StateChangeFailure(name + ": cannot reset: the device is lost (" + lostReason + ")", null);
        }
        VfioException failed = tryReset(name + ": " + why);
        if (failed != null) {
            throw new StateChangeFailure(name + ": " + why + ": VFIO_DEVICE_RESET failed (" + failed.getMessage()
                    + "): " + name + " is lost", failed);
        }
        LOG.warn("{}: reset ({})", name, why);
    }

    /** VFIO_DEVICE_RESET after a failed SET: the device ends RUNNING, or it is lost. */
    private StateChangeFailure resetAfter(String failed, Throwable cause) {
        VfioException r = tryReset(failed);
        if (r != null) {
            return new StateChangeFailure(failed + "; VFIO_DEVICE_RESET failed too (" + r.getMessage() + "): " + name
                    + " is lost", cause);
        }
        LOG.error("{}; {} was reset (guest-visible) and runs", failed, name);
        return new StateChangeFailure(failed + "; " + name + " reset, now RUNNING", cause);
    }

    /** Resets the device; returns null when it runs again, or the failure after marking it lost. */
    private VfioException tryReset(String after) {
        try {
            device.reset();
        } catch (VfioException r) {
            lostReason = "VFIO_DEVICE_RESET failed after " + after + ": " + r.getMessage();
            stats.lost();
            stats.entered(device.deviceStateOrError(), "reset", 0);
            LOG.error("{}: {}; the device is lost for migration, the VM keeps running", name, lostReason);
            onLost.accept(lostReason);
            return r;
        }
        state = VfioDeviceState.RUNNING;
        stats.reset();
        stats.entered(VfioDeviceState.RUNNING, "reset", 0);
        return null;
    }

    /**
     * Names the device, the arc and the errno. A device that names the arc itself (the kernel
     * wrapper and the emulated device say "SET MIG_DEVICE_STATE A->B") is quoted as it is.
     */
    private String describe(VfioDeviceState from, VfioDeviceState target, VfioException e) {
        if (e.operation() != null && e.operation().startsWith("SET MIG_DEVICE_STATE")) {
            return name + ": " + e.getMessage();
        }
        return name + ": SET MIG_DEVICE_STATE " + from + "->" + target + ": " + e.getMessage();
    }
}
