package dev.ferry.virtio;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.device.InterruptLine;
import dev.ferry.core.machine.BusDevice;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.machine.VmChangeStateHandler;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.sys.EventFd;
import dev.ferry.core.sys.Linux;
import dev.ferry.virtio.queue.SplitVirtqueue;
import dev.ferry.virtio.queue.VirtqueueError;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Map;

/**
 * The virtio-mmio transport, version 2 (virtio 1.x, transport-mmio.tex), with the state every
 * virtio device shares: device status and feature negotiation, queue registers, interrupt status,
 * config generation and reset. The device-specific half is a {@link VirtioDeviceModel}; the
 * register window is decoded by {@code MmioRegisters}, next to the drawing of its layout.
 *
 * <p>Rules the driver is held to, as the specification and QEMU hold it: FEATURES_OK stays clear
 * when the driver accepted a feature that was not offered or did not accept VERSION_1; feature
 * writes after FEATURES_OK are ignored; queue registers are frozen while the queue is ready; a
 * queue size must be a power of two no larger than QueueNumMax; kicks before DRIVER_OK are
 * dropped. A protocol violation in the rings sets NEEDS_RESET and raises the config interrupt
 * ({@link VirtioContext#deviceError}); the device then serves nothing until the driver resets it.
 *
 * <h2>Threads</h2>
 * Register accesses arrive on vCPU threads and are serialized on this object's lock; kicks go
 * through one eventfd per queue (signalled by this bus handler, or by KVM itself when an
 * ioeventfd is registered) to the device on the machine's event loop, which also runs the model's
 * lifecycle calls. The interrupt line is raised from the loop and lowered by InterruptACK.
 */
public final class VirtioMmio implements BusDevice, VmChangeStateHandler, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioMmio.class);
    public static final int MAGIC = 0x74726976;
    public static final int VERSION = 2;
    /** "FRRY" little-endian: Ferry's vendor ID on the transport. */
    public static final int VENDOR_ID = 0x59525246;
    /** Bytes of register window per device (registers plus up to 3.75 KiB of config). */
    public static final long WINDOW = 0x1000;
    /** The features every Ferry virtio device offers on top of its own. */
    public static final long TRANSPORT_FEATURES = Virtio.bit(Virtio.F_VERSION_1) | Virtio.bit(Virtio.F_EVENT_IDX)
            | Virtio.bit(Virtio.F_INDIRECT_DESC);

    final String name;
    final long base;
    final VirtioDeviceModel model;
    private final DeviceMemory memory;
    private final DeviceEventLoop loop;
    private final InterruptLine irq;
    final long hostFeatures;
    final MmioQueue[] queues;

    // Register state, guarded by this. (Read by the migration thread with the VM stopped.)
    int status;
    int isr;
    int queueSel;
    int hostFeaturesSel;
    int guestFeaturesSel;
    long guestFeatures;
    /** DriverFeatures as written per select word, applied at FEATURES_OK (QEMU's latch). */
    final int[] driverFeatureWords = new int[2];
    int configGeneration;
    /** The device serves its queues (DRIVER_OK seen, not reset, not broken). */
    boolean started;
    volatile String brokenReason;
    boolean vmRunning;
    private volatile boolean closed;
    private final MmioContext context = new MmioContext(this);
    private final MmioRegisters registers = new MmioRegisters(this);

    /**
     * @param name    the device's id, for messages ({@code "disk0"})
     * @param base    guest-physical base of the register window
     * @param memory  guest RAM as the device may touch it
     * @param loop    the machine's device event loop
     * @param irq     the interrupt line this device drives
     */
    public VirtioMmio(String name, long base, VirtioDeviceModel model, DeviceMemory memory, DeviceEventLoop loop,
                      InterruptLine irq) {
        this.name = name;
        this.base = base;
        this.model = model;
        this.memory = memory;
        this.loop = loop;
        this.irq = irq;
        this.hostFeatures = model.features() | TRANSPORT_FEATURES;
        int n = model.queueCount();
        if (n < 1 || n > Virtio.QUEUE_MAX || Integer.bitCount(model.queueMaxSize()) != 1
                || model.queueMaxSize() > 32768) {
            throw new IllegalArgumentException(name + ": " + n + " queues of at most " + model.queueMaxSize()
                    + " entries: need 1.." + Virtio.QUEUE_MAX + " queues of a power of two up to 32768");
        }
        this.queues = new MmioQueue[n];
        try {
            for (int i = 0; i < n; i++) {
                queues[i] = new MmioQueue(i, model.queueMaxSize());
                MmioQueue q = queues[i];
                if (!model.externalDataPlane()) { // otherwise the back-end reads the doorbell
                    q.kickRegistration = loop.add(q.kick, () -> kicked(q));
                }
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    public String name() {
        return name;
    }

    public long base() {
        return base;
    }

    public VirtioDeviceModel model() {
        return model;
    }

    public InterruptLine irq() {
        return irq;
    }

    /** The queue-notify eventfd of queue {@code q}, for an in-kernel doorbell (KVM ioeventfd). */
    public EventFd kickFd(int q) {
        return queues[q].kick;
    }

    /**
     * A new doorbell for queue {@code q} of a model with an external data plane, the old one
     * closed: a back-end handed the old one (one dropped while its process still runs) hears no
     * more kicks, as QEMU gives a vhost back-end fresh host notifiers at every start. A kick that
     * lands while the two are swapped goes to the new one ({@link #notifyWrite}); the caller kicks
     * the ring once it is handed over anyway. Not for KVM ioeventfds (none are assigned to virtio
     * doorbells yet: a renewal would deassign and assign). Loop thread.
     */
    public EventFd renewKick(int q) {
        if (!model.externalDataPlane()) {
            throw new IllegalStateException(name + ": queue " + q + "'s doorbell is served by the device loop");
        }
        MmioQueue mq = queues[q];
        EventFd fresh = new EventFd(Linux.EFD_NONBLOCK);
        EventFd old;
        synchronized (this) {
            if (closed) {
                fresh.close();
                throw new IllegalStateException(name + " is closed");
            }
            old = mq.kick;
            mq.kick = fresh;
        }
        old.close();
        return fresh;
    }

    public synchronized int status() {
        return status;
    }

    public synchronized long guestFeatures() {
        return guestFeatures;
    }

    /** Why the device stopped serving (NEEDS_RESET), or null. */
    public String brokenReason() {
        return brokenReason;
    }

    // ---- registers (vCPU threads) ----

    @Override
    public synchronized long read(long offset, int size) {
        return registers.read(offset, size);
    }

    @Override
    public void write(long offset, int size, long value) {
        if (offset == 0x050 && size == 4) {
            notifyWrite((int) value); // no lock: a kick only signals an eventfd
            return;
        }
        Runnable onLoop;
        synchronized (this) {
            onLoop = registers.write(offset, size, value);
        }
        if (onLoop != null) {
            // Outside the lock: the loop thread takes it to serve kicks.
            Runnable r = onLoop;
            loop.call(() -> {
                r.run();
                return null;
            });
        }
    }

    private void notifyWrite(int queue) {
        // Only the low 16 bits name the queue (without NOTIFICATION_DATA).
        int q = queue & 0xffff;
        if (q < queues.length) {
            MmioQueue mq = queues[q];
            EventFd k = mq.kick;
            try {
                k.signal();
            } catch (IllegalStateException e) {
                EventFd now = mq.kick;
                if (now == k) {
                    throw e; // the transport is closed
                }
                now.signal(); // renewed under this kick: the new doorbell gets it
            }
        }
    }

    /**
     * {@code MmioRegisters}: DRIVER_OK while the VM runs. Loop thread. A model that cannot start
     * (a vhost-user device whose back-end is gone) is a device that did not come up: NEEDS_RESET
     * with the reason, as any device error, never an exception into the guest's register write.
     * (A start at VM start is another path, and there a failure does fail the start.)
     */
    void startModel() {
        try {
            model.start(context);
        } catch (RuntimeException e) {
            synchronized (this) {
                if (started) {
                    fail("starting the device at DRIVER_OK failed: " + e.getMessage());
                }
            }
        }
    }

    /** QEMU's virtio_error: NEEDS_RESET, config interrupt, serve nothing more. Holding the lock. */
    void fail(String reason) {
        LOG.warn("{}: {}: device needs reset", name, reason);
        brokenReason = reason;
        started = false;
        status |= Virtio.STATUS_NEEDS_RESET;
        notifyConfig();
    }

    /**
     * QEMU's virtio_notify_config: after DRIVER_OK only, InterruptStatus gets both bits (0x3),
     * the config generation moves on, and the line goes up. Holding the lock.
     */
    private void notifyConfig() {
        if ((status & Virtio.STATUS_DRIVER_OK) != 0) {
            isr |= Virtio.ISR_QUEUE | Virtio.ISR_CONFIG;
            configGeneration++;
            irq.raise();
        }
    }

    // ---- the device's side (event loop) ----

    /** A queue's eventfd fired: hand the kick to the model if it serves. Loop thread. */
    private void kicked(MmioQueue q) {
        boolean serve;
        synchronized (this) {
            serve = started && q.ready && brokenReason == null;
        }
        if (serve) {
            try {
                model.queueNotified(q.index);
            } catch (VirtqueueError e) {
                deviceError("queue " + q.index + ": " + e.getMessage());
            }
        }
    }

    /** {@link VirtioContext#queue}: a ready queue of a device that does not need a reset, or null. */
    synchronized SplitVirtqueue servedQueue(int index) {
        // A device that needs a reset touches its rings no more (QEMU drops a broken device's pushes).
        return index >= 0 && index < queues.length && queues[index].ready && brokenReason == null
                ? queues[index].ring : null;
    }

    /** {@link VirtioContext#notifyQueue}: the used-buffer interrupt, unless the driver suppressed it. */
    void notifyUsed(int index) {
        SplitVirtqueue ring = servedQueue(index);
        if (ring == null || !ring.shouldNotify()) {
            return;
        }
        synchronized (this) {
            isr |= Virtio.ISR_QUEUE;
            irq.raise();
        }
    }

    /** {@link VirtioContext#interruptQueue}: the used-buffer interrupt, unconditionally. */
    void raiseUsed(int index) {
        if (servedQueue(index) == null) {
            return;
        }
        synchronized (this) {
            isr |= Virtio.ISR_QUEUE;
            irq.raise();
        }
    }

    synchronized void configChangedByDevice() {
        notifyConfig();
    }

    synchronized void deviceError(String reason) {
        fail(reason);
    }

    DeviceMemory memory() {
        return memory;
    }

    DeviceEventLoop loop() {
        return loop;
    }

    // ---- run state ----

    /**
     * VM stop: the model finishes or parks what is in flight (its completions and interrupts
     * happen now, as part of stopping); VM start: a started device serves again, re-raising its
     * line when InterruptStatus is set (a migrated pending interrupt) and looking at every queue
     * once, since a kick may have been lost with the source (QEMU: the first notify after load is
     * unconditional; Firecracker re-kicks on resume). That look is a signal on the queue's
     * doorbell, served once the loop runs handlers again — after every VM-change-state handler
     * started and the machine resumed the loop — so a start that is rolled back
     * ({@link dev.ferry.core.machine.Machine#vmStartOrStayStopped}) did no I/O.
     */
    @Override
    public void onChange(boolean running, RunState state) {
        boolean serve;
        synchronized (this) {
            vmRunning = running;
            serve = started && brokenReason == null;
            if (running && isr != 0) {
                irq.raise();
            }
        }
        if (!serve) {
            return;
        }
        loop.call(() -> {
            if (running) {
                model.start(context);
                for (MmioQueue q : queues) {
                    if (q.ready) {
                        q.ring.forceNextNotify();
                        q.kick.signal(); // served when the loop resumes, not in this task
                    }
                }
            } else {
                model.quiesce();
            }
            return null;
        });
    }

    // ---- migration (VirtioState) ----

    /** The section id of this device's state: {@code virtio-mmio@<base>/<model>}, as QEMU names by bus path. */
    public String idstr() {
        return String.format("virtio-mmio@%08x/%s", base, model.name());
    }

    /** Registers this device's state (QEMU's {@code virtio} field) with {@code registry}. */
    public void registerMigration(dev.ferry.core.migration.MigrationRegistry registry) {
        registry.registerVmState(idstr(), 0, VirtioState.description(model), this,
                dev.ferry.core.migration.MigrationPriority.DEVICE);
    }

    /** Applies a state {@link VirtioState} read and checked completely. Incoming thread, VM stopped. */
    synchronized void applyLoaded(int hostSel, int guestSel, int status, int isr, int queueSel, long features,
                                  byte[] config, int[] num, long[] desc, long[] avail, long[] used,
                                  boolean[] enabled, SplitVirtqueue[] rings, boolean started, String broken)
            throws dev.ferry.core.migration.MigrationException {
        model.restoreConfig(config);
        model.commitLoad();
        this.hostFeaturesSel = hostSel;
        this.guestFeaturesSel = guestSel;
        this.status = status;
        this.isr = isr;
        this.queueSel = queueSel;
        this.guestFeatures = features;
        this.driverFeatureWords[0] = (int) features;
        this.driverFeatureWords[1] = (int) (features >>> 32);
        for (int i = 0; i < queues.length; i++) {
            MmioQueue q = queues[i];
            q.num = num[i] == 0 ? model.queueMaxSize() : num[i];
            q.desc = desc[i];
            q.avail = avail[i];
            q.used = used[i];
            q.ready = enabled[i];
            q.ring = rings[i];
        }
        this.started = started && broken == null;
        this.brokenReason = broken;
        if (broken != null) {
            this.status |= Virtio.STATUS_NEEDS_RESET;
            if ((status & Virtio.STATUS_DRIVER_OK) != 0) {
                this.isr |= Virtio.ISR_QUEUE | Virtio.ISR_CONFIG; // as fail(): the line goes up when the VM starts
            }
            LOG.warn("{}: loaded broken: {}", name, broken);
        }
    }

    /** {@code x-ferry-devices}: transport state and the model's counters. */
    public synchronized void describe(Map<String, Object> into) {
        into.put("transport", "virtio-mmio");
        into.put("base", String.format("0x%x", base));
        into.put("gsi", irq.gsi());
        into.put("status", status);
        into.put("features", String.format("0x%x", guestFeatures));
        into.put("isr", isr);
        into.put("config-generation", configGeneration);
        if (brokenReason != null) {
            into.put("needs-reset", brokenReason);
        }
        java.util.List<Object> qs = new java.util.ArrayList<>();
        for (MmioQueue q : queues) {
            if (q.ready) {
                qs.add(Map.of("index", q.index, "size", q.num, "last-avail-idx", q.ring.lastAvailIdx(),
                        "used-idx", q.ring.usedIdx()));
            }
        }
        into.put("queues", qs);
        model.describe(into);
    }

    @Override
    public void close() {
        synchronized (this) { // against renewKick: after this no doorbell is swapped in
            if (closed) {
                return;
            }
            closed = true;
        }
        for (MmioQueue q : queues) {
            if (q == null) {
                continue;
            }
            if (q.kickRegistration != null) {
                try {
                    q.kickRegistration.close();
                } catch (Exception e) {
                    LOG.warn("{}: removing queue {}'s doorbell failed: {}", name, q.index, e.toString());
                }
            }
            q.kick.close();
        }
        model.close();
    }
}
