package dev.ferry.vfio.emulated;

import dev.ferry.core.machine.BusDevice;
import dev.ferry.core.memory.MemoryDigest;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.DmaSpace;

import static dev.ferry.vfio.emulated.NicRegisters.*;

/**
 * An emulated SR-IOV NIC VF: the stand-in for a passed-through network function, and the
 * reference a vendor's device is measured against. The guest (or {@link NicDriver}, which plays
 * the guest's VF driver) programs it through its BAR0 registers ({@link #bar0()}, layout in
 * {@link NicRegisters}) and guest memory: RX/TX descriptor rings, and a mailbox through which the
 * device learns its MAC, its MAC/VLAN filter tables and an RSS key that no register shows.
 *
 * <p>While RX is enabled and the device runs, a data-plane thread delivers frames from a
 * deterministic {@link NicWire} (seeded per VF) at {@link EmulatedVfSpec#packetRate()} frames a
 * second: frames that pass the filter are written by DMA into the next RX buffer, followed by the
 * descriptor's write-back (length, status with VLAN and RSS hash, sequence number, digest). When
 * the ring is full the frame is dropped and counted, unless AUTO_RECYCLE is set: then the device
 * reuses the ring's buffers in a circle, so DMA keeps flowing with no driver consuming buffers.
 * TX descriptors are consumed when the driver moves TX_TAIL, and looped back to RX with LOOPBACK.
 *
 * <p>Everything besides the bulk state memory — registers, counters, filter, the wire's seed and
 * position — is the control state ({@link NicState}, versioned and validated), so a destination
 * VF continues the wire exactly where the source stopped.
 *
 * <h2>Threads</h2>
 * MMIO arrives on vCPU threads, the uAPI on the VMM's, frames on the data-plane thread; all take
 * the device lock, and every guest-memory write is a logged DMA under it. A stopped device (any
 * non-running VFIO state) therefore does no DMA the moment {@code stopDataPlane} returns, and it
 * drops register writes (counted in {@link #droppedMmioWrites()}).
 */
public class EmulatedNicVf extends EmulatedVfioDevice {
    /** Frames delivered at most per data-plane round, so the lock is never held for long. */
    private static final int MAX_BATCH = 256;

    private final int vfIndex;
    private final NicState st = new NicState();
    private final Mapping frame = Mapping.anonymous(MAX_BUF_SIZE);
    private final BusDevice bar0 = new Bar0();
    private final Thread dataPlane;
    private NicWire wire;
    private boolean shutdown;
    private long paceStart = -1;
    private long paced;
    private long droppedMmioWrites;
    private long badMmioAccesses;
    private volatile Throwable dataPlaneFailure;

    public EmulatedNicVf(String name, EmulatedVfSpec spec, DmaSpace dma) {
        this(name, 0, spec, dma);
    }

    /** VF {@code vfIndex} of a PF; the index seeds the VF's wire. */
    public EmulatedNicVf(String name, int vfIndex, EmulatedVfSpec spec, DmaSpace dma) {
        super(name, spec, dma);
        this.vfIndex = vfIndex;
        st.wireSeed = NicWire.seedFor(spec.seed(), vfIndex);
        wire = new NicWire(st.wireSeed);
        if (spec.packetRate() > 0) {
            dataPlane = new Thread(this::dataPlaneLoop, "vfio-" + name + "-wire");
            dataPlane.setDaemon(true);
            dataPlane.start();
        } else {
            dataPlane = null;
        }
    }

    /** The register window the VMM maps on its MMIO bus, {@link NicRegisters#BAR0_SIZE} bytes. */
    public BusDevice bar0() {
        return bar0;
    }

    public int vfIndex() {
        return vfIndex;
    }

    // ------------------------------------------------------------------------------------------
    // Observation

    public long wireSeed() {
        synchronized (lock) {
            return st.wireSeed;
        }
    }

    /** The sequence number of the next frame on the wire. */
    public long wirePosition() {
        synchronized (lock) {
            return st.wirePosition;
        }
    }

    /** What the mailbox programmed; no register shows it. */
    public NicFilter filter() {
        synchronized (lock) {
            return st.filter;
        }
    }

    /** A counter by its register offset ({@link NicRegisters#RX_PACKETS} .. {@link NicRegisters#DMA_FAULTS}). */
    public long counter(int offset) {
        synchronized (lock) {
            return st.counters[counterIndex(offset)];
        }
    }

    public long droppedMmioWrites() {
        synchronized (lock) {
            return droppedMmioWrites;
        }
    }

    public long badMmioAccesses() {
        synchronized (lock) {
            return badMmioAccesses;
        }
    }

    /** Whatever stopped the data-plane thread other than close; null while it is healthy. */
    public Throwable dataPlaneFailure() {
        return dataPlaneFailure;
    }

    private static int counterIndex(int offset) {
        int i = (offset - RX_PACKETS) / 8;
        if (offset % 8 != 0 || i < 0 || i >= COUNTERS) {
            throw new IllegalArgumentException("no counter at 0x" + Integer.toHexString(offset));
        }
        return i;
    }

    // ------------------------------------------------------------------------------------------
    // Registers

    private final class Bar0 implements BusDevice {
        @Override
        public long read(long offset, int size) {
            synchronized (lock) {
                if (!validAccess(offset, size)) {
                    badMmioAccesses++;
                    return size >= 8 ? -1L : (1L << (size * 8)) - 1;
                }
                long lo = readRegister((int) offset) & 0xFFFF_FFFFL;
                return size == 8 ? lo | (long) readRegister((int) offset + 4) << 32 : lo;
            }
        }

        @Override
        public void write(long offset, int size, long value) {
            synchronized (lock) {
                if (!validAccess(offset, size)) {
                    badMmioAccesses++;
                    return;
                }
                if (!dataPlaneRunning()) {
                    droppedMmioWrites++;
                    return;
                }
                writeRegister((int) offset, (int) value);
                if (size == 8) {
                    writeRegister((int) offset + 4, (int) (value >>> 32));
                }
            }
        }
    }

    private static boolean validAccess(long offset, int size) {
        return (size == 4 || size == 8) && offset >= 0 && offset + size <= BAR0_SIZE && (offset & (size - 1)) == 0;
    }

    private int readRegister(int off) {
        if (off >= RX_PACKETS && off < RX_PACKETS + 8 * COUNTERS) {
            long c = st.counters[(off - RX_PACKETS) / 8];
            return (int) (off % 8 == 0 ? c : c >>> 32);
        }
        return switch (off) {
            case ID -> ID_VALUE;
            case VERSION -> VERSION_VALUE;
            case CTRL -> st.ctrl;
            case STATUS -> status();
            case ICR -> st.icr;
            case IMR -> st.imr;
            case RX_BASE -> (int) st.rxBase;
            case RX_BASE + 4 -> (int) (st.rxBase >>> 32);
            case RX_SIZE -> st.rxSize;
            case RX_HEAD -> st.rxHead;
            case RX_TAIL -> st.rxTail;
            case RX_BUF_SIZE -> st.rxBufSize;
            case TX_BASE -> (int) st.txBase;
            case TX_BASE + 4 -> (int) (st.txBase >>> 32);
            case TX_SIZE -> st.txSize;
            case TX_HEAD -> st.txHead;
            case TX_TAIL -> st.txTail;
            case MBX_ADDR -> (int) st.mbxAddr;
            case MBX_ADDR + 4 -> (int) (st.mbxAddr >>> 32);
            case MBX_STATUS -> st.mbxStatus;
            default -> 0;
        };
    }

    private int status() {
        int s = STATUS_LINK_UP;
        if ((st.ctrl & CTRL_RX_EN) != 0 && dataPlaneRunning()) {
            s |= STATUS_RX_ACTIVE;
        }
        if ((st.ctrl & CTRL_TX_EN) != 0 && dataPlaneRunning()) {
            s |= STATUS_TX_ACTIVE;
        }
        if (st.filter.mac() != 0) {
            s |= STATUS_MAC_SET;
        }
        return st.ringError ? s | STATUS_RING_ERROR : s;
    }

    private boolean rxOn() {
        return (st.ctrl & CTRL_RX_EN) != 0;
    }

    private boolean txOn() {
        return (st.ctrl & CTRL_TX_EN) != 0;
    }

    private void writeRegister(int off, int v) {
        long u = v & 0xFFFF_FFFFL;
        switch (off) {
            case CTRL -> writeCtrl(v);
            case ICR -> st.icr &= ~v;
            case IMR -> st.imr = v & ICR_ALL;
            case RX_BASE -> {
                if (!rxOn()) {
                    st.rxBase = (st.rxBase & ~0xFFFF_FFFFL) | u;
                }
            }
            case RX_BASE + 4 -> {
                if (!rxOn()) {
                    st.rxBase = (st.rxBase & 0xFFFF_FFFFL) | u << 32;
                }
            }
            case RX_SIZE -> {
                if (!rxOn()) {
                    st.rxSize = v;
                    st.rxHead = 0;
                    st.rxTail = 0;
                }
            }
            case RX_TAIL -> {
                if (validRingSize(st.rxSize) && u < st.rxSize) {
                    st.rxTail = v;
                } else {
                    st.ringError = true;
                }
            }
            case RX_BUF_SIZE -> {
                if (!rxOn()) {
                    st.rxBufSize = v;
                }
            }
            case TX_BASE -> {
                if (!txOn()) {
                    st.txBase = (st.txBase & ~0xFFFF_FFFFL) | u;
                }
            }
            case TX_BASE + 4 -> {
                if (!txOn()) {
                    st.txBase = (st.txBase & 0xFFFF_FFFFL) | u << 32;
                }
            }
            case TX_SIZE -> {
                if (!txOn()) {
                    st.txSize = v;
                    st.txHead = 0;
                    st.txTail = 0;
                }
            }
            case TX_TAIL -> {
                if (validRingSize(st.txSize) && u < st.txSize) {
                    st.txTail = v;
                    transmit();
                } else {
                    st.ringError = true;
                }
            }
            case MBX_ADDR -> st.mbxAddr = (st.mbxAddr & ~0xFFFF_FFFFL) | u;
            case MBX_ADDR + 4 -> st.mbxAddr = (st.mbxAddr & 0xFFFF_FFFFL) | u << 32;
            case MBX_DOORBELL -> mailbox(v);
            default -> {
                // read-only or unassigned: ignored, as hardware does
            }
        }
    }

    private void writeCtrl(int v) {
        if ((v & CTRL_RESET) != 0) {
            st.resetGuestVisible();
            paceStart = -1;
            return;
        }
        int next = v & CTRL_KEPT;
        if ((next & CTRL_RX_EN) != 0 && !rxOn() && !ringUsable(st.rxBase, st.rxSize)
                || (next & CTRL_RX_EN) != 0 && (st.rxBufSize < MAX_FRAME || st.rxBufSize > MAX_BUF_SIZE)) {
            next &= ~CTRL_RX_EN;
            st.ringError = true;
        }
        if ((next & CTRL_TX_EN) != 0 && !txOn() && !ringUsable(st.txBase, st.txSize)) {
            next &= ~CTRL_TX_EN;
            st.ringError = true;
        }
        boolean rxStarts = (next & CTRL_RX_EN) != 0 && !rxOn();
        st.ctrl = next;
        if (rxStarts) {
            paceStart = -1;
            lock.notifyAll();
        }
        if (txOn()) {
            transmit();
        }
    }

    private boolean ringUsable(long base, int size) {
        if (!validRingSize(size) || base % DESC_SIZE != 0) {
            return false;
        }
        try {
            dma.hostAddress(base, (long) size * DESC_SIZE);
            return true;
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    // ------------------------------------------------------------------------------------------
    // Mailbox

    private void mailbox(int length) {
        int count = ((st.mbxStatus >>> 16) + 1) & 0xFFFF;
        int error = applyMessage(length);
        st.mbxStatus = (error == 0 ? MBX_DONE : MBX_ERROR | error << 8) | count << 16;
        st.icr |= ICR_MAILBOX;
    }

    /** Reads the message by DMA and applies it; returns 0 or a mailbox error code. */
    private int applyMessage(int length) {
        if (length < 8 || length > MBX_MAX) {
            return MBX_ERR_LENGTH;
        }
        long m = frame.address();
        try {
            dmaRead(st.mbxAddr, m, length);
        } catch (IllegalArgumentException e) {
            st.counters[counterIndex(DMA_FAULTS)]++;
            st.icr |= ICR_DMA_FAULT;
            return MBX_ERR_DMA;
        }
        NicMailbox.Outcome outcome = NicMailbox.apply(st.filter, m, length);
        st.filter = outcome.filter();
        return outcome.error();
    }

    // ------------------------------------------------------------------------------------------
    // Data plane

    private void dataPlaneLoop() {
        try {
            while (true) {
                synchronized (lock) {
                    while (!shutdown && !(dataPlaneRunning() && rxOn())) {
                        paceStart = -1;
                        lock.wait();
                    }
                    if (shutdown) {
                        return;
                    }
                    long now = System.nanoTime();
                    if (paceStart < 0) {
                        paceStart = now;
                        paced = 0;
                    }
                    long owed = (long) ((now - paceStart) * 1e-9 * spec.packetRate()) - paced;
                    if (owed > 4L * MAX_BATCH) {
                        // far behind (a long pause, a slow host): start over instead of bursting
                        paceStart = now;
                        paced = 0;
                        owed = MAX_BATCH;
                    }
                    for (long i = 0; i < Math.min(owed, MAX_BATCH); i++) {
                        receiveFromWire();
                    }
                    paced += Math.max(0, Math.min(owed, MAX_BATCH));
                }
                Thread.sleep(1);
            }
        } catch (InterruptedException e) {
            // closing
        } catch (Throwable t) {
            dataPlaneFailure = t;
        }
    }

    /** The next frame on the wire: filtered, or delivered to the RX ring. Lock held, RX on, running. */
    private void receiveFromWire() {
        long seq = st.wirePosition++;
        int vlan = wire.vlan(seq);
        if (!st.filter.accepts(wire.destination(seq), vlan, (st.ctrl & CTRL_PROMISC) != 0)) {
            st.counters[counterIndex(RX_FILTERED)]++;
            return;
        }
        int len = wire.frame(seq, frame.address());
        receive(seq, len, vlan == 0 ? 0 : DESC_VLAN | vlan << 4);
    }

    /** Writes the frame in the scratch buffer into the next RX buffer and its descriptor. */
    private void receive(long seq, int len, int flags) {
        if ((st.ctrl & CTRL_AUTO_RECYCLE) == 0 && st.rxHead == st.rxTail) {
            st.counters[counterIndex(RX_DROPS)]++;
            st.icr |= ICR_RX_DROP;
            return;
        }
        long desc = st.rxBase + (long) st.rxHead * DESC_SIZE;
        try {
            long buffer = dmaGetLong(desc);
            dmaWrite(buffer, frame.address(), len);
            int status = DESC_DD | flags | st.filter.rssHash(frame.address(), len) << 16;
            dmaPutInt(desc + 8, len);
            dmaPutInt(desc + 12, status);
            dmaPutLong(desc + 16, seq);
            dmaPutLong(desc + 24, ContentDigest.of(frame.address(), len));
        } catch (IllegalArgumentException iommuFault) {
            st.counters[counterIndex(DMA_FAULTS)]++;
            st.counters[counterIndex(RX_DROPS)]++;
            st.icr |= ICR_DMA_FAULT;
            return;
        }
        st.rxHead = (st.rxHead + 1) & (st.rxSize - 1);
        st.counters[counterIndex(RX_PACKETS)]++;
        st.counters[counterIndex(RX_BYTES)] += len;
        st.icr |= ICR_RX;
    }

    /** Sends the TX descriptors the driver posted; loops them back to RX with LOOPBACK. */
    private void transmit() {
        if (!txOn() || !dataPlaneRunning()) {
            return;
        }
        while (st.txHead != st.txTail) {
            long desc = st.txBase + (long) st.txHead * DESC_SIZE;
            st.txHead = (st.txHead + 1) & (st.txSize - 1);
            try {
                long buffer = dmaGetLong(desc);
                int len = dmaGetInt(desc + 8);
                if (len < MIN_FRAME || len > MAX_FRAME) {
                    dmaPutInt(desc + 12, DESC_DD | DESC_TX_ERROR);
                    continue;
                }
                dmaRead(buffer, frame.address(), len);
                long number = st.counters[counterIndex(TX_PACKETS)]++;
                st.counters[counterIndex(TX_BYTES)] += len;
                dmaPutInt(desc + 12, DESC_DD);
                if ((st.ctrl & CTRL_LOOPBACK) != 0 && rxOn()) {
                    receive(number, len, DESC_LOOPBACK);
                }
            } catch (IllegalArgumentException iommuFault) {
                st.counters[counterIndex(DMA_FAULTS)]++;
                st.icr |= ICR_DMA_FAULT;
            }
        }
        st.icr |= ICR_TX;
    }

    /**
     * The deterministic workload: the base's churn steps and, while RX is enabled, as many frames
     * from the wire, on the caller's thread.
     */
    @Override
    public void advance(int steps) {
        synchronized (lock) {
            super.advance(steps);
            if (rxOn()) {
                for (int i = 0; i < steps; i++) {
                    receiveFromWire();
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // Hooks of the base device

    @Override
    protected void stopDataPlane() {
        paceStart = -1; // every DMA happens under the lock and checks dataPlaneRunning(): none follows
    }

    @Override
    protected void startDataPlane() {
        paceStart = -1;
        transmit();
    }

    @Override
    protected void onReset() {
        st.resetGuestVisible();
        paceStart = -1;
    }

    @Override
    protected void onClose() {
        synchronized (lock) {
            shutdown = true;
            lock.notifyAll();
        }
        if (dataPlane != null) {
            dataPlane.interrupt();
            try {
                dataPlane.join(5000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        frame.close();
    }

    @Override
    protected byte[] saveDeviceControl() {
        return st.encode();
    }

    @Override
    protected void checkDeviceControl(byte[] data) {
        NicState.decode(data);
    }

    @Override
    protected void loadDeviceControl(byte[] data) {
        st.copyFrom(NicState.decode(data));
        wire = new NicWire(st.wireSeed);
        paceStart = -1;
    }

    @Override
    protected long deviceDigest() {
        byte[] b = st.encode();
        long h = b.length;
        for (int i = 0; i < b.length; i++) {
            h = MemoryDigest.combine(h, b[i]);
        }
        return h;
    }
}
