package dev.ferry.virtio.transport;

import dev.ferry.core.device.DeviceContext;
import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.device.DevicePlacement;
import dev.ferry.core.device.SoftInterruptController;
import dev.ferry.core.machine.Machine;
import dev.ferry.core.machine.RunState;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.migration.MigrationPriority;
import dev.ferry.migration.testing.IdleCpus;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioDeviceModel;
import dev.ferry.virtio.VirtioMmio;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.QueueConfig;
import dev.ferry.virtio.queue.SplitRing;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * One virtio-mmio device on a machine without vCPUs, and the test playing its guest driver the
 * only way a guest can: 32-bit register accesses on the MMIO bus, rings and buffers in guest RAM
 * ({@link DriverQueue}), the interrupt line on the soft interrupt controller. The device sits where
 * {@link DevicePlacement} puts the first config device, so a second machine built the same way
 * (a migration destination) has it at the same address and GSI.
 * <pre>
 *   0x010000 + q * 0x10000   queue q's rings (desc, avail, used; up to 1024 entries)
 *   0x100000                 indirect tables, {@link #INDIRECT_ENTRIES} per head
 *   0x400000 + k * 64        small buffers: request headers, status bytes ({@link #small})
 *   0x800000 + k * 64 KiB    data buffers ({@link #data})
 * </pre>
 * Waits are bounded (a failure says what did not happen); nothing asserts on elapsed time.
 */
public final class MmioGuest implements AutoCloseable {
    public static final long RAM = 16L << 20;
    public static final int INDIRECT_ENTRIES = 16;
    private static final long RINGS = 0x10000;
    private static final long INDIRECT = 0x100000;
    private static final long SMALL = 0x400000;
    private static final long DATA = 0x800000;
    private static final long WAIT_NANOS = TimeUnit.SECONDS.toNanos(10);

    /** Builds the device in the machine's placement context (the device kind's job on a real VMM). */
    @FunctionalInterface
    public interface DeviceFactory {
        VirtioMmioDevice create(DeviceContext context) throws Exception;
    }

    public final Machine machine;
    public final SoftInterruptController irqchip = new SoftInterruptController();
    public final VirtioMmioDevice device;
    public final VirtioMmio transport;
    public final DeviceMemory mem;
    public final long regs;
    public final int gsi;
    private long accepted;

    /** @param incoming a migration destination: the machine starts in {@code inmigrate} */
    public MmioGuest(String name, boolean incoming, DeviceFactory factory) throws Exception {
        machine = new Machine(name, GuestMemory.ofSize(RAM), new IdleCpus(), incoming ? RunState.INMIGRATE
                : RunState.PRELAUNCH);
        try {
            machine.attachInterruptController(irqchip);
            machine.migration().registerVmState(SoftInterruptController.IDSTR, 0, SoftInterruptController.VMSTATE,
                    irqchip, MigrationPriority.DEVICE);
            DevicePlacement placement = new DevicePlacement(machine, incoming, (dev, state, event, data) -> {
            });
            device = factory.create(placement.contextFor("dev0"));
            machine.addDevice(device);
        } catch (Exception | Error e) {
            machine.close();
            throw e;
        }
        transport = device.transport();
        mem = machine.deviceMemory();
        regs = transport.base();
        gsi = transport.irq().gsi();
    }

    /** A started machine with {@code model} on it. */
    public static MmioGuest running(String name, VirtioDeviceModel model) throws Exception {
        MmioGuest g = new MmioGuest(name, false, c -> VirtioMmioDevice.attach(c, model.name(), model));
        g.machine.vmStart();
        return g;
    }

    // ---- registers ----

    public long read(int offset) {
        return machine.mmio().read(regs + offset, 4);
    }

    public long read(int offset, int size) {
        return machine.mmio().read(regs + offset, size);
    }

    public void write(int offset, long value) {
        machine.mmio().write(regs + offset, 4, value);
    }

    public void write(int offset, int size, long value) {
        machine.mmio().write(regs + offset, size, value);
    }

    public int status() {
        return (int) read(0x070);
    }

    public long deviceFeatures() {
        write(0x014, 0);
        long lo = read(0x010);
        write(0x014, 1);
        return lo | read(0x010) << 32;
    }

    /** Reset, ACKNOWLEDGE, DRIVER, DriverFeatures, FEATURES_OK; true when FEATURES_OK reads back set. */
    public boolean negotiate(long features) {
        write(0x070, 0);
        write(0x070, Virtio.STATUS_ACKNOWLEDGE);
        write(0x070, Virtio.STATUS_ACKNOWLEDGE | Virtio.STATUS_DRIVER);
        writeDriverFeatures(features);
        write(0x070, Virtio.STATUS_ACKNOWLEDGE | Virtio.STATUS_DRIVER | Virtio.STATUS_FEATURES_OK);
        accepted = features;
        return (status() & Virtio.STATUS_FEATURES_OK) != 0;
    }

    public void writeDriverFeatures(long features) {
        for (int sel = 0; sel < 2; sel++) {
            write(0x024, sel);
            write(0x020, features >>> (32 * sel) & 0xffffffffL);
        }
    }

    /** Where queue {@code q}'s rings go for a queue of {@code size} entries. */
    public static QueueConfig layout(int q, int size, long features) {
        return QueueConfig.contiguous(size, RINGS + q * 0x10000L, features);
    }

    /** Writes queue {@code q}'s registers, lays its rings out in RAM and sets QueueReady. */
    public DriverQueue setupQueue(int q, int size) {
        QueueConfig c = layout(q, size, accepted);
        DriverQueue.Builder b = DriverQueue.builder(mem, c);
        if (c.indirectDesc()) {
            b.indirectPool(INDIRECT + q * (long) size * INDIRECT_ENTRIES * SplitRing.DESC_SIZE, INDIRECT_ENTRIES);
        }
        DriverQueue dq = b.build();
        write(0x030, q);
        write(0x038, size);
        writeQueueAddresses(c.descGpa(), c.availGpa(), c.usedGpa());
        write(0x044, 1);
        return dq;
    }

    public void writeQueueAddresses(long desc, long avail, long used) {
        write(0x080, desc & 0xffffffffL);
        write(0x084, desc >>> 32);
        write(0x090, avail & 0xffffffffL);
        write(0x094, avail >>> 32);
        write(0x0a0, used & 0xffffffffL);
        write(0x0a4, used >>> 32);
    }

    public void driverOk() {
        write(0x070, status() | Virtio.STATUS_DRIVER_OK);
    }

    /** The usual bring-up: features, queue 0 of {@code size}, DRIVER_OK. */
    public DriverQueue bringUp(long features, int size) {
        if (!negotiate(features)) {
            throw new AssertionError("FEATURES_OK refused for 0x" + Long.toHexString(features));
        }
        DriverQueue q = setupQueue(0, size);
        driverOk();
        return q;
    }

    public void kick(int q) {
        write(0x050, q);
    }

    /** Register values a driver can read, per queue too: for "nothing changed" comparisons. */
    public Map<String, Long> registerSnapshot(int queues) {
        Map<String, Long> m = new LinkedHashMap<>();
        for (int off : new int[] {0x000, 0x004, 0x008, 0x00c, 0x060, 0x070, 0x0b0, 0x0b4, 0x0fc}) {
            m.put(String.format("0x%03x", off), read(off));
        }
        for (int sel = 0; sel < 2; sel++) {
            write(0x014, sel);
            m.put("features" + sel, read(0x010));
        }
        for (int q = 0; q < queues; q++) {
            write(0x030, q);
            for (int off : new int[] {0x034, 0x038, 0x044, 0x080, 0x084, 0x090, 0x094, 0x0a0, 0x0a4}) {
                m.put(String.format("q%d.0x%03x", q, off), read(off));
            }
        }
        return m;
    }

    // ---- guest RAM ----

    /** Small buffer {@code k} (64 bytes). */
    public static long small(int k) {
        return SMALL + 64L * k;
    }

    /** Data buffer {@code k} (64 KiB). */
    public static long data(int k) {
        return DATA + 0x10000L * k;
    }

    public static DriverQueue.Buffer buf(long gpa, long len) {
        return new DriverQueue.Buffer(gpa, len);
    }

    public void writeBytes(long gpa, byte[] b) {
        mem.write(gpa, b, 0, b.length);
    }

    public byte[] readBytes(long gpa, int len) {
        byte[] b = new byte[len];
        mem.read(gpa, b, 0, len);
        return b;
    }

    public long ramDigest() {
        return machine.memory().digest();
    }

    // ---- waiting (bounded) ----

    /** The next used element of {@code q}; fails after 10 s without one. */
    public DriverQueue.Used awaitUsed(DriverQueue q) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT_NANOS;
        DriverQueue.Used u;
        while ((u = q.pollUsed()) == null) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("no used element on " + q.config() + "; device " + describe());
            }
            Thread.sleep(1);
        }
        return u;
    }

    /** Waits until Status has every bit of {@code bits}; fails after 10 s. */
    public void awaitStatus(int bits) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT_NANOS;
        while ((status() & bits) != bits) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("status 0x" + Integer.toHexString(status()) + " never got 0x"
                        + Integer.toHexString(bits) + "; device " + describe());
            }
            Thread.sleep(1);
        }
    }

    /** Waits for the device's interrupt line; fails after 10 s. */
    public void awaitInterrupt() throws InterruptedException {
        if (irqchip.await(1 << gsi, 10, TimeUnit.SECONDS) == 0) {
            throw new AssertionError("GSI " + gsi + " never raised; device " + describe());
        }
    }

    public boolean lineRaised() {
        return (irqchip.pendingMask() & 1 << gsi) != 0;
    }

    /**
     * Returns once the device loop has been through every doorbell rung before this call: a task
     * queues a second one, and between the two the loop polls its fds (a kick signalled before
     * the first task is ready by then). Only meaningful while the VM runs.
     */
    public void settle() throws InterruptedException {
        DeviceEventLoop loop = machine.eventLoop();
        CountDownLatch done = new CountDownLatch(1);
        loop.call(() -> {
            loop.execute(done::countDown);
            return null;
        });
        if (!done.await(10, TimeUnit.SECONDS)) {
            throw new AssertionError("the device loop did not settle");
        }
    }

    public Map<String, Object> describe() {
        Map<String, Object> m = new LinkedHashMap<>();
        device.describe(m);
        return m;
    }

    @Override
    public void close() {
        machine.close();
    }
}
