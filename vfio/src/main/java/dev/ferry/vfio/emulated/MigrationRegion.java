package dev.ferry.vfio.emulated;

import dev.ferry.core.sys.Errno;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.uapi.VfioDeviceState;

import java.nio.ByteBuffer;
import java.util.OptionalLong;
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
 * The device side of an {@link EmulatedVfioDevice}'s migration region: performs one arc of the
 * kernel's state machine at a time (the path through the arc table is chosen by the caller),
 * with the faults the spec injects on arcs; opens the data fd of a saving group or a resume and
 * ends it when the group is left; applies a resumed image at RESUMING→STOP. What a saving session
 * still owes is the device's {@link StateMemory}; the records are {@link SaveSession}'s and
 * {@link ResumeSession}'s.
 *
 * <h2>Threads</h2>
 * Every method runs holding the device lock.
 */
final class MigrationRegion {
    private final EmulatedVfioDevice dev;
    private SaveSession saving;
    private ResumeSession resuming;
    private boolean digestAtLoad;
    private Long loadDigest;

    MigrationRegion(EmulatedVfioDevice dev) {
        this.dev = dev;
    }

    private static boolean running(VfioDeviceState s) {
        return s == RUNNING || s == RUNNING_P2P || s == PRE_COPY || s == PRE_COPY_P2P;
    }

    private static boolean p2pQuiesced(VfioDeviceState s) {
        return s == RUNNING_P2P || s == PRE_COPY_P2P;
    }

    /** One arc from the device's state to {@code next}; returns the data fd it opened, or null. */
    VfioDataFd step(VfioDeviceState next) throws VfioException {
        VfioDeviceState from = dev.state;
        EmulatedVfSpec spec = dev.spec;
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
                if (dev.dataPlaneRunning) {
                    dev.stopDataPlaneLocked();
                }
                dev.enter(ERROR);
                throw new VfioException("arc " + from + "->" + next, Errno.EIO, "injected fault: " + f
                        + "; the device is in ERROR");
            }
        }
        if (running(from) && !running(next)) {
            dev.stopDataPlaneLocked();
        }
        if (p2pQuiesced(from) != p2pQuiesced(next) && running(next)) {
            dev.onP2pQuiesce(p2pQuiesced(next));
        }
        VfioDataFd opened = null;
        if ((from == RUNNING && next == PRE_COPY) || (from == RUNNING_P2P && next == PRE_COPY_P2P)) {
            opened = openSaving(true);
        } else if (from == STOP && next == STOP_COPY) {
            opened = openSaving(false);
        } else if (next == STOP_COPY) {
            saving.stopCopy = true;
        } else if (from == STOP && next == RESUMING) {
            resuming = new ResumeSession(dev);
            opened = resuming;
        } else if (from == RESUMING && next == STOP) {
            apply(resuming.validate());
            resuming.release();
            resuming.end();
            resuming = null;
            if (digestAtLoad) {
                loadDigest = dev.stateDigestLocked();
            }
        }
        boolean leavingSaving = (from == PRE_COPY || from == PRE_COPY_P2P || from == STOP_COPY)
                && !(next == PRE_COPY || next == PRE_COPY_P2P || next == STOP_COPY);
        if (leavingSaving && saving != null) {
            saving.end();
            saving = null;
            dev.memory.stopSaving();
        }
        if (!running(from) && running(next)) {
            dev.startDataPlaneLocked();
        }
        dev.enter(next);
        dev.timeline.arcTook(next, System.nanoTime() - t0);
        return opened;
    }

    /** RESUMING→STOP succeeded: the image becomes the device's state. */
    private void apply(ResumeSession.Image image) {
        if (image.memory() != null) {
            dev.memory.adopt(image.memory());
            if (dev.spec.has(FaultKind.LOSE_STATE)) {
                dev.memory.zeroFirstChunk();
            }
        }
        if (image.control() != null) {
            ByteBuffer b = ByteBuffer.wrap(image.control());
            dev.churn.counter = b.getLong();
            dev.churn.rng = b.getLong();
            if (image.deviceControl() != null) {
                dev.loadDeviceControl(image.deviceControl());
            }
        }
    }

    private void sleepLocked(long millis) {
        long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        long left;
        while ((left = end - System.nanoTime()) > 0) {
            try {
                TimeUnit.NANOSECONDS.timedWait(dev.lock, left);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /** Ends a saving or resuming session, if one is open (reset, close, ERROR). */
    void endSessions() {
        if (saving != null) {
            saving.end();
            saving = null;
            dev.memory.stopSaving();
        }
        if (resuming != null) {
            resuming.end();
            resuming = null;
        }
    }

    /** GET MIG_DATA_SIZE: what STOP_COPY would still send. */
    long stopCopyLength() {
        long chunkBytes = dev.memory.owedRecordBytes();
        long header = saving == null || !saving.headerSent ? REC_HEAD + HEADER_PAYLOAD + REC_TAIL : 0;
        return header + chunkBytes + REC_HEAD + controlLength() + REC_TAIL + REC_HEAD + REC_TAIL;
    }

    private int controlLength() {
        return CONTROL_PREFIX + dev.saveDeviceControl().length;
    }

    /** The control record's payload: the churn generator, then the subclass's control state. */
    byte[] controlState() {
        byte[] control = dev.saveDeviceControl();
        ByteBuffer b = ByteBuffer.allocate(CONTROL_PREFIX + control.length);
        b.putLong(dev.churn.counter).putLong(dev.churn.rng).putInt(control.length).put(control);
        return b.array();
    }

    private SaveSession openSaving(boolean precopy) {
        dev.memory.startSaving(precopy);
        saving = new SaveSession(dev, precopy);
        return saving;
    }

    void digestAtLoad(boolean on) {
        digestAtLoad = on;
    }

    OptionalLong loadDigest() {
        return loadDigest == null ? OptionalLong.empty() : OptionalLong.of(loadDigest);
    }
}
