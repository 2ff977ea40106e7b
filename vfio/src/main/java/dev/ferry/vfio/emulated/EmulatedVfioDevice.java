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
    static final int REC_HEAD = 12;
    static final int REC_TAIL = 8;
    static final int TAG_HEADER = 0;
    static final int TAG_CHUNK = 1;
    static final int TAG_CONTROL = 2;
    static final int TAG_END = 3;
    static final int MAGIC = 0x46525646; // "FRVF"
    static final int FORMAT_VERSION = 1;
    static final int HEADER_PAYLOAD = 24;
    static final int CONTROL_MAX = 1 << 20;
    static final int MAX_RANGES = 256;
    static final int DMA_PAGE = 4096;

    protected final String name;
    protected final EmulatedVfSpec spec;
    protected final DmaSpace dma;
    /** Serializes every state change, data-fd call, churn step and DMA of this device. */
    protected final Object lock = new Object();

    private final long stateBytes;
    private final int chunks;
    private final int initialChunks;
    private Mapping stateMemory;
    private final long[] initialTodo;
    private final long[] dirty;
    private final long[] stopOnly;

    private VfioDeviceState state = RUNNING;
    private VfioDeviceState readback = RUNNING;
    private boolean closed;
    private boolean dataPlaneRunning;
    private SaveSession saving;
    private ResumeSession resuming;
    private DmaLog dmaLog;

    // churn generator: part of the control state
    private long churnCounter;
    private boolean digestAtLoad;
    private Long loadDigest;
    private long churnRng;
    private final Thread churnThread;

    // statistics
    private final List<VfioDeviceState> history = new CopyOnWriteArrayList<>();
    private final Map<VfioDeviceState, Long> nanosIn = new EnumMap<>(VfioDeviceState.class);
    private final Map<VfioDeviceState, Long> arcNanos = new EnumMap<>(VfioDeviceState.class);
    private long enteredAt = System.nanoTime();
    private int resets;
    private long savedBytes;
    private long loadedBytes;
    private long dmaBytes;

    public EmulatedVfioDevice(String name, EmulatedVfSpec spec, DmaSpace dma) {
        this.name = name;
        this.spec = spec;
        this.dma = dma;
        this.stateBytes = spec.stateBytes();
        this.chunks = (int) ((stateBytes + CHUNK - 1) / CHUNK);
        this.initialChunks = (int) ((spec.initialBytes() + CHUNK - 1) / CHUNK);
        this.stateMemory = stateBytes == 0 ? null : Mapping.anonymous(stateBytes);
        int words = (chunks + 63) / 64;
        this.initialTodo = new long[words];
        this.dirty = new long[words];
        this.stopOnly = new long[words];
        this.churnRng = spec.seed() * 0x9E3779B97F4A7C15L + 0x632BE59BD9B4E019L;
        history.add(RUNNING);
        fillInitialState();
        this.dataPlaneRunning = true;
        if (spec.dirtyRate() > 0 && stateBytes > 0) {
            churnThread = new Thread(this::churnLoop, "vfio-" + name + "-churn");
            churnThread.setDaemon(true);
            churnThread.start();
        } else {
            churnThread = null;
        }
    }

    /** Deterministic non-zero initial content, so state that goes missing is noticed. */
    private void fillInitialState() {
        if (stateMemory == null) {
            return;
        }
        long base = stateMemory.address();
        long x = spec.seed() ^ 0x5DEECE66DL;
        for (long off = 0; off + 8 <= stateBytes; off += 4096) {
            x = x * 6364136223846793005L + 1442695040888963407L;
            NativeMemory.putLong(base + off, x);
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
            long chunkBytes = 0;
            boolean pendingAll = saving == null;
            for (int i = 0; i < chunks; i++) {
                if (pendingAll || test(initialTodo, i) || test(dirty, i) || test(stopOnly, i)) {
                    chunkBytes += REC_HEAD + chunkLength(i) + REC_TAIL;
                }
            }
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
            if (ranges.isEmpty()) {
                throw new VfioException(op, Errno.EINVAL, "num_ranges is 0");
            }
            if (ranges.size() > MAX_RANGES) {
                throw new VfioException(op, Errno.E2BIG, ranges.size() + " ranges, at most " + MAX_RANGES);
            }
            if (pageSize < DMA_PAGE || Long.bitCount(pageSize) != 1) {
                throw new VfioException(op, Errno.EINVAL, "page_size " + pageSize + " is not a power of two >= 4096");
            }
            for (int i = 0; i < ranges.size(); i++) {
                IovaRange r = ranges.get(i);
                if ((r.iova() & (pageSize - 1)) != 0 || (r.length() & (pageSize - 1)) != 0) {
                    throw new VfioException(op, Errno.EINVAL, "range " + r + " is not aligned to " + pageSize);
                }
                for (int j = 0; j < i; j++) {
                    if (r.overlaps(ranges.get(j))) {
                        throw new VfioException(op, Errno.EINVAL, "ranges " + ranges.get(j) + " and " + r + " overlap");
                    }
                }
            }
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
            if (pageSize < DMA_PAGE || Long.bitCount(pageSize) != 1) {
                throw new VfioException(op, Errno.EINVAL, "page_size " + pageSize + " is not a power of two >= 4096");
            }
            if (length <= 0 || iova + length < iova || bitmapAddress == 0) {
                throw new VfioException(op, Errno.EINVAL, "bad iova/length/bitmap");
            }
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
            if (stateMemory != null) {
                NativeMemory.fill(stateMemory.address(), stateBytes, (byte) 0);
                fillInitialState();
            }
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
            if (stateMemory != null) {
                stateMemory.close();
                stateMemory = null;
            }
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
            resuming = new ResumeSession();
            opened = resuming;
        } else if (from == RESUMING && next == STOP) {
            resuming.validateAndApply();
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
        }
        if (!running(from) && running(next)) {
            startDataPlaneLocked();
        }
        enter(next);
        arcNanos.merge(next, System.nanoTime() - t0, Long::sum);
        return opened;
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
        NativeMemory.putLong(stateMemory.address() + offset, value);
        markStateDirty(offset, 8);
    }

    private void markStateDirty(long offset, long length) {
        if (saving == null) {
            return;
        }
        int first = (int) (offset / CHUNK);
        int last = (int) ((offset + length - 1) / CHUNK);
        for (int c = first; c <= last; c++) {
            if (!test(initialTodo, c) && !test(stopOnly, c)) {
                set(dirty, c);
            }
        }
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
        long offset = Long.remainderUnsigned(churnRng, stateBytes) & ~63L;
        churnCounter++;
        for (int w = 0; w < 8 && offset + w * 8L + 8 <= stateBytes; w++) {
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
            if (stateBytes == 0) {
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
        long h = stateMemory == null ? 0 : ContentDigest.of(stateMemory.address(), stateBytes);
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

    private int chunkLength(int i) {
        return (int) Math.min(CHUNK, stateBytes - (long) i * CHUNK);
    }

    private int controlLength() {
        return 20 + saveDeviceControl().length;
    }

    private byte[] controlState() {
        byte[] dev = saveDeviceControl();
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(20 + dev.length);
        b.putLong(churnCounter).putLong(churnRng).putInt(dev.length).put(dev);
        return b.array();
    }

    private SaveSession openSaving(boolean precopy) {
        java.util.Arrays.fill(initialTodo, 0);
        java.util.Arrays.fill(dirty, 0);
        java.util.Arrays.fill(stopOnly, 0);
        for (int i = 0; i < chunks; i++) {
            set(precopy && i >= initialChunks ? stopOnly : initialTodo, i);
        }
        saving = new SaveSession(precopy);
        return saving;
    }

    private static boolean test(long[] bits, int i) {
        return (bits[i >>> 6] & (1L << i)) != 0;
    }

    private static void set(long[] bits, int i) {
        bits[i >>> 6] |= 1L << i;
    }

    private static int takeFirst(long[] bits) {
        for (int w = 0; w < bits.length; w++) {
            if (bits[w] != 0) {
                int b = Long.numberOfTrailingZeros(bits[w]);
                bits[w] &= ~(1L << b);
                return w * 64 + b;
            }
        }
        return -1;
    }

    private long recordBytes(long[] bits) {
        long total = 0;
        for (int w = 0; w < bits.length; w++) {
            long word = bits[w];
            while (word != 0) {
                int b = Long.numberOfTrailingZeros(word);
                word &= word - 1;
                total += REC_HEAD + chunkLength(w * 64 + b) + REC_TAIL;
            }
        }
        return total;
    }

    /** The saving data fd: PRE_COPY, PRE_COPY_P2P and STOP_COPY share it. */
    private final class SaveSession implements VfioDataFd {
        private final long sessionInitialBytes;
        boolean stopCopy;
        boolean active = true;
        boolean fdClosed;
        boolean headerSent;
        boolean controlSent;
        boolean endSent;
        boolean readFailed;
        int chunkRecords;
        private final Mapping record = Mapping.anonymous(REC_HEAD + CHUNK + REC_TAIL);
        private int recLength;
        private int recPos;
        private boolean recInitial;

        SaveSession(boolean precopy) {
            this.stopCopy = !precopy;
            this.sessionInitialBytes = REC_HEAD + HEADER_PAYLOAD + REC_TAIL + recordBytes(initialTodo);
        }

        @Override
        public long read(long address, long length) throws VfioException {
            synchronized (lock) {
                if (fdClosed) {
                    throw new VfioException("read(data_fd)", Errno.EBADF, "closed");
                }
                if (!active && !spec.has(FaultKind.STALE_FD)) {
                    throw new VfioException("read(data_fd)", Errno.ENODEV, "the saving session of " + name + " ended");
                }
                if (!active) {
                    return NO_DATA;
                }
                if (stopCopy && spec.has(FaultKind.FAIL_READ) && !readFailed) {
                    readFailed = true;
                    throw new VfioException("read(data_fd)", Errno.EIO, "injected fault: fail-read");
                }
                long copied = 0;
                while (copied < length) {
                    if (recPos == recLength && !nextRecord()) {
                        break;
                    }
                    long n = Math.min(length - copied, recLength - recPos);
                    NativeMemory.copy(record.address() + recPos, address + copied, n);
                    recPos += (int) n;
                    copied += n;
                }
                savedBytes += copied;
                if (copied > 0) {
                    return copied;
                }
                if (!stopCopy) {
                    return spec.has(FaultKind.EOF_IN_PRECOPY) ? 0 : NO_DATA;
                }
                return spec.has(FaultKind.NO_EOF) ? NO_DATA : 0;
            }
        }

        private boolean nextRecord() {
            long a = record.address();
            if (!headerSent) {
                headerSent = true;
                recInitial = true;
                NativeMemory.putInt(a + REC_HEAD, Integer.reverseBytes(MAGIC));
                NativeMemory.putInt(a + REC_HEAD + 4, Integer.reverseBytes(FORMAT_VERSION));
                NativeMemory.putLong(a + REC_HEAD + 8, Long.reverseBytes(stateBytes));
                NativeMemory.putInt(a + REC_HEAD + 16, Integer.reverseBytes(CHUNK));
                NativeMemory.putInt(a + REC_HEAD + 20, 0);
                seal(TAG_HEADER, 0, HEADER_PAYLOAD, false);
                return true;
            }
            int c = takeFirst(initialTodo);
            recInitial = c >= 0;
            if (c < 0) {
                c = takeFirst(dirty);
            }
            if (c < 0 && stopCopy) {
                c = takeFirst(stopOnly);
            }
            if (c >= 0) {
                int len = chunkLength(c);
                NativeMemory.copy(stateMemory.address() + (long) c * CHUNK, a + REC_HEAD, len);
                chunkRecords++;
                seal(TAG_CHUNK, c, len, false);
                return true;
            }
            if (!stopCopy) {
                return false;
            }
            if (!controlSent) {
                controlSent = true;
                byte[] control = controlState();
                NativeMemory.copyFromArray(control, 0, a + REC_HEAD, control.length);
                seal(TAG_CONTROL, 0, control.length, spec.has(FaultKind.CORRUPT_DATA));
                return true;
            }
            if (!endSent) {
                endSent = true;
                seal(TAG_END, chunkRecords, 0, false);
                return true;
            }
            return false;
        }

        private void seal(int tag, int index, int length, boolean corrupt) {
            long a = record.address();
            NativeMemory.putInt(a, Integer.reverseBytes(tag));
            NativeMemory.putInt(a + 4, Integer.reverseBytes(index));
            NativeMemory.putInt(a + 8, Integer.reverseBytes(length));
            long digest = ContentDigest.record(tag, index, length, a + REC_HEAD);
            NativeMemory.putLong(a + REC_HEAD + length, Long.reverseBytes(digest));
            if (corrupt && length > 0) {
                long p = a + REC_HEAD + length / 2;
                NativeMemory.putByte(p, (byte) (NativeMemory.getByte(p) ^ 0x40));
            }
            recLength = REC_HEAD + length + REC_TAIL;
            recPos = 0;
        }

        @Override
        public long write(long address, long length) throws VfioException {
            throw new VfioException("write(data_fd)", Errno.EINVAL, "a saving data fd is read-only");
        }

        @Override
        public PrecopyInfo precopyInfo() throws VfioException {
            synchronized (lock) {
                if (fdClosed) {
                    throw new VfioException("VFIO_MIG_GET_PRECOPY_INFO", Errno.EBADF, "closed");
                }
                if (!active || stopCopy || !(state == PRE_COPY || state == PRE_COPY_P2P)) {
                    throw new VfioException("VFIO_MIG_GET_PRECOPY_INFO", Errno.EINVAL, name + " is in " + state);
                }
                long inFlight = recLength - recPos;
                long initial = (headerSent ? 0 : REC_HEAD + HEADER_PAYLOAD + REC_TAIL) + recordBytes(initialTodo)
                        + (recInitial ? inFlight : 0);
                long dirtyBytes = recordBytes(dirty) + (recInitial ? 0 : inFlight);
                if (spec.has(FaultKind.STUCK_INITIAL)) {
                    initial = sessionInitialBytes;
                }
                return new PrecopyInfo(initial, dirtyBytes);
            }
        }

        void end() {
            if (!active) {
                return;
            }
            active = false;
            record.close();
        }

        @Override
        public void close() {
            synchronized (lock) {
                if (fdClosed) {
                    return;
                }
                // closing the fd does not change the device state (as with the kernel, where
                // the session ends with the state, not with the file)
                fdClosed = true;
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // Resuming

    private final class ResumeSession implements VfioDataFd {
        private Mapping staging = stateBytes == 0 ? null : Mapping.anonymous(stateBytes);
        private final Mapping scratch = Mapping.anonymous(CONTROL_MAX + REC_TAIL);
        private final long[] received = new long[(chunks + 63) / 64];
        private final byte[] head = new byte[REC_HEAD];
        private final byte[] tail = new byte[REC_TAIL];
        private int headFill;
        private int tailFill;
        private int phase; // 0 head, 1 payload, 2 tail, 3 after end
        private int tag;
        private int index;
        private int length;
        private int payloadFill;
        private boolean headerSeen;
        private byte[] control;
        private int chunkRecords;
        private int endCount = -1;
        private String error;
        boolean active = true;
        boolean fdClosed;

        @Override
        public long read(long address, long length) throws VfioException {
            throw new VfioException("read(data_fd)", Errno.EINVAL, "a resuming data fd is write-only");
        }

        @Override
        public PrecopyInfo precopyInfo() throws VfioException {
            throw new VfioException("VFIO_MIG_GET_PRECOPY_INFO", Errno.EINVAL, name + " is in " + state);
        }

        @Override
        public long write(long address, long len) throws VfioException {
            synchronized (lock) {
                if (fdClosed) {
                    throw new VfioException("write(data_fd)", Errno.EBADF, "closed");
                }
                if (!active) {
                    throw new VfioException("write(data_fd)", Errno.ENODEV, "the resuming session of " + name + " ended");
                }
                if (error != null && !spec.has(FaultKind.ACCEPT_GARBAGE)) {
                    throw new VfioException("write(data_fd)", Errno.EINVAL, error);
                }
                long done = 0;
                while (done < len) {
                    long n = consume(address + done, len - done);
                    if (n < 0) {
                        if (spec.has(FaultKind.ACCEPT_GARBAGE)) {
                            loadedBytes += len;
                            return len;
                        }
                        throw new VfioException("write(data_fd)", Errno.EINVAL, error);
                    }
                    done += n;
                }
                loadedBytes += done;
                return done;
            }
        }

        /** Consumes bytes from {@code a}; returns the count, or -1 after recording an error. */
        private long consume(long a, long avail) {
            switch (phase) {
                case 0 -> {
                    int n = (int) Math.min(avail, REC_HEAD - headFill);
                    NativeMemory.copyToArray(a, head, headFill, n);
                    headFill += n;
                    if (headFill == REC_HEAD) {
                        headFill = 0;
                        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(head);
                        tag = b.getInt();
                        index = b.getInt();
                        length = b.getInt();
                        String bad = checkHead();
                        if (bad != null) {
                            error = bad;
                            return -1;
                        }
                        payloadFill = 0;
                        phase = length == 0 ? 2 : 1;
                    }
                    return n;
                }
                case 1 -> {
                    int n = (int) Math.min(avail, length - payloadFill);
                    NativeMemory.copy(a, payloadAddress() + payloadFill, n);
                    payloadFill += n;
                    if (payloadFill == length) {
                        phase = 2;
                    }
                    return n;
                }
                case 2 -> {
                    int n = (int) Math.min(avail, REC_TAIL - tailFill);
                    NativeMemory.copyToArray(a, tail, tailFill, n);
                    tailFill += n;
                    if (tailFill == REC_TAIL) {
                        tailFill = 0;
                        long want = java.nio.ByteBuffer.wrap(tail).getLong();
                        if (ContentDigest.record(tag, index, length, payloadAddress()) != want) {
                            error = "record " + tagName(tag) + " " + index + ": digest mismatch (corrupt data)";
                            return -1;
                        }
                        String bad = accept();
                        if (bad != null) {
                            error = bad;
                            return -1;
                        }
                        phase = tag == TAG_END ? 3 : 0;
                    }
                    return n;
                }
                default -> {
                    error = "data after the end record";
                    return -1;
                }
            }
        }

        private String checkHead() {
            if (!headerSeen && tag != TAG_HEADER) {
                return "stream does not start with a header record (tag " + tag + ")";
            }
            return switch (tag) {
                case TAG_HEADER -> headerSeen ? "second header record"
                        : length != HEADER_PAYLOAD ? "header record of " + length + " bytes" : null;
                case TAG_CHUNK -> index < 0 || index >= chunks ? "chunk " + index + " outside 0.." + (chunks - 1)
                        : length != chunkLength(index) ? "chunk " + index + " of " + length + " bytes, expected "
                        + chunkLength(index) : null;
                case TAG_CONTROL -> length < 20 || length > CONTROL_MAX ? "control record of " + length + " bytes"
                        : control != null ? "second control record" : null;
                case TAG_END -> length != 0 ? "end record with payload" : null;
                default -> "unknown record tag " + tag;
            };
        }

        private long payloadAddress() {
            return tag == TAG_CHUNK ? staging.address() + (long) index * CHUNK : scratch.address();
        }

        private String accept() {
            switch (tag) {
                case TAG_HEADER -> {
                    long s = scratch.address();
                    int magic = Integer.reverseBytes(NativeMemory.getInt(s));
                    int version = Integer.reverseBytes(NativeMemory.getInt(s + 4));
                    long bytes = Long.reverseBytes(NativeMemory.getLong(s + 8));
                    int chunk = Integer.reverseBytes(NativeMemory.getInt(s + 16));
                    if (magic != MAGIC) {
                        return "bad magic 0x" + Integer.toHexString(magic);
                    }
                    if (version != FORMAT_VERSION) {
                        return "format version " + version + ", this device reads " + FORMAT_VERSION;
                    }
                    if (bytes != stateBytes || chunk != CHUNK) {
                        return "state of " + bytes + " bytes in " + chunk + "-byte chunks; this device has "
                                + stateBytes + " in " + CHUNK;
                    }
                    headerSeen = true;
                }
                case TAG_CHUNK -> {
                    set(received, index);
                    chunkRecords++;
                }
                case TAG_CONTROL -> {
                    control = new byte[length];
                    NativeMemory.copyToArray(scratch.address(), control, 0, length);
                }
                case TAG_END -> endCount = index;
                default -> throw new IllegalStateException();
            }
            return null;
        }

        void validateAndApply() throws VfioException {
            String op = "arc RESUMING->STOP";
            if (spec.has(FaultKind.REJECT_LOAD)) {
                throw new VfioException(op, Errno.EINVAL, "injected fault: reject-load");
            }
            boolean lenient = spec.has(FaultKind.ACCEPT_GARBAGE);
            String problem = error;
            if (problem == null && phase != 3) {
                problem = "truncated state: " + (headerSeen ? "no end record" : "no header") + " after "
                        + loadedBytes + " bytes";
            }
            if (problem == null && endCount != chunkRecords) {
                problem = "end record counts " + endCount + " chunk records, " + chunkRecords + " arrived";
            }
            if (problem == null) {
                for (int i = 0; i < chunks; i++) {
                    if (!test(received, i)) {
                        problem = "chunk " + i + " of the state never arrived";
                        break;
                    }
                }
            }
            if (problem == null && control == null) {
                problem = "no control record";
            }
            byte[] dev = null;
            if (problem == null) {
                java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(control);
                b.getLong();
                b.getLong();
                int n = b.getInt();
                if (n != control.length - 20) {
                    problem = "control record says " + n + " device bytes, holds " + (control.length - 20);
                } else {
                    dev = java.util.Arrays.copyOfRange(control, 20, control.length);
                    try {
                        checkDeviceControl(dev);
                    } catch (IllegalArgumentException e) {
                        problem = "control state rejected: " + e.getMessage();
                        dev = null;
                    }
                }
            }
            if (problem != null && !lenient) {
                throw new VfioException(op, Errno.EINVAL, problem);
            }
            // apply
            if (staging != null) {
                Mapping old = stateMemory;
                stateMemory = staging;
                staging = null;
                old.close();
                if (spec.has(FaultKind.LOSE_STATE)) {
                    NativeMemory.fill(stateMemory.address(), Math.min(stateBytes, CHUNK), (byte) 0);
                }
            }
            if (control != null && control.length >= 20) {
                java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(control);
                churnCounter = b.getLong();
                churnRng = b.getLong();
                if (dev != null) {
                    loadDeviceControl(dev);
                }
            }
        }

        void end() {
            if (!active) {
                return;
            }
            active = false;
            if (staging != null) {
                staging.close();
                staging = null;
            }
            scratch.close();
        }

        @Override
        public void close() {
            synchronized (lock) {
                fdClosed = true;
            }
        }
    }

    private static String tagName(int tag) {
        return switch (tag) {
            case TAG_HEADER -> "header";
            case TAG_CHUNK -> "chunk";
            case TAG_CONTROL -> "control";
            case TAG_END -> "end";
            default -> "tag " + tag;
        };
    }
}
