package dev.ferry.vfio.emulated;

import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.PrecopyInfo;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioException;

import static dev.ferry.vfio.emulated.EmulatedVfioDevice.CHUNK;
import static dev.ferry.vfio.emulated.StateRecords.*;

final class ResumeSession implements VfioDataFd {
    private final EmulatedVfioDevice dev;
    private Mapping staging;
    private final Mapping scratch;
    private final long[] received;

    ResumeSession(EmulatedVfioDevice dev) {
        this.dev = dev;
        this.staging = dev.memory.bytes() == 0 ? null : Mapping.anonymous(dev.memory.bytes());
        this.scratch = Mapping.anonymous(CONTROL_MAX + REC_TAIL);
        this.received = new long[(dev.memory.chunks() + 63) / 64];
    }

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
        throw new VfioException("VFIO_MIG_GET_PRECOPY_INFO", Errno.EINVAL, dev.name + " is in " + dev.state);
    }

    @Override
    public long write(long address, long len) throws VfioException {
        synchronized (dev.lock) {
            if (fdClosed) {
                throw new VfioException("write(data_fd)", Errno.EBADF, "closed");
            }
            if (!active) {
                throw new VfioException("write(data_fd)", Errno.ENODEV, "the resuming session of " + dev.name + " ended");
            }
            if (error != null && !dev.spec.has(FaultKind.ACCEPT_GARBAGE)) {
                throw new VfioException("write(data_fd)", Errno.EINVAL, error);
            }
            long done = 0;
            while (done < len) {
                long n = consume(address + done, len - done);
                if (n < 0) {
                    if (dev.spec.has(FaultKind.ACCEPT_GARBAGE)) {
                        dev.loadedBytes += len;
                        return len;
                    }
                    throw new VfioException("write(data_fd)", Errno.EINVAL, error);
                }
                done += n;
            }
            dev.loadedBytes += done;
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
            case TAG_CHUNK -> index < 0 || index >= dev.memory.chunks() ? "chunk " + index + " outside 0.." + (dev.memory.chunks() - 1)
                    : length != dev.memory.chunkLength(index) ? "chunk " + index + " of " + length + " bytes, expected "
                    + dev.memory.chunkLength(index) : null;
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
                if (bytes != dev.memory.bytes() || chunk != CHUNK) {
                    return "state of " + bytes + " bytes in " + chunk + "-byte chunks; this device has "
                            + dev.memory.bytes() + " in " + CHUNK;
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

    /** RESUMING→STOP: checks the image (EINVAL naming the first problem) and returns it. */
    Image validate() throws VfioException {
        String op = "arc RESUMING->STOP";
        if (dev.spec.has(FaultKind.REJECT_LOAD)) {
            throw new VfioException(op, Errno.EINVAL, "injected fault: reject-load");
        }
        boolean lenient = dev.spec.has(FaultKind.ACCEPT_GARBAGE);
        String problem = error;
        if (problem == null && phase != 3) {
            problem = "truncated state: " + (headerSeen ? "no end record" : "no header") + " after "
                    + dev.loadedBytes + " bytes";
        }
        if (problem == null && endCount != chunkRecords) {
            problem = "end record counts " + endCount + " chunk records, " + chunkRecords + " arrived";
        }
        if (problem == null) {
            for (int i = 0; i < dev.memory.chunks(); i++) {
                if (!test(received, i)) {
                    problem = "chunk " + i + " of the state never arrived";
                    break;
                }
            }
        }
        if (problem == null && control == null) {
            problem = "no control record";
        }
        byte[] devBytes = null;
        if (problem == null) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(control);
            b.getLong();
            b.getLong();
            int n = b.getInt();
            if (n != control.length - CONTROL_PREFIX) {
                problem = "control record says " + n + " device bytes, holds " + (control.length - CONTROL_PREFIX);
            } else {
                devBytes = java.util.Arrays.copyOfRange(control, CONTROL_PREFIX, control.length);
                try {
                    dev.checkDeviceControl(devBytes);
                } catch (IllegalArgumentException e) {
                    problem = "control state rejected: " + e.getMessage();
                    devBytes = null;
                }
            }
        }
        if (problem != null && !lenient) {
            throw new VfioException(op, Errno.EINVAL, problem);
        }
        return new Image(staging, control == null || control.length < CONTROL_PREFIX ? null : control, devBytes);
    }

    /**
     * A resumed image the device may apply: the state memory (the session no longer owns it),
     * the control record (null when a lenient device got none), and its subclass part when it
     * was accepted.
     */
    record Image(Mapping memory, byte[] control, byte[] deviceControl) {
    }

    /** Hands the staged memory over to whoever applies the image. */
    void release() {
        staging = null;
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
        synchronized (dev.lock) {
            fdClosed = true;
        }
    }
}
