package dev.ferry.core.machine;

import dev.ferry.core.cpu.CpuEngine;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.MigrationRegistry;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A VM: guest memory, vCPUs, devices (through their registrations) and the run state. Owns the
 * memory and the CPU engine and closes them.
 *
 * <p>Run-state changes are serialized on this object's monitor: {@link #vmStop} pauses the vCPUs,
 * then runs the VM-change-state handlers (prepare stage for all, then the main stage, both in
 * descending priority); {@link #vmStart} runs the handlers (ascending priority) and then resumes
 * the vCPUs — QEMU's order.
 */
public final class Machine implements AutoCloseable {
    private final String name;
    private final GuestMemory memory;
    private final CpuEngine cpus;
    private final MigrationRegistry migration = new MigrationRegistry();
    private final IoBus pio;
    private final IoBus mmio;
    private final List<HandlerEntry> handlers = new CopyOnWriteArrayList<>();
    private final List<RunStateListener> listeners = new CopyOnWriteArrayList<>();
    private final List<AutoCloseable> devices = new CopyOnWriteArrayList<>();
    private final List<AutoCloseable> activities = new CopyOnWriteArrayList<>();
    private volatile RunState runState;
    /** The run state when a migration last stopped this VM (QEMU's global_state_store). */
    private volatile RunState beforeMigration = RunState.RUNNING;
    /** The run state an incoming migration carried, until the destination acted on it. */
    private volatile RunState incoming;
    private int handlerSeq;
    private dev.ferry.core.device.DeviceEventLoop eventLoop;
    private volatile dev.ferry.core.device.InterruptController interrupts;
    private dev.ferry.core.memory.DeviceMemory deviceMemory;

    private record HandlerEntry(VmChangeStateHandler handler, int priority, int seq) {
    }

    public Machine(String name, GuestMemory memory, CpuEngine cpus, RunState initial) {
        this(name, memory, cpus, initial, new IoBus("pio"), new IoBus("mmio"));
    }

    /**
     * With buses made beforehand: an engine that dispatches guest accesses itself (KVM) is built
     * on them before the machine exists.
     */
    public Machine(String name, GuestMemory memory, CpuEngine cpus, RunState initial, IoBus pio, IoBus mmio) {
        this.pio = pio;
        this.mmio = mmio;
        this.name = name;
        this.memory = memory;
        this.cpus = cpus;
        this.runState = initial;
        GlobalState.register(this);
    }

    public String name() {
        return name;
    }

    public GuestMemory memory() {
        return memory;
    }

    public CpuEngine cpus() {
        return cpus;
    }

    /** The port-I/O space (x86 IN/OUT), where vCPU engines dispatch port accesses. */
    public IoBus pio() {
        return pio;
    }

    /** Guest-physical addresses that are not RAM: device register windows (BARs). */
    public IoBus mmio() {
        return mmio;
    }

    public MigrationRegistry migration() {
        return migration;
    }

    /**
     * The machine's device event loop ({@code ferry-devices-<name>}), started on first use. It
     * follows the run state: {@link #vmStop} pauses it after the vCPUs and before the
     * VM-change-state handlers, {@link #vmStart} resumes it after the handlers and before the
     * vCPUs, so a stopped VM's devices run no handler (their tasks still run: devices drain and
     * save through {@code call}). Closed with the machine, after its devices.
     */
    public synchronized dev.ferry.core.device.DeviceEventLoop eventLoop() {
        if (eventLoop == null) {
            eventLoop = new dev.ferry.core.device.DeviceEventLoop(name);
            if (!runState.isRunning()) {
                eventLoop.pause();
            }
        }
        return eventLoop;
    }

    /** Guest memory as devices may touch it: every write dirty-tracked ({@link dev.ferry.core.memory.DeviceMemory}). */
    public synchronized dev.ferry.core.memory.DeviceMemory deviceMemory() {
        if (deviceMemory == null) {
            deviceMemory = new dev.ferry.core.memory.DeviceMemory(memory);
        }
        return deviceMemory;
    }

    /**
     * Sets the interrupt controller devices raise their lines on (the soft controller, or KVM's
     * in-kernel irqchip), once, while the machine is built.
     */
    public void attachInterruptController(dev.ferry.core.device.InterruptController controller) {
        if (interrupts != null) {
            throw new IllegalStateException(name + ": an interrupt controller is already attached");
        }
        interrupts = controller;
    }

    /** The interrupt controller; throws when the machine was built without one. */
    public dev.ferry.core.device.InterruptController interrupts() {
        dev.ferry.core.device.InterruptController c = interrupts;
        if (c == null) {
            throw new IllegalStateException(name + ": this machine has no interrupt controller for devices");
        }
        return c;
    }

    public RunState runState() {
        return runState;
    }

    public boolean isRunning() {
        return runState == RunState.RUNNING;
    }

    /** A device whose resources the machine closes (in reverse order) when it closes. */
    public void addDevice(AutoCloseable device) {
        devices.add(device);
    }

    /**
     * Something running against this machine from its own thread (a migration) that must end
     * before anything else closes: {@link #close()} closes activities first, then the vCPUs, the
     * devices and the memory. Its {@code close()} must stop its thread before it returns.
     */
    public void addActivity(AutoCloseable activity) {
        activities.add(activity);
    }

    public void removeActivity(AutoCloseable activity) {
        activities.remove(activity);
    }

    public synchronized void addVmChangeStateHandler(VmChangeStateHandler h, int priority) {
        handlers.add(new HandlerEntry(h, priority, handlerSeq++));
    }

    public void removeVmChangeStateHandler(VmChangeStateHandler h) {
        handlers.removeIf(e -> e.handler == h);
    }

    public void addRunStateListener(RunStateListener l) {
        listeners.add(l);
    }

    /**
     * The run state the last outgoing migration found when it stopped the VM ({@code running},
     * {@code paused}, {@code io-error}, ...): what the {@code globalstate} section sends.
     */
    public RunState stateBeforeMigration() {
        return beforeMigration;
    }

    void globalStateLoaded(RunState s) {
        incoming = s;
    }

    /**
     * The run state the source was in, as the last incoming migration's {@code globalstate}
     * section said, or null when no stream carried one. A destination whose source was not
     * running stays in that state instead of starting (QEMU's process_incoming_migration_bh).
     */
    public RunState incomingRunState() {
        return incoming;
    }

    /** Sets the state without running handlers (used for inmigrate/postmigrate bookkeeping). */
    public synchronized void setRunState(RunState s) {
        RunState prev = runState;
        runState = s;
        if (prev != s) {
            for (RunStateListener l : listeners) {
                l.runStateChanged(prev, s);
            }
        }
    }

    /**
     * Stops the VM into {@code state} (paused, finish-migrate, ...). If the VM was not running,
     * only the state changes. Handler failures are collected; the VM ends up stopped regardless
     * and the failures are thrown together.
     */
    public synchronized void vmStop(RunState state) throws VmStateChangeException {
        if (state.isRunning()) {
            throw new IllegalArgumentException("vmStop into " + state);
        }
        if (state == RunState.FINISH_MIGRATE) {
            beforeMigration = runState;
        }
        if (!runState.isRunning()) {
            setRunState(state);
            return;
        }
        long t0 = System.nanoTime();
        cpus.pause();
        long t1 = System.nanoTime();
        try {
            pauseDevices();
            setRunState(state);
            notifyHandlers(false, state);
        } finally {
            lastStop = new StopTimings(t1 - t0, System.nanoTime() - t1);
        }
    }

    /**
     * How long the last {@link #vmStop} of a running VM took: pausing the vCPUs, then the device
     * event loop and the VM-change-state handlers (devices quiescing).
     */
    public record StopTimings(long cpusNanos, long devicesNanos) {
    }

    private volatile StopTimings lastStop = new StopTimings(0, 0);

    /** The timings of the last {@link #vmStop} that stopped a running VM (zeros before any). */
    public StopTimings lastStopTimings() {
        return lastStop;
    }

    /** Starts the VM; on handler failure the VM still runs and the failures are thrown. */
    public synchronized void vmStart() throws VmStateChangeException {
        if (runState.isRunning()) {
            return;
        }
        VmStateChangeException failure = null;
        try {
            notifyHandlers(true, RunState.RUNNING);
        } catch (VmStateChangeException e) {
            failure = e;
        }
        setRunState(RunState.RUNNING);
        resumeDevices();
        cpus.resume();
        if (failure != null) {
            throw failure;
        }
    }

    /**
     * Starts the VM only if every handler starts it. When one fails, the VM does not run at all:
     * the handlers hear it stop into {@code onFailure} (both stages, as {@link #vmStop}), the
     * device loop and the vCPUs are never resumed, the state becomes {@code onFailure} and all
     * failures are thrown. For a migration destination whose source takes the guest back when the
     * start fails: the two share the guest's disks (and networks), so the guest must not run here
     * even for a moment — a device whose start was rolled back has done no I/O, since devices
     * begin serving only once their loop runs again.
     */
    public synchronized void vmStartOrStayStopped(RunState onFailure) throws VmStateChangeException {
        if (onFailure.isRunning()) {
            throw new IllegalArgumentException("vmStartOrStayStopped falling back to " + onFailure);
        }
        if (runState.isRunning()) {
            return;
        }
        try {
            notifyHandlers(true, RunState.RUNNING);
        } catch (VmStateChangeException failed) {
            setRunState(onFailure);
            try {
                notifyHandlers(false, onFailure);
            } catch (VmStateChangeException again) {
                throw new VmStateChangeException(failed.getMessage() + "; stopping again reported: " + again.getMessage(),
                        failed);
            }
            throw failed;
        }
        setRunState(RunState.RUNNING);
        resumeDevices();
        cpus.resume();
    }

    private synchronized void pauseDevices() {
        if (eventLoop != null) {
            eventLoop.pause();
        }
    }

    private synchronized void resumeDevices() {
        if (eventLoop != null) {
            eventLoop.resume();
        }
    }

    private void notifyHandlers(boolean running, RunState state) throws VmStateChangeException {
        List<HandlerEntry> order = new ArrayList<>(handlers);
        Comparator<HandlerEntry> asc = Comparator.comparingInt(HandlerEntry::priority)
                .thenComparingInt(HandlerEntry::seq);
        order.sort(running ? asc : asc.reversed());
        List<String> failures = new ArrayList<>();
        Throwable first = null;
        for (HandlerEntry e : order) {
            try {
                e.handler.prepare(running, state);
            } catch (VmStateChangeException | RuntimeException ex) {
                failures.add(ex.getMessage());
                first = first == null ? ex : first;
            }
        }
        for (HandlerEntry e : order) {
            try {
                e.handler.onChange(running, state);
            } catch (VmStateChangeException | RuntimeException ex) {
                failures.add(ex.getMessage());
                first = first == null ? ex : first;
            }
        }
        if (!failures.isEmpty()) {
            throw new VmStateChangeException(String.join("; ", failures), first);
        }
    }

    @Override
    public void close() {
        for (AutoCloseable a : activities) {
            try {
                a.close();
            } catch (Exception e) {
                org.slf4j.LoggerFactory.getLogger(Machine.class).warn("{}: stopping {} failed: {}", name, a, e.toString());
            }
        }
        try {
            cpus.close();
        } finally {
            List<AutoCloseable> rev = new ArrayList<>(devices);
            java.util.Collections.reverse(rev);
            for (AutoCloseable d : rev) {
                try {
                    d.close();
                } catch (Exception e) {
                    org.slf4j.LoggerFactory.getLogger(Machine.class).warn("{}: closing device failed: {}", name, e.toString());
                }
            }
            synchronized (this) {
                if (eventLoop != null) {
                    eventLoop.close();
                }
            }
            memory.close();
        }
    }
}
