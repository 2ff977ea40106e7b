package dev.ferry.vfio.emulated;

import dev.ferry.core.memory.MemoryDigest;
import dev.ferry.core.sys.Errno;
import dev.ferry.vfio.device.DmaSpace;
import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.fsm.MigCapabilities;
import dev.ferry.vfio.fsm.RefusedStateRequestException;
import dev.ferry.vfio.fsm.VfioMigrationFsm;
import dev.ferry.vfio.uapi.VfioDeviceState;

import java.util.List;
import java.util.Map;

import static dev.ferry.vfio.uapi.VfioDeviceState.ERROR;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;

/**
 * An emulated VFIO device that keeps the kernel's migration contract the way a real driver plus
 * {@code vfio_main.c} do: the arc table and skip rule (refusing what the kernel refuses), one data
 * fd per saving group or resume, ENOMSG in PRE_COPY and EOF at the end of STOP_COPY, PRECOPY_INFO
 * only in PRE_COPY*, validation of resumed data at RESUMING→STOP, ERROR left only by reset, DMA
 * logging with read-and-clear reports.
 *
 * <p>Its internal state is a block of device memory ({@link EmulatedVfSpec#stateBytes()}, off-heap)
 * that a churn thread changes at {@link EmulatedVfSpec#dirtyRate()} while the device runs, plus a
 * small control state (the churn generator, and whatever a subclass adds — the NIC's registers,
 * rings, mailbox tables). Pre-copy offers {@link EmulatedVfSpec#initialBytes()} of the memory as
 * initial data and re-sends chunks the device changed after sending them; STOP_COPY sends the rest.
 *
 * <h2>Data format (the device's own, opaque to the VMM)</h2>
 * A sequence of records: {@code be32 tag, be32 index, be32 length, payload[length], be64 digest}.
 * Tag 0 header (payload: be32 magic "FRVF", be32 version, be64 state bytes, be32 chunk size,
 * be32 0), tag 1 a 64 KiB chunk of state memory (index = chunk number), tag 2 the control state,
 * tag 3 the end (index = number of chunk records). The digest covers the record's head and its
 * payload (exactly {@code length} bytes), so a changed index or length is caught like a changed
 * payload byte. A resumed image is applied only when it is complete and every digest matches.
 *
 * <p>This class is the uAPI and the hooks a subclass implements; the roles behind it are
 * package-private: {@code MigrationRegion} performs the arcs and owns the data fds,
 * {@link SaveSession} and {@link ResumeSession} write and read the records, {@code DeviceChurn}
 * changes the state, {@code DeviceDma} does and logs the DMA, {@code StateTimeline} keeps the
 * statistics.
 *
 * <h2>Threads</h2>
 * Every call is serialized on the device lock; the churn thread and a subclass's data plane take
 * the same lock for each change, so a stopped device changes nothing.
 */
public class EmulatedVfioDevice implements VfioDevice {
    public static final int CHUNK = 64 << 10;
    static final int MAGIC = 0x46525646; // "FRVF"
    static final int MAX_RANGES = 256;
    static final int DMA_PAGE = 4096;

    protected final String name;
    protected final EmulatedVfSpec spec;
    protected final DmaSpace dma;
    /** Serializes every state change, data-fd call, churn step and DMA of this device. */
    protected final Object lock = new Object();

    /** The bulk internal state and what a saving session still owes of it. */
    final StateMemory memory;

    VfioDeviceState state = RUNNING;
    private VfioDeviceState readback = RUNNING;
    boolean closed;
    boolean dataPlaneRunning;
    private int resets;
    long savedBytes;
    long loadedBytes;

    /** Data fds and arcs of the migration region. */
    final MigrationRegion region = new MigrationRegion(this);
    /** The churn generator: part of the control state. */
    final DeviceChurn churn;
    /** Every DMA of the device, and its DMA log. */
    private final DeviceDma dmaPort;
    /** States entered and time spent, for tests and reports. */
    final StateTimeline timeline = new StateTimeline(RUNNING);

    public EmulatedVfioDevice(String name, EmulatedVfSpec spec, DmaSpace dma) {
        this.name = name;
        this.spec = spec;
        this.dma = dma;
        this.memory = new StateMemory(spec);
        this.dmaPort = new DeviceDma(this, dma);
        this.churn = new DeviceChurn(this);
        memory.fill(spec.seed());
        this.dataPlaneRunning = true;
        churn.start();
    }

    // ------------------------------------------------------------------------------------------
    // The uAPI

    @Override
    public String name() {
        return name;
    }

    public EmulatedVfSpec spec() {
        return spec;
    }

    @Override
    public MigCapabilities migrationFlags() throws VfioException {
        synchronized (lock) {
            checkMigration("GET MIGRATION");
            return spec.capabilities();
        }
    }

    @Override
    public VfioDeviceState deviceState() throws VfioException {
        synchronized (lock) {
            checkMigration("GET MIG_DEVICE_STATE");
            return spec.has(FaultKind.BAD_READBACK) ? readback : state;
        }
    }

    @Override
    public VfioDataFd setDeviceState(VfioDeviceState target) throws VfioException {
        synchronized (lock) {
            String op = "SET MIG_DEVICE_STATE " + state + "->" + target;
            checkMigration(op);
            if (target == state && target != ERROR) {
                return null;
            }
            List<VfioDeviceState> path;
            try {
                path = VfioMigrationFsm.path(state, target, spec.capabilities());
            } catch (RefusedStateRequestException e) {
                throw new VfioException(op, Errno.EINVAL, e.getMessage());
            }
            VfioDeviceState before = state;
            VfioDataFd opened = null;
            try {
                for (VfioDeviceState next : path) {
                    if (opened != null) {
                        // the kernel WARNs: an arc that opens a data fd must be the last one
                        throw new IllegalStateException("arc table opened a data fd before " + next);
                    }
                    opened = region.step(next);
                }
            } catch (VfioException e) {
                if (opened != null) {
                    opened.close();
                }
                throw new VfioException(op, e.errno(), e.getMessage(), e);
            } finally {
                readback = spec.has(FaultKind.BAD_READBACK) ? before : state;
            }
            return opened;
        }
    }

    @Override
    public long stopCopyLength() throws VfioException {
        synchronized (lock) {
            checkMigration("GET MIG_DATA_SIZE");
            return region.stopCopyLength();
        }
    }

    @Override
    public boolean dmaLoggingSupported() {
        return spec.dmaLogging();
    }

    @Override
    public void dmaLoggingStart(long pageSize, List<IovaRange> ranges) throws VfioException {
        synchronized (lock) {
            String op = "SET DMA_LOGGING_START";
            checkDmaLogging(op);
            dmaPort.startLogging(op, pageSize, ranges);
        }
    }

    @Override
    public void dmaLoggingStop() throws VfioException {
        synchronized (lock) {
            checkDmaLogging("SET DMA_LOGGING_STOP");
            dmaPort.stopLogging();
        }
    }

    @Override
    public void dmaLoggingReport(long iova, long length, long pageSize, long bitmapAddress) throws VfioException {
        synchronized (lock) {
            String op = "GET DMA_LOGGING_REPORT";
            checkDmaLogging(op);
            dmaPort.report(op, iova, length, pageSize, bitmapAddress, !spec.has(FaultKind.LOG_NO_CLEAR));
        }
    }

    @Override
    public void reset() throws VfioException {
        synchronized (lock) {
            checkOpen("VFIO_DEVICE_RESET");
            if (spec.has(FaultKind.FAIL_RESET)) {
                throw new VfioException("VFIO_DEVICE_RESET", Errno.EIO, "injected fault: fail-reset");
            }
            region.endSessions();
            if (dataPlaneRunning) {
                stopDataPlaneLocked();
            }
            memory.fill(spec.seed());
            churn.reset();
            onReset();
            resets++;
            enter(RUNNING);
            readback = RUNNING;
            startDataPlaneLocked();
        }
    }

    @Override
    public void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
            region.endSessions();
            if (dataPlaneRunning) {
                stopDataPlaneLocked();
            }
            dmaPort.stopLogging();
            lock.notifyAll();
        }
        churn.stop();
        onClose();
        synchronized (lock) {
            memory.close();
        }
    }

    // ------------------------------------------------------------------------------------------
    // The arcs (MigrationRegion) change the state through these; lock held

    void enter(VfioDeviceState s) {
        timeline.entered(state, s);
        state = s;
    }

    void stopDataPlaneLocked() {
        dataPlaneRunning = false;
        stopDataPlane();
    }

    void startDataPlaneLocked() {
        dataPlaneRunning = true;
        startDataPlane();
        lock.notifyAll();
    }

    private void checkOpen(String op) throws VfioException {
        if (closed) {
            throw new VfioException(op, Errno.EBADF, name + " is closed");
        }
    }

    /** Open, and with migration support: else EBADF or ENOTTY, as the kernel answers. */
    private void checkMigration(String op) throws VfioException {
        checkOpen(op);
        if (!spec.migration()) {
            throw new VfioException(op, Errno.ENOTTY, name + " has no migration support");
        }
    }

    /** Open, and able to track DMA: else EBADF or ENOTTY. */
    private void checkDmaLogging(String op) throws VfioException {
        checkOpen(op);
        if (!spec.dmaLogging()) {
            throw new VfioException(op, Errno.ENOTTY, name + " cannot track DMA");
        }
    }

    // ------------------------------------------------------------------------------------------
    // Hooks for a device with a data plane (the NIC)

    /** The device stops all DMA and internal change; returns only when it has. Lock held. */
    protected void stopDataPlane() {
    }

    /** The device may DMA and change again. Lock held. */
    protected void startDataPlane() {
    }

    /** Peer-to-peer DMA is quiesced (true) or allowed again. Lock held. */
    protected void onP2pQuiesce(boolean quiesced) {
    }

    /** Guest-visible reset of the subclass's state. Lock held. */
    protected void onReset() {
    }

    /** Subclass resources; called once from {@link #close()} without the lock. */
    protected void onClose() {
    }

    /** The subclass's control state (registers, rings, tables); the device is stopped. */
    protected byte[] saveDeviceControl() {
        return new byte[0];
    }

    /** Throws {@link IllegalArgumentException} when {@code data} is not a valid control state. */
    protected void checkDeviceControl(byte[] data) {
        if (data.length != 0) {
            throw new IllegalArgumentException("unexpected device control state of " + data.length + " bytes");
        }
    }

    /** Applies a checked control state. */
    protected void loadDeviceControl(byte[] data) {
    }

    /** A digest of the subclass's guest-invisible state, for "behaves the same" checks. */
    protected long deviceDigest() {
        return 0;
    }

    // ------------------------------------------------------------------------------------------
    // Data plane services

    /** True while the device may DMA and change its state (a running state). */
    protected final boolean dataPlaneRunning() {
        return dataPlaneRunning;
    }

    /**
     * Copies {@code length} bytes from native {@code src} to the device's IOVA space, logging the
     * pages. Lock held; a stopped device that DMAs is a device bug and throws.
     */
    protected final void dmaWrite(long iova, long src, long length) {
        dmaPort.write(iova, src, length);
    }

    protected final void dmaPutLong(long iova, long value) {
        dmaPort.putLong(iova, value);
    }

    protected final void dmaPutInt(long iova, int value) {
        dmaPort.putInt(iova, value);
    }

    protected final long dmaGetLong(long iova) {
        return dmaPort.getLong(iova);
    }

    protected final int dmaGetInt(long iova) {
        return dmaPort.getInt(iova);
    }

    /** Copies {@code length} bytes from the device's IOVA space to native {@code dst} (a DMA read: not logged). */
    protected final void dmaRead(long iova, long dst, long length) {
        dmaPort.read(iova, dst, length);
    }

    /**
     * Makes the device write {@code length} bytes at {@code iova} by DMA now, as inbound traffic
     * would, logged like every device write. The vendor check and the contract tests use it to
     * exercise DMA logging on a device whose own data plane is idle. A stopped device refuses
     * ({@link IllegalStateException}): a device in STOP must not DMA.
     */
    public void simulateDma(long iova, long length) {
        synchronized (lock) {
            dmaPort.simulate(iova, length);
        }
    }

    /** Changes {@code length} bytes of internal state memory at {@code offset} (lock held, running). */
    protected final void writeState(long offset, long value) {
        if (!dataPlaneRunning) {
            throw new IllegalStateException(name + ": internal state changed while " + state);
        }
        memory.putLong(offset, value);
    }

    // ------------------------------------------------------------------------------------------
    // Churn (DeviceChurn): the device changing its internal state while it runs

    /**
     * Runs {@code steps} churn steps now, on the caller's thread: a deterministic workload the
     * vendor check runs on two devices to show that a loaded device behaves as the saved one.
     */
    public void advance(int steps) {
        synchronized (lock) {
            if (!dataPlaneRunning) {
                throw new IllegalStateException(name + " is not running (" + state + ")");
            }
            churn.advance(steps);
        }
    }

    /** A digest of all internal state (memory, generator, subclass state). */
    public long stateDigest() {
        synchronized (lock) {
            return stateDigestLocked();
        }
    }

    long stateDigestLocked() {
        long h = memory.digest();
        h = MemoryDigest.combine(h, churn.counter);
        h = MemoryDigest.combine(h, churn.rng);
        return MemoryDigest.combine(h, deviceDigest());
    }

    /**
     * Asks the device to take {@link #stateDigest()} the moment a resumed state is applied
     * (RESUMING→STOP), before it runs again: what a destination compares with the source's
     * digest of its stopped device. Costs a pass over the state memory inside the destination's
     * start, so it is opt-in (verification runs only).
     */
    public void digestAtLoad(boolean on) {
        synchronized (lock) {
            region.digestAtLoad(on);
        }
    }

    /** The digest taken when the last resumed state was applied; empty when none was taken. */
    public java.util.OptionalLong loadDigest() {
        synchronized (lock) {
            return region.loadDigest();
        }
    }

    // ------------------------------------------------------------------------------------------
    // Observation (tests, reports)

    /** Every state entered, in order, starting with RUNNING; a reset shows as RUNNING. */
    public List<VfioDeviceState> stateHistory() {
        return timeline.history();
    }

    public int resets() {
        synchronized (lock) {
            return resets;
        }
    }

    /** Time spent in each state so far, in nanoseconds. */
    public Map<VfioDeviceState, Long> nanosInState() {
        synchronized (lock) {
            return timeline.nanosIn(state);
        }
    }

    /** Time spent performing the arcs into each state (device-side transition latency). */
    public Map<VfioDeviceState, Long> arcNanos() {
        synchronized (lock) {
            return timeline.arcNanos();
        }
    }

    public long savedBytes() {
        synchronized (lock) {
            return savedBytes;
        }
    }

    public long loadedBytes() {
        synchronized (lock) {
            return loadedBytes;
        }
    }

    public long dmaBytes() {
        synchronized (lock) {
            return dmaPort.bytes;
        }
    }

    public long churnSteps() {
        synchronized (lock) {
            return churn.counter;
        }
    }

    public VfioDeviceState currentState() {
        synchronized (lock) {
            return state;
        }
    }


}
