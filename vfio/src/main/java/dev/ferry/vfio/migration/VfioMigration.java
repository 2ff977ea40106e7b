package dev.ferry.vfio.migration;

import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.machine.VmChangeStateHandler;
import dev.ferry.core.machine.VmStateChangeException;
import dev.ferry.core.migration.MigrationBlocker;
import dev.ferry.core.migration.MigrationEvent;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.MigrationNotifier;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.core.migration.MigrationRegistry;
import dev.ferry.core.sys.Errno;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.fsm.MigCapabilities;
import dev.ferry.vfio.uapi.VfioDeviceState;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Optional;

import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;

/**
 * Makes one VFIO device of a {@link Machine} migrate the way QEMU's hw/vfio/migration.c does,
 * through the migration SPI only. {@link #attach} asks the device for its migration flags and,
 * when it can migrate (STOP_COPY), registers:
 * <ul>
 *   <li>a live section {@code <name>/vfio}, instance 0, version 1, at
 *       {@link MigrationPriority#DMA_DEVICE} (see {@link VfioLiveHandler}), with the config state
 *       as its non-iterable part;</li>
 *   <li>a VM-change-state handler — with a prepare stage only for a P2P device, so that every
 *       device is in a *_P2P state before any device stops (or starts): prepare takes a
 *       pre-copying device to PRE_COPY_P2P and any other to RUNNING_P2P; the main stage takes it
 *       to RUNNING when the VM runs, to STOP_COPY when a pre-copying device stops for migration
 *       (finish-migrate, or paused), and to STOP otherwise;</li>
 *   <li>a migration notifier that, when a migration fails or is cancelled, brings a device still
 *       pre-copying back to RUNNING (the VM was never stopped; a stopped VM is restarted by the
 *       engine through the handler above);</li>
 *   <li>its DMA log as a dirty-log source ({@link VfioDmaLog}).</li>
 * </ul>
 * A device that cannot migrate gets a {@link MigrationBlocker} instead. The machine's
 * {@link VfioMigrationSet} adds QEMU's blocker for more than one migratable device unless all
 * have P2P.
 *
 * <p>Every SET goes through {@link DeviceStateControl} (recover, else reset, else lost); each
 * failure's message names the device, the arc and the errno and reaches the migration's
 * {@code error-desc}. A lost device keeps the VM running, is left alone by later run-state
 * changes, and blocks further migrations.
 *
 * <p>Threads: migration callbacks on the migration or incoming thread, VM-change-state handlers
 * on whichever thread changes the run state; all device calls are serialized on one lock per
 * device. Closing (or closing the machine) detaches: everything registered is removed and the
 * data fd closed; the device itself belongs to its owner.
 */
public final class VfioMigration implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VfioMigration.class);

    private final Machine machine;
    private final VfioDevice device;
    private final String name;
    private final Object lock = new Object();
    private final VfioMigrationStats stats;
    private final MigCapabilities caps;
    private final MigrationBlocker blocker;
    private final DeviceStateControl control;
    private final VfioLiveHandler handler;
    private final VmChangeStateHandler vmHandler;
    private final MigrationNotifier notifier = this::onMigrationEvent;
    private final VfioDmaLog dmaLog;
    private final VfioMigrationSet set;
    private volatile MigrationBlocker lostBlocker;
    private MigrationBlocker trackingBlocker;
    private boolean detached;

    /**
     * How a device migrates beyond what it reports itself.
     *
     * @param config                the owner's config state for the config section, or null
     * @param requireDirtyTracking  block migration when the device cannot log its DMA (QEMU's
     *                              {@code enable-migration=auto}); by default such a device migrates
     *                              with all guest RAM dirty on every sync ({@code enable-migration=on})
     */
    public record Options(VfioDeviceConfig config, boolean requireDirtyTracking) {
        public static Options defaults() {
            return new Options(null, false);
        }

        public Options withConfig(VfioDeviceConfig c) {
            return new Options(c, requireDirtyTracking);
        }

        public Options withRequireDirtyTracking(boolean v) {
            return new Options(config, v);
        }
    }

    private VfioMigration(Machine machine, VfioDevice device, Options options, MigCapabilities caps,
                          MigrationBlocker blocker) {
        this.machine = machine;
        this.device = device;
        this.name = device.name();
        this.caps = caps;
        this.blocker = blocker;
        this.stats = new VfioMigrationStats(name, RUNNING, System::nanoTime);
        this.control = new DeviceStateControl(device, stats, System::nanoTime, this::deviceLost);
        this.set = VfioMigrationSet.of(machine);
        if (caps == null) {
            handler = null;
            vmHandler = null;
            dmaLog = null;
            return;
        }
        this.handler = new VfioLiveHandler(device, caps, lock, control, stats, options.config());
        this.vmHandler = caps.hasAll(MigCapabilities.P2P) ? new P2pVmStateChange() : new VmStateChange();
        boolean dmaLogging = device.dmaLoggingSupported();
        this.dmaLog = new VfioDmaLog(device, lock, machine.memory(), stats, dmaLogging);
        if (!dmaLogging) {
            String w = name + ": the device cannot log its DMA writes (no DMA logging); while it migrates, all guest"
                    + " RAM counts as dirty on every sync";
            if (options.requireDirtyTracking()) {
                trackingBlocker = new MigrationBlocker(name + ": VFIO device does not support device dirty tracking"
                        + " (no DMA logging)");
            } else {
                LOG.warn(w);
                stats.warning(w);
            }
        }
    }

    /** As {@link #attach(Machine, VfioDevice, Options)} with {@link Options#defaults()}. */
    public static VfioMigration attach(Machine machine, VfioDevice device) {
        return attach(machine, device, Options.defaults());
    }

    /**
     * Registers {@code device}'s migration with {@code machine} (QEMU's
     * {@code vfio_migration_realize}). A device without migration support is attached with a
     * blocker and nothing else. The machine detaches it when it closes.
     */
    public static VfioMigration attach(Machine machine, VfioDevice device, Options options) {
        MigCapabilities caps = null;
        MigrationBlocker blocker = null;
        try {
            MigCapabilities flags = device.migrationFlags();
            if (flags.migratable()) {
                caps = flags;
            } else {
                blocker = new MigrationBlocker(device.name() + ": device does not support migration (its flags "
                        + flags + " lack STOP_COPY)");
            }
        } catch (VfioException e) {
            blocker = new MigrationBlocker(e.errno() == Errno.ENOTTY
                    ? device.name() + ": device does not support migration"
                    : device.name() + ": migration could not be initialized: " + e.getMessage());
        }
        VfioMigration m = new VfioMigration(machine, device, options, caps, blocker);
        m.register();
        machine.addDevice(m);
        return m;
    }

    private void register() {
        MigrationRegistry registry = machine.migration();
        if (blocker != null) {
            registry.addBlocker(blocker);
        } else {
            registry.registerLive(handler, MigrationPriority.DMA_DEVICE);
            machine.addVmChangeStateHandler(vmHandler, MigrationPriority.DMA_DEVICE);
            registry.addNotifier(notifier);
            registry.addDirtyLogSource(dmaLog);
            if (trackingBlocker != null) {
                registry.addBlocker(trackingBlocker);
            }
        }
        set.add(this);
    }

    public String name() {
        return name;
    }

    public VfioDevice device() {
        return device;
    }

    public Machine machine() {
        return machine;
    }

    /** True when the device can migrate (it reported STOP_COPY). */
    public boolean migratable() {
        return caps != null;
    }

    /** The device's migration flags, when it has migration support. */
    public Optional<MigCapabilities> capabilities() {
        return Optional.ofNullable(caps);
    }

    /** The blocker this device adds by itself (no migration support, no dirty tracking, lost). */
    public Optional<MigrationBlocker> blocker() {
        if (blocker != null) {
            return Optional.of(blocker);
        }
        MigrationBlocker lostNow = lostBlocker;
        return Optional.ofNullable(lostNow != null ? lostNow : trackingBlocker);
    }

    /** The section this device migrates in, {@code <name>/vfio}, or empty when it cannot migrate. */
    public Optional<String> sectionId() {
        return handler == null ? Optional.empty() : Optional.of(handler.idstr());
    }

    /** The device state the VMM last set. */
    public VfioDeviceState deviceState() {
        synchronized (lock) {
            return control.state();
        }
    }

    /** True when a reset failed and the device is unusable for migration. */
    public boolean lost() {
        synchronized (lock) {
            return control.lost();
        }
    }

    /** The device's share of the latest migration, for {@code query-migrate}. */
    public VfioMigrationStats.Snapshot stats() {
        return stats.snapshot();
    }

    VfioDmaLog dmaLog() {
        return dmaLog;
    }

    VfioLiveHandler handler() {
        return handler;
    }

    // ---------------------------------------------------------------------------------------
    // Run-state changes (QEMU's vfio_vmstate_change_prepare / vfio_vmstate_change)

    private class VmStateChange implements VmChangeStateHandler {
        @Override
        public void onChange(boolean running, RunState state) throws VmStateChangeException {
            change(running, state);
        }
    }

    private final class P2pVmStateChange extends VmStateChange {
        @Override
        public void prepare(boolean running, RunState state) throws VmStateChangeException {
            prepareChange(running, state);
        }
    }

    private void prepareChange(boolean running, RunState state) throws VmStateChangeException {
        synchronized (lock) {
            if (control.lost()) {
                return;
            }
            setOrReset(control.state() == PRE_COPY ? PRE_COPY_P2P : RUNNING_P2P, running, state);
        }
    }

    private void change(boolean running, RunState state) throws VmStateChangeException {
        synchronized (lock) {
            if (control.lost()) {
                return;
            }
            VfioDeviceState target;
            if (running) {
                target = RUNNING;
            } else if (VfioLiveHandler.isPrecopy(control.state())
                    && (state == RunState.FINISH_MIGRATE || state == RunState.PAUSED)) {
                target = STOP_COPY;
            } else {
                target = STOP;
            }
            setOrReset(target, running, state);
            if (running) {
                stats.finish(control.state());
            }
        }
    }

    private void setOrReset(VfioDeviceState target, boolean running, RunState state) throws VmStateChangeException {
        try {
            control.setOrReset(target);
        } catch (StateChangeFailure f) {
            stats.error(f.getMessage());
            throw new VmStateChangeException(f.getMessage(), f);
        }
        LOG.debug("{}: VM {} ({}): device {}", name, running ? "runs" : "stops", state.qapiName(), target);
    }

    // ---------------------------------------------------------------------------------------
    // Migration notifier (QEMU's vfio_migration_state_notifier)

    private void onMigrationEvent(MigrationEvent event) throws MigrationException {
        if (event != MigrationEvent.FAILED && event != MigrationEvent.CANCELLED) {
            return;
        }
        synchronized (lock) {
            // QEMU sets RUNNING whatever the state; a device that is not pre-copying is already
            // where the VM's run state put it (a paused VM's device stays stopped).
            if (!control.lost() && VfioLiveHandler.isPrecopy(control.state())) {
                try {
                    control.setOrReset(RUNNING);
                } catch (StateChangeFailure f) {
                    stats.error(f.getMessage());
                    stats.finish(control.state());
                    throw new MigrationException(f.getMessage(), f);
                }
            }
            stats.finish(control.state());
        }
    }

    private void deviceLost(String reason) {
        MigrationBlocker b = new MigrationBlocker(name + ": device lost, it cannot migrate (" + reason + ")");
        lostBlocker = b;
        machine.migration().addBlocker(b);
    }

    // ---------------------------------------------------------------------------------------

    /**
     * Detaches the device from the machine's migration (QEMU's {@code vfio_migration_exit}):
     * handlers, notifier, dirty-log source and blockers are removed, DMA logging stops, the data
     * fd closes, and the machine's multi-device blocker is re-evaluated. Idempotent.
     */
    @Override
    public void close() {
        synchronized (lock) {
            if (detached) {
                return;
            }
            detached = true;
        }
        MigrationRegistry registry = machine.migration();
        if (blocker != null) {
            registry.removeBlocker(blocker);
        } else {
            registry.unregister(handler.idstr(), handler.instanceId());
            machine.removeVmChangeStateHandler(vmHandler);
            registry.removeNotifier(notifier);
            registry.removeDirtyLogSource(dmaLog);
            dmaLog.stop();
            if (trackingBlocker != null) {
                registry.removeBlocker(trackingBlocker);
            }
            MigrationBlocker lostNow = lostBlocker;
            if (lostNow != null) {
                registry.removeBlocker(lostNow);
            }
            synchronized (lock) {
                control.closeDataFd();
            }
        }
        set.remove(this);
    }

    @Override
    public String toString() {
        return "VfioMigration[" + name + (caps == null ? ", not migratable" : ", " + caps) + "]";
    }
}
