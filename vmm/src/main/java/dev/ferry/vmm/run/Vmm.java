package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.machine.VmChangeStateHandler;
import dev.ferry.core.machine.VmStateChangeException;
import dev.ferry.core.migration.MigrationEvent;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.migration.DestinationMigration;
import dev.ferry.migration.MigrationCapabilities;
import dev.ferry.migration.MigrationEventSink;
import dev.ferry.migration.MigrationParameters;
import dev.ferry.migration.MigrationStatus;
import dev.ferry.migration.SourceMigration;
import dev.ferry.migration.transport.NettyMigrationTransports;
import dev.ferry.vmm.config.VmConfig;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;

/**
 * One VM in one OS process: its machine, its current outgoing or incoming migration, and the
 * behaviour behind every QMP command (the QMP binding only converts arguments and results). It
 * follows QEMU's semantics wherever QEMU has them — {@code cont} during inmigrate only sets
 * autostart, {@code -incoming defer} waits for {@code migrate-incoming}, a failed incoming
 * migration leaves the VM stopped and says why in query-migrate.
 *
 * <p>Commands arrive one at a time on the QMP dispatcher thread; migrations run on their own
 * threads and report through {@link Events}.
 */
public final class Vmm implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Vmm.class);

    /** Outbound port: QMP events. */
    public interface Events {
        void emit(String name, ObjectNode data);
    }

    private final VmConfig config;
    private final VmGuest guest;
    private final Machine machine;
    private final VmVfs vfs;
    private final VmDevices devices;
    private final VmBalloon balloon;
    /** Times the VM entered running: a device's stop request is for the run it was made in. */
    private final java.util.concurrent.atomic.AtomicLong starts = new java.util.concurrent.atomic.AtomicLong();
    private final NettyMigrationTransports transports = new NettyMigrationTransports();
    private final Events events;
    private final HoldPoints holds;
    private final boolean incomingMode;
    private final boolean verifyAtLoad;
    private volatile MigrationParameters params = MigrationParameters.defaults();
    /** TLS objects (object-add) and the tls-* migration parameters. */
    final VmmTls tls = new VmmTls();
    private volatile MigrationCapabilities caps = MigrationCapabilities.defaults();
    private volatile SourceMigration outgoing;
    private volatile DestinationMigration incoming;
    private volatile String incomingUri;
    private volatile boolean autostart;

    /**
     * @param incomingMode  started with {@code --incoming}: the VM waits in inmigrate
     * @param startPaused   {@code -S}: do not start the guest (or, when incoming, do not start it after loading)
     * @param verifyAtLoad  take a memory digest at load on the destination (demo verification; costs downtime)
     */
    public Vmm(VmConfig config, boolean incomingMode, boolean startPaused, boolean verifyAtLoad, Events events)
            throws VmmException {
        this(config, incomingMode, startPaused, verifyAtLoad, events, notice -> LOG.warn("{}", notice));
    }

    public Vmm(VmConfig config, boolean incomingMode, boolean startPaused, boolean verifyAtLoad, Events events,
               java.util.function.Consumer<String> notice) throws VmmException {
        this.config = config;
        this.events = events;
        this.incomingMode = incomingMode;
        this.verifyAtLoad = verifyAtLoad;
        this.autostart = !startPaused;
        this.guest = VmGuests.create(config, notice);
        this.machine = guest.machine();
        try {
            this.vfs = VmVfs.attach(config, machine, verifyAtLoad);
            this.devices = VmDevices.attach(config, machine, incomingMode, this::stopForDevice);
            guest.attachDrivers(devices);
            this.balloon = VmBalloon.attach(devices, events);
            // The migration event loops now, not on the first migration: what a VMM holds (fds,
            // threads) is then the same before a migration and after one that failed.
            transports.warmUp();
        } catch (VmmException | RuntimeException e) {
            guest.close();
            throw e;
        }
        this.holds = new HoldPoints(p -> events.emit("X-FERRY-HOLD", QapiJson.JSON.createObjectNode()
                .put("phase", p.name().toLowerCase(java.util.Locale.ROOT))));
        machine.addRunStateListener((prev, now) -> {
            if (now == RunState.RUNNING && prev != RunState.RUNNING) {
                starts.incrementAndGet();
                events.emit("RESUME", null);
            } else if (prev == RunState.RUNNING) {
                events.emit("STOP", null);
            }
        });
        machine.migration().addNotifier(ev -> {
            if (ev == MigrationEvent.SETUP) {
                holds.at(HoldPoints.Phase.SETUP);
            }
        });
        machine.addVmChangeStateHandler(new VmChangeStateHandler() {
            @Override
            public void onChange(boolean running, RunState state) {
                if (!running && state == RunState.FINISH_MIGRATE) {
                    holds.at(HoldPoints.Phase.DEVICE);
                }
            }
        }, Integer.MIN_VALUE);
    }

    /**
     * A device asks to stop the VM (a disk error under the {@code stop} policy): the event first,
     * then the stop, on a thread of its own — the device's event loop must not stop the VM it
     * runs in. QEMU emits BLOCK_IO_ERROR, then STOP.
     */
    private void stopForDevice(String device, RunState state, String event, java.util.Map<String, Object> data) {
        events.emit(event, QapiJson.JSON.valueToTree(data));
        long startsAtError = starts.get();
        Thread t = new Thread(() -> {
            try {
                // Only the run the error happened in is stopped: a request that arrives once the VM
                // is stopped (another request of the same burst, a drain at stop) or after a later
                // `cont` must not stop the guest again. vmStart and vmStop lock the machine, so the
                // check and the stop are one step.
                synchronized (machine) {
                    if (starts.get() == startsAtError && machine.isRunning()) {
                        machine.vmStop(state);
                    }
                }
            } catch (VmStateChangeException e) {
                LOG.warn("{}: stopping the VM for {} failed: {}", config.name(), device, e.getMessage());
            }
        }, "ferry-stop-for-" + device);
        t.setDaemon(true);
        t.start();
    }

    /**
     * Runs {@link MigrationWarmUp} through this VMM's transports (before {@link #boot}); a warm-up
     * that fails is logged and changes nothing else. Returns its wall time in nanoseconds, or -1.
     */
    public long warmUpMigration() {
        MigrationWarmUp.Result r = warmUp();
        return r == null ? -1 : r.nanos();
    }

    /** As {@link #warmUpMigration}, with what the warm-up moved; null when it failed. */
    MigrationWarmUp.Result warmUp() {
        try {
            dev.ferry.vmm.qmp.QmpServer.warmUpEvents();
            return MigrationWarmUp.run(transports);
        } catch (IOException | RuntimeException e) {
            LOG.warn("{}: the migration warm-up failed (migrations will compile as they run): {}", config.name(), e.toString());
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
    }

    /** Starts the guest, or enters inmigrate; called once after construction. */
    public void boot() throws VmStateChangeException {
        if (!incomingMode) { // incoming: the source's RAM, vCPU and device state replace it
            guest.boot();
            vfs.bringUp();
        }
        if (incomingMode) {
            machine.setRunState(RunState.INMIGRATE);
        } else if (autostart) {
            machine.vmStart();
        } // else -S: stays in prelaunch until cont, as QEMU reports it
    }

    public Machine machine() {
        return machine;
    }

    public String engineName() {
        return guest.engineName();
    }

    // ---- run state ----

    public ObjectNode queryStatus() {
        RunState rs = machine.runState();
        return QapiJson.JSON.createObjectNode().put("status", rs.qapiName()).put("singlestep", false)
                .put("running", rs.isRunning());
    }

    public void stop() throws VmmException {
        if (machine.runState() == RunState.INMIGRATE) {
            autostart = false;
            DestinationMigration in = incoming;
            if (in != null) {
                in.setAutostart(false);
            }
            return;
        }
        try {
            machine.vmStop(RunState.PAUSED);
        } catch (VmStateChangeException e) {
            throw VmmException.generic(e.getMessage());
        }
    }

    public void cont() throws VmmException {
        RunState rs = machine.runState();
        if (rs == RunState.INMIGRATE) {
            autostart = true;
            DestinationMigration in = incoming;
            if (in != null) {
                in.setAutostart(true);
            }
            return;
        }
        SourceMigration out = outgoing;
        if (rs == RunState.FINISH_MIGRATE || (out != null && out.status() == MigrationStatus.DEVICE)) {
            throw VmmException.generic("The VM is stopped for migration switchover; cancel the migration instead");
        }
        if (rs == RunState.SHUTDOWN || rs == RunState.INTERNAL_ERROR) {
            throw VmmException.generic("Resetting the Virtual Machine is required");
        }
        try {
            machine.vmStart();
        } catch (VmStateChangeException e) {
            throw VmmException.generic(e.getMessage());
        }
    }

    // ---- migration ----

    private final MigrationEventSink migrationEvents = new MigrationEventSink() {
        @Override
        public void status(MigrationStatus s) {
            if (caps.events()) {
                events.emit("MIGRATION", QapiJson.JSON.createObjectNode().put("status", s.qapiName()));
            }
        }

        @Override
        public void pass(long pass) {
            if (caps.events()) {
                events.emit("MIGRATION_PASS", QapiJson.JSON.createObjectNode().put("pass", pass));
            }
            if (pass == 1 && outgoing != null) {
                holds.at(HoldPoints.Phase.ACTIVE);
            }
        }
    };

    public synchronized void migrate(String uri) throws VmmException {
        if (machine.runState() == RunState.INMIGRATE) {
            throw VmmException.generic("Guest is waiting for an incoming migration");
        }
        SourceMigration out = outgoing;
        if (out != null && out.status().isRunning()) {
            throw VmmException.generic("There's a migration process in progress");
        }
        if (!uri.startsWith("tcp:") && !uri.startsWith("unix:") && !uri.startsWith("file:")) {
            throw VmmException.generic("unknown migration protocol: " + uri); // QEMU's check and message
        }
        dev.ferry.migration.tls.MigrationTls secure = tls.forSource();
        SourceMigration m = new SourceMigration(machine, secure == null ? transports : transports.secured(secure), params,
                caps, migrationEvents);
        outgoing = m;
        try {
            m.start(uri);
        } catch (MigrationException e) {
            throw VmmException.generic(e.getMessage());
        } catch (IllegalArgumentException e) {
            throw VmmException.generic("Invalid migration URI '" + uri + "': " + e.getMessage());
        }
    }

    /** {@code --incoming URI} at start, or {@code migrate-incoming} after {@code --incoming defer}. */
    public synchronized void migrateIncoming(String uri, boolean fromCommandLine) throws VmmException {
        if (!incomingMode) {
            throw VmmException.generic("'-incoming' was not specified on the command line");
        }
        if (incoming != null) {
            throw VmmException.generic("The incoming migration has already been started");
        }
        dev.ferry.migration.tls.MigrationTls secure = tls.forDestination();
        DestinationMigration in = new DestinationMigration(machine, secure == null ? transports
                : transports.secured(secure), caps, migrationEvents, autostart);
        in.setMultifdChannels(params.multifdChannels());
        in.digestMemoryAtLoad(verifyAtLoad);
        in.memoryDigest(guest::memoryDigest);
        in.beforeStart(guest::loaded);
        try {
            incomingUri = in.listen(uri);
        } catch (IOException | IllegalArgumentException e) {
            throw VmmException.generic("Failed to listen on '" + uri + "': " + e.getMessage());
        }
        incoming = in;
        LOG.info("{}: waiting for the incoming migration on {}", config.name(), incomingUri);
    }

    /** Cancels first, then lets a held migration thread go, so it sees the cancel at once. */
    public void migrateCancel() {
        SourceMigration out = outgoing;
        if (out != null) {
            out.cancel();
        }
        holds.disarmAll();
    }

    /** The latest migration: an outgoing one once started (it can only follow a completed incoming one). */
    public ObjectNode queryMigrate() {
        SourceMigration latestOut = outgoing;
        DestinationMigration in = incoming;
        if (latestOut == null && in != null) {
            boolean listening = in.status() == MigrationStatus.SETUP;
            ObjectNode o = QapiJson.migrationInfo(in.info(), true, listening ? incomingUri : null);
            if (in.status() == MigrationStatus.COMPLETED) {
                // This side's part of the guest's pause, after the stream's end (the source's
                // x-ferry-downtime-breakdown carries it too, from the return path).
                ObjectNode b = o.putObject("x-ferry-destination-phases");
                in.phasesMicros().forEach((k, v) -> b.put(k + "-us", v));
            }
            return o;
        }
        return QapiJson.migrationInfo(latestOut == null ? null : latestOut.info(), false, null);
    }

    private boolean migrationRunning() {
        SourceMigration out = outgoing;
        DestinationMigration in = incoming;
        return (out != null && out.status().isRunning()) || (in != null && in.status().isRunning());
    }

    public synchronized void setParameters(MigrationParameters p) throws VmmException {
        params = p;
        SourceMigration out = outgoing;
        if (out != null && out.status().isRunning()) {
            out.setMaxBandwidth(p.maxBandwidth());
        }
    }

    public MigrationParameters parameters() {
        return params;
    }

    public synchronized void setCapabilities(MigrationCapabilities c) throws VmmException {
        if (migrationRunning()) {
            throw VmmException.generic("There's a migration process in progress");
        }
        try {
            c.validate();
        } catch (IllegalArgumentException e) {
            throw VmmException.generic(e.getMessage());
        }
        caps = c;
    }

    public MigrationCapabilities capabilities() {
        return caps;
    }

    // ---- x-ferry debugging and verification ----

    public void hold(String phase) throws VmmException {
        try {
            holds.arm(HoldPoints.Phase.valueOf(phase.toUpperCase(java.util.Locale.ROOT)));
        } catch (IllegalArgumentException e) {
            throw VmmException.generic("Parameter 'phase' does not accept value '" + phase + "' (setup, active, device)");
        }
    }

    public void release() {
        holds.release();
    }

    public ObjectNode guestInfo() {
        ObjectNode o = QapiJson.JSON.createObjectNode();
        o.put("engine", guest.engineName());
        o.put("vcpus", machine.cpus().vcpuCount());
        o.put("ram", machine.memory().totalSize());
        guest.describe(o);
        o.put("status", machine.runState().qapiName());
        return o;
    }

    /** QMP set_link: a virtio NIC's link goes down or up (the driver sees STATUS and a config interrupt). */
    public void setLink(String name, boolean up) throws dev.ferry.vmm.qmp.QmpError {
        for (dev.ferry.core.device.Device d : devices.all()) {
            if (d.id().equals(name) && d instanceof dev.ferry.virtio.VirtioMmioDevice v
                    && v.transport().model() instanceof dev.ferry.virtio.net.VirtioNet net) {
                net.setLink(up, machine.eventLoop());
                return;
            }
        }
        throw dev.ferry.vmm.qmp.QmpError.deviceNotFound("Device '" + name + "' not found");
    }

    /**
     * QMP block_resize: the virtio disk {@code device} grows to {@code size} bytes under the
     * running guest (its image file grows; the driver gets a config interrupt). Only growing: a
     * smaller size is refused. A vhost-user disk is resized by its back-end's owner, not here.
     */
    public void blockResize(String device, long size) throws dev.ferry.vmm.qmp.QmpError {
        for (dev.ferry.core.device.Device d : devices.all()) {
            if (d.id().equals(device) && d instanceof dev.ferry.virtio.VirtioMmioDevice v) {
                if (v.transport().model() instanceof dev.ferry.virtio.blk.VirtioBlk blk) {
                    if (size <= 0) {
                        throw dev.ferry.vmm.qmp.QmpError.generic("Parameter 'size' expects a >0 size");
                    }
                    try {
                        blk.grow(size);
                    } catch (java.io.IOException e) {
                        throw dev.ferry.vmm.qmp.QmpError.generic(device + ": " + e.getMessage());
                    }
                    return;
                }
                if (v.transport().model() instanceof dev.ferry.vhostuser.frontend.VhostUserBlk) {
                    throw dev.ferry.vmm.qmp.QmpError.generic("Device '" + device + "' is a vhost-user disk: its back-end"
                            + " owns the image; resize it there (its config-change message reaches the guest)");
                }
            }
        }
        throw dev.ferry.vmm.qmp.QmpError.deviceNotFound("Device '" + device + "' not found");
    }

    /** The VM's config devices (virtio-blk, ...): transport, rings and counters (x-ferry-devices). */
    public ObjectNode devicesInfo() {
        ObjectNode o = QapiJson.JSON.createObjectNode();
        // Like QEMU's monitor under the BQL, wait for a run-state change in progress: the run state
        // (and STOP) change before the devices have quiesced, and a stopping disk parks its failed
        // requests only as it quiesces.
        synchronized (machine) {
            o.set("devices", devices.describe());
        }
        return o;
    }

    /** The VM's VFIO devices: state, migration statistics, wire and counters (x-ferry-vfio). */
    public ObjectNode vfioInfo() {
        ObjectNode o = QapiJson.JSON.createObjectNode();
        o.set("devices", vfs.describe(false));
        return o;
    }

    /** The digest of guest RAM; the VM must be stopped so it means something. */
    public ObjectNode memoryDigest() throws VmmException {
        if (machine.isRunning()) {
            throw VmmException.generic("Stop the VM first: a running guest's memory has no single digest");
        }
        return QapiJson.JSON.createObjectNode().put("digest", hex(guest.memoryDigest()));
    }

    /**
     * Checks the guest: every page of the working set is intact, and — on a destination whose
     * migration completed — the guest continued exactly from the state it loaded. Pauses the
     * guest for the check and resumes it if it ran.
     */
    public ObjectNode verify() throws VmmException {
        boolean wasRunning = machine.isRunning();
        try {
            if (wasRunning) {
                machine.vmStop(RunState.PAUSED);
            }
            ObjectNode o = QapiJson.JSON.createObjectNode();
            guest.verify(o);
            if (!vfs.isEmpty()) {
                o.set("vfs", vfs.describe(true));
            }
            DestinationMigration in = incoming;
            if (in != null && in.status() == MigrationStatus.COMPLETED && in.memoryDigestAtLoad() != null) {
                o.put("digest-at-load", hex(in.memoryDigestAtLoad()));
                o.put("digest-ms", in.digestNanos() / 1_000_000.0);
            }
            return o;
        } catch (VmStateChangeException e) {
            throw VmmException.generic(e.getMessage());
        } finally {
            if (wasRunning) {
                try {
                    machine.vmStart();
                } catch (VmStateChangeException e) {
                    LOG.warn("{}: resuming after verification failed: {}", config.name(), e.getMessage());
                }
            }
        }
    }

    static String hex(long v) {
        return String.format("0x%016x", v);
    }

    /** The VM's balloon for QMP (balloon, query-balloon, qom-get/qom-set of its stats). */
    VmBalloon balloon() {
        return balloon;
    }

    @Override
    public void close() {
        holds.disarmAll();
        balloon.close();
        guest.close();
        transports.close();
    }
}
