package dev.ferry.vfio.emulated;

import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.PrecopyInfo;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioException;

import static dev.ferry.vfio.emulated.EmulatedVfioDevice.CHUNK;
import static dev.ferry.vfio.emulated.StateRecords.*;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY_P2P;

/** The saving data fd: PRE_COPY, PRE_COPY_P2P and STOP_COPY share it. */
final class SaveSession implements VfioDataFd {
    private final EmulatedVfioDevice dev;
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

    SaveSession(EmulatedVfioDevice dev, boolean precopy) {
        this.dev = dev;
        this.stopCopy = !precopy;
        this.sessionInitialBytes = REC_HEAD + HEADER_PAYLOAD + REC_TAIL + dev.memory.initialRecordBytes();
    }

    @Override
    public long read(long address, long length) throws VfioException {
        synchronized (dev.lock) {
            if (fdClosed) {
                throw new VfioException("read(data_fd)", Errno.EBADF, "closed");
            }
            if (!active && !dev.spec.has(FaultKind.STALE_FD)) {
                throw new VfioException("read(data_fd)", Errno.ENODEV, "the saving session of " + dev.name + " ended");
            }
            if (!active) {
                return NO_DATA;
            }
            if (stopCopy && dev.spec.has(FaultKind.FAIL_READ) && !readFailed) {
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
            dev.savedBytes += copied;
            if (copied > 0) {
                return copied;
            }
            if (!stopCopy) {
                return dev.spec.has(FaultKind.EOF_IN_PRECOPY) ? 0 : NO_DATA;
            }
            return dev.spec.has(FaultKind.NO_EOF) ? NO_DATA : 0;
        }
    }

    private boolean nextRecord() {
        long a = record.address();
        if (!headerSent) {
            headerSent = true;
            recInitial = true;
            NativeMemory.putInt(a + REC_HEAD, Integer.reverseBytes(MAGIC));
            NativeMemory.putInt(a + REC_HEAD + 4, Integer.reverseBytes(FORMAT_VERSION));
            NativeMemory.putLong(a + REC_HEAD + 8, Long.reverseBytes(dev.memory.bytes()));
            NativeMemory.putInt(a + REC_HEAD + 16, Integer.reverseBytes(CHUNK));
            NativeMemory.putInt(a + REC_HEAD + 20, 0);
            seal(TAG_HEADER, 0, HEADER_PAYLOAD, false);
            return true;
        }
        int c = dev.memory.takeInitial();
        recInitial = c >= 0;
        if (c < 0) {
            c = dev.memory.takeDirty();
        }
        if (c < 0 && stopCopy) {
            c = dev.memory.takeStopOnly();
        }
        if (c >= 0) {
            int len = dev.memory.chunkLength(c);
            NativeMemory.copy(dev.memory.address() + (long) c * CHUNK, a + REC_HEAD, len);
            chunkRecords++;
            seal(TAG_CHUNK, c, len, false);
            return true;
        }
        if (!stopCopy) {
            return false;
        }
        if (!controlSent) {
            controlSent = true;
            byte[] control = dev.region.controlState();
            NativeMemory.copyFromArray(control, 0, a + REC_HEAD, control.length);
            seal(TAG_CONTROL, 0, control.length, dev.spec.has(FaultKind.CORRUPT_DATA));
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
        synchronized (dev.lock) {
            if (fdClosed) {
                throw new VfioException("VFIO_MIG_GET_PRECOPY_INFO", Errno.EBADF, "closed");
            }
            if (!active || stopCopy || !(dev.state == PRE_COPY || dev.state == PRE_COPY_P2P)) {
                throw new VfioException("VFIO_MIG_GET_PRECOPY_INFO", Errno.EINVAL, dev.name + " is in " + dev.state);
            }
            long inFlight = recLength - recPos;
            long initial = (headerSent ? 0 : REC_HEAD + HEADER_PAYLOAD + REC_TAIL) + dev.memory.initialRecordBytes()
                    + (recInitial ? inFlight : 0);
            long dirtyBytes = dev.memory.dirtyRecordBytes() + (recInitial ? 0 : inFlight);
            if (dev.spec.has(FaultKind.STUCK_INITIAL)) {
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
        synchronized (dev.lock) {
            if (fdClosed) {
                return;
            }
            // closing the fd does not change the device state (as with the kernel, where
            // the session ends with the state, not with the file)
            fdClosed = true;
        }
    }
}
