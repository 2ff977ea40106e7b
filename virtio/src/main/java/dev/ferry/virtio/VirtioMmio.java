package dev.ferry.virtio;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.device.InterruptLine;
import dev.ferry.core.machine.BusDevice;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.machine.VmChangeStateHandler;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.sys.EventFd;
import dev.ferry.virtio.queue.SplitVirtqueue;
import dev.ferry.virtio.queue.VirtqueueError;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Map;

/**
 * The virtio-mmio transport, version 2 (virtio 1.x, transport-mmio.tex), with the state every
 * virtio device shares: device status and feature negotiation, queue registers, interrupt status,
 * config generation and reset. The device-specific half is a {@link VirtioDeviceModel}.
 * <pre>
 *   0x000 MagicValue 0x74726976   0x004 Version 2      0x008 DeviceID      0x00c VendorID
 *   0x010 DeviceFeatures (by 0x014 DeviceFeaturesSel)  0x020 DriverFeatures (by 0x024 DriverFeaturesSel)
 *   0x030 QueueSel  0x034 QueueNumMax  0x038 QueueNum  0x044 QueueReady  0x050 QueueNotify
 *   0x060 InterruptStatus  0x064 InterruptACK  0x070 Status
 *   0x080/084 QueueDesc  0x090/094 QueueDriver (avail)  0x0a0/0a4 QueueDevice (used)
 *   0x0ac SHMSel  0x0b0/0b4 SHMLen (-1: none)  0x0c0 QueueReset  0x0fc ConfigGeneration  0x100+ config
 * </pre>
 * Rules the driver is held to, as the specification and QEMU hold it: FEATURES_OK stays clear
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
    private boolean vmRunning;
    private volatile boolean closed;
    private final MmioContext context = new MmioContext(this);

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
        if (offset >= 0x100) {
            byte[] cfg = model.config();
            long off = offset - 0x100;
            if (off + size > cfg.length) {
                return size >= 8 ? -1L : (1L << (size * 8)) - 1; // QEMU: all ones past the config space
            }
            long v = 0;
            for (int i = size - 1; i >= 0; i--) {
                v = v << 8 | (cfg[(int) off + i] & 0xff);
            }
            return v;
        }
        if (size != 4 || (offset & 3) != 0) {
            LOG.debug("{}: {}-byte read of register 0x{} ignored", name, size, Long.toHexString(offset));
            return 0;
        }
        return switch ((int) offset) {
            case 0x000 -> MAGIC;
            case 0x004 -> VERSION;
            case 0x008 -> model.deviceId();
            case 0x00c -> VENDOR_ID;
            case 0x010 -> hostFeaturesSel > 1 ? 0 : (int) (hostFeatures >>> (32 * hostFeaturesSel));
            case 0x034 -> queueSel < queues.length ? model.queueMaxSize() : 0;
            case 0x038 -> queueSel < queues.length ? queues[queueSel].num : 0;
            case 0x044 -> queueSel < queues.length && queues[queueSel].ready ? 1 : 0;
            case 0x060 -> isr;
            case 0x070 -> status;
            case 0x080 -> sel() == null ? 0 : (int) sel().desc;
            case 0x084 -> sel() == null ? 0 : (int) (sel().desc >>> 32);
            case 0x090 -> sel() == null ? 0 : (int) sel().avail;
            case 0x094 -> sel() == null ? 0 : (int) (sel().avail >>> 32);
            case 0x0a0 -> sel() == null ? 0 : (int) sel().used;
            case 0x0a4 -> sel() == null ? 0 : (int) (sel().used >>> 32);
            case 0x0b0, 0x0b4 -> 0xffffffffL; // no shared memory regions
            case 0x0fc -> configGeneration;
            default -> 0;
        } & 0xffffffffL;
    }

    private MmioQueue sel() {
        return queueSel < queues.length ? queues[queueSel] : null;
    }

    @Override
    public void write(long offset, int size, long value) {
        if (offset == 0x050 && size == 4) {
            notifyWrite((int) value); // no lock: a kick only signals an eventfd
            return;
        }
        Runnable onLoop = null;
        synchronized (this) {
            if (offset >= 0x100) {
                model.writeConfig((int) (offset - 0x100), size, value);
                return;
            }
            if (size != 4 || (offset & 3) != 0) {
                LOG.debug("{}: {}-byte write of register 0x{} ignored", name, size, Long.toHexString(offset));
                return;
            }
            int v = (int) value;
            MmioQueue q = sel();
            switch ((int) offset) {
                case 0x014 -> hostFeaturesSel = v;
                case 0x020 -> {
                    if ((status & Virtio.STATUS_FEATURES_OK) == 0 && guestFeaturesSel >= 0 && guestFeaturesSel < 2) {
                        driverFeatureWords[guestFeaturesSel] = v;
                    }
                }
                case 0x024 -> guestFeaturesSel = v;
                case 0x030 -> queueSel = v;
                case 0x038 -> {
                    if (q != null && !q.ready) {
                        q.num = v;
                    }
                }
                case 0x044 -> queueReady(q, v);
                case 0x064 -> ack(v);
                case 0x070 -> onLoop = status(v);
                case 0x080 -> {
                    if (q != null) {
                        q.setAddress(0, false, v);
                    }
                }
                case 0x084 -> {
                    if (q != null) {
                        q.setAddress(0, true, v);
                    }
                }
                case 0x090 -> {
                    if (q != null) {
                        q.setAddress(1, false, v);
                    }
                }
                case 0x094 -> {
                    if (q != null) {
                        q.setAddress(1, true, v);
                    }
                }
                case 0x0a0 -> {
                    if (q != null) {
                        q.setAddress(2, false, v);
                    }
                }
                case 0x0a4 -> {
                    if (q != null) {
                        q.setAddress(2, true, v);
                    }
                }
                case 0x0c0 -> {
                    if (q != null && v == 1) {
                        LOG.debug("{}: queue reset of {} ignored (RING_RESET not offered)", name, q.index);
                    }
                }
                default -> LOG.debug("{}: write 0x{} to read-only or unknown register 0x{}", name,
                        Integer.toHexString(v), Long.toHexString(offset));
            }
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
            queues[q].kick.signal();
        }
    }

    private void queueReady(MmioQueue q, int v) {
        if (q == null) {
            return;
        }
        if (v == 0) {
            q.ready = false;
            q.ring = null;
            return;
        }
        if (q.ready) {
            return;
        }
        if (q.num < 1 || q.num > model.queueMaxSize() || Integer.bitCount(q.num) != 1) {
            fail("queue " + q.index + ": size " + q.num + " is not a power of two up to " + model.queueMaxSize());
            return;
        }
        try {
            q.ring = new SplitVirtqueue(memory, q.index, q.num, q.desc, q.avail, q.used, guestFeatures);
        } catch (VirtqueueError e) {
            fail("queue " + q.index + ": " + e.getMessage());
            return;
        }
        q.ready = true;
    }

    private void ack(int bits) {
        isr &= ~bits;
        if (isr == 0) {
            irq.lower();
        }
    }

    /** A Status write; returns what the model must do on the loop thread, or null. Holding the lock. */
    private Runnable status(int v) {
        if (v == 0) {
            return reset();
        }
        int added = v & ~status;
        if ((v & status) != status) {
            LOG.debug("{}: driver cleared status bits 0x{} without a reset; ignored", name,
                    Integer.toHexString(status & ~v));
        }
        if ((added & Virtio.STATUS_FEATURES_OK) != 0) {
            long wanted = Integer.toUnsignedLong(driverFeatureWords[0])
                    | Integer.toUnsignedLong(driverFeatureWords[1]) << 32;
            if ((wanted & ~hostFeatures) != 0 || !Virtio.has(wanted, Virtio.F_VERSION_1)) {
                LOG.info("{}: FEATURES_OK refused: driver features 0x{} ({}), offered 0x{}", name,
                        Long.toHexString(wanted), Virtio.has(wanted, Virtio.F_VERSION_1) ? "not offered"
                                : "VERSION_1 missing", Long.toHexString(hostFeatures));
                added &= ~Virtio.STATUS_FEATURES_OK;
            } else {
                guestFeatures = wanted;
            }
        }
        if ((added & Virtio.STATUS_DRIVER_OK) != 0 && ((status | added) & Virtio.STATUS_FEATURES_OK) == 0) {
            status |= added & ~Virtio.STATUS_DRIVER_OK;
            fail("DRIVER_OK without FEATURES_OK");
            return null;
        }
        status |= added;
        if ((added & Virtio.STATUS_DRIVER_OK) != 0 && brokenReason == null) {
            started = true;
            if (vmRunning) {
                return () -> model.start(context);
            }
        }
        return null;
    }

    /**
     * Status 0: back to the power-on state (spec 4.2.2.1); the driver starts over. The registers
     * reset now; the model drops its queue state on the loop thread before the write returns.
     */
    private Runnable reset() {
        status = 0;
        isr = 0;
        irq.lower();
        queueSel = 0;
        hostFeaturesSel = 0;
        guestFeaturesSel = 0;
        guestFeatures = 0;
        driverFeatureWords[0] = 0;
        driverFeatureWords[1] = 0;
        started = false;
        brokenReason = null;
        for (MmioQueue q : queues) {
            q.ready = false;
            q.ring = null;
            q.num = model.queueMaxSize();
            q.desc = 0;
            q.avail = 0;
            q.used = 0;
        }
        return model::reset;
    }

    /** QEMU's virtio_error: NEEDS_RESET, config interrupt, serve nothing more. Holding the lock. */
    private void fail(String reason) {
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
        if (closed) {
            return;
        }
        closed = true;
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
