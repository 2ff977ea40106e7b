package dev.ferry.vmm.bench;

import dev.ferry.core.device.SoftInterruptController;
import dev.ferry.core.machine.IoBus;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.QueueConfig;

import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The disk benchmark's guest driver: drives a virtio-mmio block device only as a guest can —
 * register reads and writes on the machine's MMIO bus, one split ring ({@link DriverQueue}) and
 * buffers in guest RAM, interrupts from the soft interrupt controller — issuing reads or writes
 * at the offsets a {@link DiskPattern} names with up to {@code depth} of them in flight, each one
 * descriptor chain of header, one data buffer and the status byte.
 *
 * <p>Completion is interrupt-driven, as in Linux's virtio_blk: the driver collects used elements,
 * refills the ring, and only when nothing has completed re-arms {@code used_event} (EVENT_IDX),
 * re-checks the ring and waits for the line, acknowledging InterruptStatus when it comes.
 *
 * <p>Guest RAM from {@code base}:
 * <pre>
 *   base + 0x00000  split ring, 256 entries (descriptors, avail, used)
 *   base + 0x10000  request headers: depth x 32 bytes { le32 type | le32 0 | le64 sector | u8 status }
 *   base + 0x20000  data buffers: depth x maxIoSize, contiguous per request
 * </pre>
 *
 * <p>Not thread-safe: one thread (the benchmark's, playing the vCPU) owns it.
 */
final class RingBlkDriver {
    // virtio-mmio registers (virtio 1.2, 4.2.2)
    private static final int MAGIC = 0x000;
    private static final int VERSION = 0x004;
    private static final int DEVICE_ID = 0x008;
    private static final int DEVICE_FEATURES = 0x010;
    private static final int DEVICE_FEATURES_SEL = 0x014;
    private static final int DRIVER_FEATURES = 0x020;
    private static final int DRIVER_FEATURES_SEL = 0x024;
    private static final int QUEUE_SEL = 0x030;
    private static final int QUEUE_NUM_MAX = 0x034;
    private static final int QUEUE_NUM = 0x038;
    private static final int QUEUE_READY = 0x044;
    private static final int QUEUE_NOTIFY = 0x050;
    private static final int INTERRUPT_STATUS = 0x060;
    private static final int INTERRUPT_ACK = 0x064;
    private static final int STATUS = 0x070;
    private static final int QUEUE_DESC = 0x080;
    private static final int QUEUE_DRIVER = 0x090;
    private static final int QUEUE_DEVICE = 0x0a0;

    private static final int QUEUE_SIZE = 256;
    private static final long HEADERS = 0x10000;
    private static final long BUFFERS = 0x20000;
    private static final int HEADER_STRIDE = 32;
    private static final int T_IN = 0;
    private static final int T_OUT = 1;
    private static final long WAIT_NANOS = TimeUnit.MILLISECONDS.toNanos(10);

    private final DeviceMemory mem;
    private final IoBus mmio;
    private final long regs;
    private final SoftInterruptController irqchip;
    private final int irqMask;
    private final long base;
    private final int depth;
    private final int maxIoSize;
    private DriverQueue queue;

    /** The request size the slots' chains are built for ({@link #chainsFor}). */
    private int ioSize;
    /** Per slot: its chains for a read and for a write (only the header changes per request). */
    private final List<DriverQueue.Buffer>[] readOut;
    private final List<DriverQueue.Buffer>[] readIn;
    private final List<DriverQueue.Buffer>[] writeOut;
    private final List<DriverQueue.Buffer>[] writeIn;
    private final int[] freeSlots;
    private int freeCount;
    private final int[] slotOfHead = new int[QUEUE_SIZE];
    private final long[] offsetOfSlot;

    private long kicks;
    private long interrupts;
    private long waitTimeouts;

    @SuppressWarnings("unchecked")
    RingBlkDriver(DeviceMemory memory, IoBus mmio, long regs, SoftInterruptController irqchip, int gsi, long base,
                  int depth, int maxIoSize) {
        if (depth < 1 || 3 * depth > QUEUE_SIZE) {
            throw new IllegalArgumentException("depth " + depth + " outside 1.." + QUEUE_SIZE / 3
                    + " (three descriptors per request)");
        }
        this.mem = memory;
        this.mmio = mmio;
        this.regs = regs;
        this.irqchip = irqchip;
        this.irqMask = 1 << gsi;
        this.base = base;
        this.depth = depth;
        this.maxIoSize = maxIoSize;
        if (!memory.isRam(base, areaBytes(depth, maxIoSize))) {
            throw new IllegalArgumentException("the driver's " + areaBytes(depth, maxIoSize) + " bytes at 0x"
                    + Long.toHexString(base) + " are not all guest RAM");
        }
        readOut = new List[depth];
        readIn = new List[depth];
        writeOut = new List[depth];
        writeIn = new List[depth];
        freeSlots = new int[depth];
        offsetOfSlot = new long[depth];
        for (int s = 0; s < depth; s++) {
            freeSlots[freeCount++] = s;
        }
    }

    /** Builds every slot's chains for requests of {@code size} bytes. */
    private void chainsFor(int size) {
        if (size <= 0 || size > maxIoSize || size % 512 != 0) {
            throw new IllegalArgumentException("request size " + size + " outside whole sectors up to " + maxIoSize);
        }
        for (int s = 0; s < depth; s++) {
            DriverQueue.Buffer header = new DriverQueue.Buffer(header(s), 16);
            DriverQueue.Buffer status = new DriverQueue.Buffer(header(s) + 16, 1);
            DriverQueue.Buffer data = new DriverQueue.Buffer(buffer(s), size);
            readOut[s] = List.of(header);
            readIn[s] = List.of(data, status);
            writeOut[s] = List.of(header, data);
            writeIn[s] = List.of(status);
        }
        ioSize = size;
    }

    /** Guest RAM the driver needs from its base. */
    static long areaBytes(int depth, int maxIoSize) {
        return BUFFERS + (long) depth * maxIoSize;
    }

    private long header(int slot) {
        return base + HEADERS + (long) slot * HEADER_STRIDE;
    }

    /** Where slot {@code slot}'s data buffer is in guest RAM. */
    long buffer(int slot) {
        return base + BUFFERS + (long) slot * maxIoSize;
    }

    /** Fills every data buffer with {@code seed}-derived bytes (what writes carry). */
    void fillBuffers(long seed) {
        long x = seed | 1;
        byte[] chunk = new byte[4096];
        for (long at = 0; at < (long) depth * maxIoSize; at += chunk.length) {
            for (int i = 0; i < chunk.length; i += 8) {
                x ^= x << 13;
                x ^= x >>> 7;
                x ^= x << 17;
                java.nio.ByteBuffer.wrap(chunk, i, 8).putLong(x);
            }
            mem.write(base + BUFFERS + at, chunk, 0, chunk.length);
        }
    }

    /** Resets the device, negotiates VERSION_1 and EVENT_IDX, sets up queue 0 and sets DRIVER_OK. */
    void boot() {
        if (mmio.read(regs + MAGIC, 4) != 0x74726976L || mmio.read(regs + VERSION, 4) != 2
                || mmio.read(regs + DEVICE_ID, 4) != Virtio.ID_BLOCK) {
            throw new IllegalStateException("no virtio-mmio v2 block device at 0x" + Long.toHexString(regs));
        }
        mmio.write(regs + STATUS, 4, 0);
        int st = Virtio.STATUS_ACKNOWLEDGE | Virtio.STATUS_DRIVER;
        mmio.write(regs + STATUS, 4, Virtio.STATUS_ACKNOWLEDGE);
        mmio.write(regs + STATUS, 4, st);
        long offered = 0;
        for (int sel = 0; sel < 2; sel++) {
            mmio.write(regs + DEVICE_FEATURES_SEL, 4, sel);
            offered |= (mmio.read(regs + DEVICE_FEATURES, 4) & 0xffffffffL) << (32 * sel);
        }
        long want = Virtio.bit(Virtio.F_VERSION_1) | Virtio.bit(Virtio.F_EVENT_IDX);
        if ((offered & want) != want) {
            throw new IllegalStateException("the disk offers features 0x" + Long.toHexString(offered)
                    + " without VERSION_1 and EVENT_IDX");
        }
        for (int sel = 0; sel < 2; sel++) {
            mmio.write(regs + DRIVER_FEATURES_SEL, 4, sel);
            mmio.write(regs + DRIVER_FEATURES, 4, want >>> (32 * sel) & 0xffffffffL);
        }
        st |= Virtio.STATUS_FEATURES_OK;
        mmio.write(regs + STATUS, 4, st);
        if ((mmio.read(regs + STATUS, 4) & Virtio.STATUS_FEATURES_OK) == 0) {
            throw new IllegalStateException("the disk refused features 0x" + Long.toHexString(want));
        }
        mmio.write(regs + QUEUE_SEL, 4, 0);
        if (mmio.read(regs + QUEUE_NUM_MAX, 4) < QUEUE_SIZE) {
            throw new IllegalStateException("the disk's queue holds fewer than " + QUEUE_SIZE + " entries");
        }
        QueueConfig qc = QueueConfig.contiguous(QUEUE_SIZE, base, QueueConfig.features(true, false));
        queue = DriverQueue.builder(mem, qc).build();
        mmio.write(regs + QUEUE_NUM, 4, QUEUE_SIZE);
        writeAddress(QUEUE_DESC, qc.descGpa());
        writeAddress(QUEUE_DRIVER, qc.availGpa());
        writeAddress(QUEUE_DEVICE, qc.usedGpa());
        mmio.write(regs + QUEUE_READY, 4, 1);
        mmio.write(regs + STATUS, 4, st | Virtio.STATUS_DRIVER_OK);
        if ((mmio.read(regs + STATUS, 4) & Virtio.STATUS_NEEDS_RESET) != 0) {
            throw new IllegalStateException("the disk needs a reset right after DRIVER_OK");
        }
    }

    private void writeAddress(int reg, long gpa) {
        mmio.write(regs + reg, 4, gpa & 0xffffffffL);
        mmio.write(regs + reg + 4, 4, gpa >>> 32);
    }

    /**
     * Issues requests {@code first .. first + count - 1} of {@code pattern} (reads, or writes of
     * the buffers' bytes) keeping up to {@code depth} in flight, and returns when all completed.
     *
     * @throws IllegalStateException when a request completes with a status other than OK
     */
    void run(DiskPattern pattern, long first, int count, boolean write) throws InterruptedException {
        if (pattern.ioSize() != ioSize) {
            chainsFor(pattern.ioSize());
        }
        long next = first;
        long end = first + count;
        int done = 0;
        while (done < count) {
            boolean added = false;
            while (next < end && freeCount > 0) {
                int s = freeSlots[--freeCount];
                long off = pattern.offset(next++);
                long h = header(s);
                mem.writeU32(h, write ? T_OUT : T_IN);
                mem.writeU32(h + 4, 0);
                mem.writeU64(h + 8, off / 512);
                mem.writeU8(h + 16, 0xff);
                offsetOfSlot[s] = off;
                int head = write ? queue.add(writeOut[s], writeIn[s], false) : queue.add(readOut[s], readIn[s], false);
                slotOfHead[head] = s;
                added = true;
            }
            if (added && queue.kickNeeded()) {
                mmio.write(regs + QUEUE_NOTIFY, 4, 0);
                kicks++;
            }
            int reaped = reap();
            done += reaped;
            if (reaped == 0 && done < count) {
                waitForInterrupt();
            }
        }
    }

    private int reap() {
        int n = 0;
        DriverQueue.Used u;
        while ((u = queue.pollUsed()) != null) {
            int s = slotOfHead[u.id()];
            int status = mem.readU8(header(s) + 16);
            if (status != 0) {
                throw new IllegalStateException("the disk completed the request at offset " + offsetOfSlot[s]
                        + " with status " + status);
            }
            freeSlots[freeCount++] = s;
            n++;
        }
        return n;
    }

    /** Linux's virtqueue_enable_cb then hlt: re-arm, re-check the ring, wait for the line, ack it. */
    private void waitForInterrupt() throws InterruptedException {
        if (queue.setInterruptsEnabled(true)) {
            return;
        }
        if (irqchip.await(irqMask, WAIT_NANOS, TimeUnit.NANOSECONDS) == 0) {
            waitTimeouts++; // polling the ring again and waiting on is all there is to do; the count reports it
            return;
        }
        int isr = (int) mmio.read(regs + INTERRUPT_STATUS, 4);
        mmio.write(regs + INTERRUPT_ACK, 4, isr);
        interrupts++;
        if ((isr & Virtio.ISR_CONFIG) != 0 && (mmio.read(regs + STATUS, 4) & Virtio.STATUS_NEEDS_RESET) != 0) {
            throw new IllegalStateException("the disk set NEEDS_RESET");
        }
    }

    long kicks() {
        return kicks;
    }

    long interrupts() {
        return interrupts;
    }

    /**
     * Waits for the line that lasted longer than 10 ms. A lost interrupt would show here; so does a
     * device thread that was not scheduled for that long (another busy process on the machine).
     */
    long waitTimeouts() {
        return waitTimeouts;
    }

    static {
        if (QueueConfig.contiguous(QUEUE_SIZE, 0, 0).contiguousBytes() > HEADERS) {
            throw new AssertionError("the ring overlaps the request headers");
        }
    }
}
