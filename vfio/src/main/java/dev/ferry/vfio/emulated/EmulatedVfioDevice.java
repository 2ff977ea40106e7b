package dev.ferry.vfio.emulated;

import dev.ferry.core.memory.MemoryDigest;
import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.DmaSpace;
import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.device.PrecopyInfo;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioDevice;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.fsm.MigCapabilities;
import dev.ferry.vfio.fsm.RefusedStateRequestException;
import dev.ferry.vfio.fsm.VfioMigrationFsm;
import dev.ferry.vfio.uapi.VfioDeviceState;

import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import static dev.ferry.vfio.emulated.StateRecords.*;
import static dev.ferry.vfio.uapi.VfioDeviceState.ERROR;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;

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
    private boolean closed;
    private boolean dataPlaneRunning;
    SaveSession saving;
    private ResumeSession resuming;
    private DmaLog dmaLog;

    // churn generator: part of the control state
    long churnCounter;
    private boolean digestAtLoad;
    private Long loadDigest;
    long churnRng;
    private final Thread churnThread;

    // statistics
    private final List<VfioDeviceState> history = new CopyOnWriteArrayList<>();
    private final Map<VfioDeviceState, Long> nanosIn = new EnumMap<>(VfioDeviceState.class);
    private final Map<VfioDeviceState, Long> arcNanos = new EnumMap<>(VfioDeviceState.class);
    private long enteredAt = System.nanoTime();
    private int resets;
    long savedBytes;
    long loadedBytes;
    private long dmaBytes;

    public EmulatedVfioDevice(String name, EmulatedVfSpec spec, DmaSpace dma) {
        this.name = name;
        this.spec = spec;
        this.dma = dma;
        this.memory = new StateMemory(spec);
        this.churnRng = spec.seed() * 0x9E3779B97F4A7C15L + 0x632BE59BD9B4E019L;
        history.add(RUNNING);
        memory.fill(spec.seed());
        this.dataPlaneRunning = true;
        if (spec.dirtyRate() > 0 && memory.bytes() > 0) {
            churnThread = new Thread(this::churnLoop, "vfio-" + name + "-churn");
            churnThread.setDaemon(true);
            churnThread.start();
        } else {
            churnThread = null;
        }
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
            checkOpen("GET MIGRATION");
            if (!spec.migration()) {
                throw new VfioException("GET MIGRATION", Errno.ENOTTY, name + " has no migration support");
            }
            return spec.capabilities();
        }
    }

    @Override
    public VfioDeviceState deviceState() throws VfioException {
        synchronized (lock) {
            checkOpen("GET MIG_DEVICE_STATE");
            if (!spec.migration()) {
                throw new VfioException("GET MIG_DEVICE_STATE", Errno.ENOTTY, name + " has no migration support");
            }
            return spec.has(FaultKind.BAD_READBACK) ? readback : state;
        }
    }

    @Override
    public VfioDataFd setDeviceState(VfioDeviceState target) throws VfioException {
        synchronized (lock) {
            String op = "SET MIG_DEVICE_STATE " + state + "->" + target;
            checkOpen(op);
            if (!spec.migration()) {
                throw new VfioException(op, Errno.ENOTTY, name + " has no migration support");
            }
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
                    opened = step(next);
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
            checkOpen("GET MIG_DATA_SIZE");
            if (!spec.migration()) {
                throw new VfioException("GET MIG_DATA_SIZE", Errno.ENOTTY, name + " has no migration support");
            }
            long chunkBytes = memory.owedRecordBytes();
            long header = saving == null || !saving.headerSent ? REC_HEAD + HEADER_PAYLOAD + REC_TAIL : 0;
            return header + chunkBytes + REC_HEAD + controlLength() + REC_TAIL + REC_HEAD + REC_TAIL;
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
            checkOpen(op);
            if (!spec.dmaLogging()) {
                throw new VfioException(op, Errno.ENOTTY, name + " cannot track DMA");
            }
            DmaLog.checkStart(op, pageSize, ranges);
            if (dmaLog != null) {
                throw new VfioException(op, Errno.EBUSY, "DMA logging already started");
            }
            dmaLog = new DmaLog(ranges);
        }
    }

    @Override
    public void dmaLoggingStop() throws VfioException {
        synchronized (lock) {
            checkOpen("SET DMA_LOGGING_STOP");
            if (!spec.dmaLogging()) {
                throw new VfioException("SET DMA_LOGGING_STOP", Errno.ENOTTY, name + " cannot track DMA");
            }
            if (dmaLog != null) {
                dmaLog.close();
                dmaLog = null;
            }
        }
    }

    @Override
    public void dmaLoggingReport(long iova, long length, long pageSize, long bitmapAddress) throws VfioException {
        synchronized (lock) {
            String op = "GET DMA_LOGGING_REPORT";
            checkOpen(op);
            if (!spec.dmaLogging()) {
                throw new VfioException(op, Errno.ENOTTY, name + " cannot track DMA");
            }
            if (dmaLog == null) {
                throw new VfioException(op, Errno.EINVAL, "DMA logging is not started");
            }
            DmaLog.checkReport(op, iova, length, pageSize, bitmapAddress);
            dmaLog.report(iova, length, pageSize, bitmapAddress, !spec.has(FaultKind.LOG_NO_CLEAR));
        }
    }

    @Override
    public void reset() throws VfioException {
        synchronized (lock) {
            checkOpen("VFIO_DEVICE_RESET");
            if (spec.has(FaultKind.FAIL_RESET)) {
                throw new VfioException("VFIO_DEVICE_RESET", Errno.EIO, "injected fault: fail-reset");
            }
            endSessions();
            if (dataPlaneRunning) {
                stopDataPlaneLocked();
            }
            memory.fill(spec.seed());
            churnCounter = 0;
            churnRng = spec.seed() * 0x9E3779B97F4A7C15L + 0x632BE59BD9B4E019L;
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
            endSessions();
            if (dataPlaneRunning) {
                stopDataPlaneLocked();
            }
            if (dmaLog != null) {
                dmaLog.close();
                dmaLog = null;
            }
            lock.notifyAll();
        }
        if (churnThread != null) {
            churnThread.interrupt();
            try {
                churnThread.join(5000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        onClose();
        synchronized (lock) {
            memory.close();
        }
    }

    // ------------------------------------------------------------------------------------------
    // One arc

    private static boolean running(VfioDeviceState s) {
        return s == RUNNING || s == RUNNING_P2P || s == PRE_COPY || s == PRE_COPY_P2P;
    }

    private static boolean p2pQuiesced(VfioDeviceState s) {
        return s == RUNNING_P2P || s == PRE_COPY_P2P;
    }

    private VfioDataFd step(VfioDeviceState next) throws VfioException {
        VfioDeviceState from = state;
        long t0 = System.nanoTime();
        for (Fault f : spec.faults()) {
            if (f.kind() == FaultKind.SLOW_SET && f.hitsEntryOf(next)) {
                sleepLocked(f.millis());
            }
        }
        for (Fault f : spec.faults()) {
            if (f.kind() == FaultKind.FAIL_SET && f.hitsEntryOf(next)) {
                throw new VfioException("arc " + from + "->" + next, Errno.EIO, "injected fault: " + f);
            }
            if (f.kind() == FaultKind.ERROR_SET && f.hitsEntryOf(next)) {
                endSessions();
                if (dataPlaneRunning) {
                    stopDataPlaneLocked();
                }
                enter(ERROR);
                throw new VfioException("arc " + from + "->" + next, Errno.EIO, "injected fault: " + f
                        + "; the device is in ERROR");
            }
        }
        if (running(from) && !running(next)) {
            stopDataPlaneLocked();
        }
        if (p2pQuiesced(from) != p2pQuiesced(next) && running(next)) {
            onP2pQuiesce(p2pQuiesced(next));
        }
        VfioDataFd opened = null;
        if ((from == RUNNING && next == PRE_COPY) || (from == RUNNING_P2P && next == PRE_COPY_P2P)) {
            opened = openSaving(true);
        } else if (from == STOP && next == STOP_COPY) {
            opened = openSaving(false);
        } else if (next == STOP_COPY) {
            saving.stopCopy = true;
        } else if (from == STOP && next == RESUMING) {
            resuming = new ResumeSession(this);
            opened = resuming;
        } else if (from == RESUMING && next == STOP) {
            apply(resuming.validate());
            resuming.release();
            resuming.end();
            resuming = null;
            if (digestAtLoad) {
                loadDigest = stateDigestLocked();
            }
        }
        boolean leavingSaving = (from == PRE_COPY || from == PRE_COPY_P2P || from == STOP_COPY)
                && !(next == PRE_COPY || next == PRE_COPY_P2P || next == STOP_COPY);
        if (leavingSaving && saving != null) {
            saving.end();
            saving = null;
            memory.stopSaving();
        }
        if (!running(from) && running(next)) {
            startDataPlaneLocked();
        }
        enter(next);
        arcNanos.merge(next, System.nanoTime() - t0, Long::sum);
        return opened;
    }

    /** RESUMING→STOP succeeded: the image becomes the device's state. */
    private void apply(ResumeSession.Image image) {
        if (image.memory() != null) {
            memory.adopt(image.memory());
            if (spec.has(FaultKind.LOSE_STATE)) {
                memory.zeroFirstChunk();
            }
        }
        if (image.control() != null) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(image.control());
            churnCounter = b.getLong();
            churnRng = b.getLong();
            if (image.deviceControl() != null) {
                loadDeviceControl(image.deviceControl());
            }
        }
    }

    private void enter(VfioDeviceState s) {
        long now = System.nanoTime();
        nanosIn.merge(state, now - enteredAt, Long::sum);
        enteredAt = now;
        state = s;
        history.add(s);
    }

    private void sleepLocked(long millis) {
        long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        long left;
        while ((left = end - System.nanoTime()) > 0) {
            try {
                TimeUnit.NANOSECONDS.timedWait(lock, left);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    private void endSessions() {
        if (saving != null) {
            saving.end();
            saving = null;
            memory.stopSaving();
        }
        if (resuming != null) {
            resuming.end();
            resuming = null;
        }
    }

    private void stopDataPlaneLocked() {
        dataPlaneRunning = false;
        stopDataPlane();
    }

    private void startDataPlaneLocked() {
        dataPlaneRunning = true;
        startDataPlane();
        lock.notifyAll();
    }

    private void checkOpen(String op) throws VfioException {
        if (closed) {
            throw new VfioException(op, Errno.EBADF, name + " is closed");
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
        checkDma(iova);
        long host = dma.hostAddress(iova, length);
        NativeMemory.copy(src, host, length);
        logDma(iova, length);
    }

    protected final void dmaPutLong(long iova, long value) {
        checkDma(iova);
        NativeMemory.putLong(dma.hostAddress(iova, 8), value);
        logDma(iova, 8);
    }

    protected final void dmaPutInt(long iova, int value) {
        checkDma(iova);
        NativeMemory.putInt(dma.hostAddress(iova, 4), value);
        logDma(iova, 4);
    }

    protected final long dmaGetLong(long iova) {
        checkDma(iova);
        return NativeMemory.getLong(dma.hostAddress(iova, 8));
    }

    protected final int dmaGetInt(long iova) {
        checkDma(iova);
        return NativeMemory.getInt(dma.hostAddress(iova, 4));
    }

    /** Copies {@code length} bytes from the device's IOVA space to native {@code dst} (a DMA read: not logged). */
    protected final void dmaRead(long iova, long dst, long length) {
        checkDma(iova);
        NativeMemory.copy(dma.hostAddress(iova, length), dst, length);
    }

    /**
     * Makes the device write {@code length} bytes at {@code iova} by DMA now, as inbound traffic
     * would, logged like every device write. The vendor check and the contract tests use it to
     * exercise DMA logging on a device whose own data plane is idle. A stopped device refuses
     * ({@link IllegalStateException}): a device in STOP must not DMA.
     */
    public void simulateDma(long iova, long length) {
        synchronized (lock) {
            checkDma(iova);
            long host = dma.hostAddress(iova, length);
            NativeMemory.fill(host, length, (byte) (0xA5 ^ (dmaBytes >>> 12)));
            logDma(iova, length);
        }
    }

    private void checkDma(long iova) {
        if (!Thread.holdsLock(lock)) {
            throw new IllegalStateException(name + ": DMA without the device lock");
        }
        if (!dataPlaneRunning) {
            throw new IllegalStateException(name + ": DMA to 0x" + Long.toHexString(iova) + " while " + state);
        }
    }

    private void logDma(long iova, long length) {
        dmaBytes += length;
        if (dmaLog != null) {
            dmaLog.mark(iova, length);
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
    // Churn: the device changing its internal state while it runs

    /**
     * Changes the state at {@link EmulatedVfSpec#dirtyRate()} bytes per second as pre-copy sees
     * it: each step writes 64 bytes somewhere in one 64 KiB chunk, which makes the whole chunk
     * dirty, so the loop takes {@code rate / CHUNK} steps a second (owed across 10 ms ticks).
     * A device whose changes are spread thinner would dirty everything at any rate, and pre-copy
     * could never get ahead of it.
     */
    private void churnLoop() {
        long owed = 0;
        long perTick = spec.dirtyRate() / 100;
        try {
            while (true) {
                synchronized (lock) {
                    while (!closed && !dataPlaneRunning) {
                        lock.wait();
                    }
                    if (closed) {
                        return;
                    }
                    owed += perTick;
                    for (; owed >= CHUNK; owed -= CHUNK) {
                        churnStep();
                    }
                }
                Thread.sleep(10);
            }
        } catch (InterruptedException e) {
            // closing
        }
    }

    private void churnStep() {
        churnRng ^= churnRng << 13;
        churnRng ^= churnRng >>> 7;
        churnRng ^= churnRng << 17;
        long offset = Long.remainderUnsigned(churnRng, memory.bytes()) & ~63L;
        churnCounter++;
        for (int w = 0; w < 8 && offset + w * 8L + 8 <= memory.bytes(); w++) {
            writeState(offset + w * 8L, churnRng ^ (churnCounter * 0x9E3779B97F4A7C15L) ^ w);
        }
    }

    /**
     * Runs {@code steps} churn steps now, on the caller's thread: a deterministic workload the
     * vendor check runs on two devices to show that a loaded device behaves as the saved one.
     */
    public void advance(int steps) {
        synchronized (lock) {
            if (!dataPlaneRunning) {
                throw new IllegalStateException(name + " is not running (" + state + ")");
            }
            if (memory.bytes() == 0) {
                churnCounter += steps;
                return;
            }
            for (int i = 0; i < steps; i++) {
                churnStep();
            }
        }
    }

    /** A digest of all internal state (memory, generator, subclass state). */
    public long stateDigest() {
        synchronized (lock) {
            return stateDigestLocked();
        }
    }

    private long stateDigestLocked() {
        long h = memory.digest();
        h = MemoryDigest.combine(h, churnCounter);
        h = MemoryDigest.combine(h, churnRng);
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
            digestAtLoad = on;
        }
    }

    /** The digest taken when the last resumed state was applied; empty when none was taken. */
    public java.util.OptionalLong loadDigest() {
        synchronized (lock) {
            return loadDigest == null ? java.util.OptionalLong.empty() : java.util.OptionalLong.of(loadDigest);
        }
    }

    // ------------------------------------------------------------------------------------------
    // Observation (tests, reports)

    /** Every state entered, in order, starting with RUNNING; a reset shows as RUNNING. */
    public List<VfioDeviceState> stateHistory() {
        return List.copyOf(history);
    }

    public int resets() {
        synchronized (lock) {
            return resets;
        }
    }

    /** Time spent in each state so far, in nanoseconds. */
    public Map<VfioDeviceState, Long> nanosInState() {
        synchronized (lock) {
            Map<VfioDeviceState, Long> m = new EnumMap<>(nanosIn);
            m.merge(state, System.nanoTime() - enteredAt, Long::sum);
            return m;
        }
    }

    /** Time spent performing the arcs into each state (device-side transition latency). */
    public Map<VfioDeviceState, Long> arcNanos() {
        synchronized (lock) {
            return new EnumMap<>(arcNanos);
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
            return dmaBytes;
        }
    }

    public long churnSteps() {
        synchronized (lock) {
            return churnCounter;
        }
    }

    public VfioDeviceState currentState() {
        synchronized (lock) {
            return state;
        }
    }

    // ------------------------------------------------------------------------------------------
    // Saving

    private int controlLength() {
        return CONTROL_PREFIX + saveDeviceControl().length;
    }

    byte[] controlState() {
        byte[] dev = saveDeviceControl();
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(CONTROL_PREFIX + dev.length);
        b.putLong(churnCounter).putLong(churnRng).putInt(dev.length).put(dev);
        return b.array();
    }

    private SaveSession openSaving(boolean precopy) {
        memory.startSaving(precopy);
        saving = new SaveSession(this, precopy);
        return saving;
    }


}
