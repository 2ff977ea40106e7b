package dev.ferry.vfio.emulated;

import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;

import java.util.Arrays;

import static dev.ferry.vfio.emulated.EmulatedVfioDevice.CHUNK;
import static dev.ferry.vfio.emulated.StateRecords.REC_HEAD;
import static dev.ferry.vfio.emulated.StateRecords.REC_TAIL;
import static dev.ferry.vfio.emulated.StateRecords.set;
import static dev.ferry.vfio.emulated.StateRecords.takeFirst;
import static dev.ferry.vfio.emulated.StateRecords.test;

/**
 * An emulated device's bulk internal state (off-heap, {@link EmulatedVfSpec#stateBytes()}) in
 * 64 KiB chunks, and which chunks a saving session still owes: the initial ones pre-copy offers,
 * the ones changed after they went out (dirty), and the ones only STOP_COPY sends. Guarded by the
 * device's lock; owns its mapping.
 */
final class StateMemory implements AutoCloseable {
    private final long bytes;
    private final int chunks;
    private final int initialChunks;
    private Mapping memory;
    private final long[] initialTodo;
    private final long[] dirty;
    private final long[] stopOnly;
    private boolean tracking;

    StateMemory(EmulatedVfSpec spec) {
        this.bytes = spec.stateBytes();
        this.chunks = (int) ((bytes + CHUNK - 1) / CHUNK);
        this.initialChunks = (int) ((spec.initialBytes() + CHUNK - 1) / CHUNK);
        this.memory = bytes == 0 ? null : Mapping.anonymous(bytes);
        int words = (chunks + 63) / 64;
        this.initialTodo = new long[words];
        this.dirty = new long[words];
        this.stopOnly = new long[words];
    }

    long bytes() {
        return bytes;
    }

    int chunks() {
        return chunks;
    }

    long address() {
        return memory.address();
    }

    int chunkLength(int i) {
        return (int) Math.min(CHUNK, bytes - (long) i * CHUNK);
    }

    /** Deterministic non-zero content (after zeroing), so state that goes missing is noticed. */
    void fill(long seed) {
        if (memory == null) {
            return;
        }
        long base = memory.address();
        NativeMemory.fill(base, bytes, (byte) 0);
        long x = seed ^ 0x5DEECE66DL;
        for (long off = 0; off + 8 <= bytes; off += 4096) {
            x = x * 6364136223846793005L + 1442695040888963407L;
            NativeMemory.putLong(base + off, x);
        }
    }

    void putLong(long offset, long value) {
        NativeMemory.putLong(memory.address() + offset, value);
        if (!tracking) {
            return;
        }
        int c = (int) (offset / CHUNK);
        if (!test(initialTodo, c) && !test(stopOnly, c)) {
            set(dirty, c); // already sent: send again
        }
    }

    /** A saving session starts: everything is owed, the part past {@code initial} only to STOP_COPY. */
    void startSaving(boolean precopy) {
        Arrays.fill(initialTodo, 0);
        Arrays.fill(dirty, 0);
        Arrays.fill(stopOnly, 0);
        for (int i = 0; i < chunks; i++) {
            set(precopy && i >= initialChunks ? stopOnly : initialTodo, i);
        }
        tracking = true;
    }

    void stopSaving() {
        tracking = false;
    }

    int takeInitial() {
        return takeFirst(initialTodo);
    }

    int takeDirty() {
        return takeFirst(dirty);
    }

    int takeStopOnly() {
        return takeFirst(stopOnly);
    }

    long initialRecordBytes() {
        return recordBytes(initialTodo);
    }

    long dirtyRecordBytes() {
        return recordBytes(dirty);
    }

    /** Record bytes of every chunk still owed; every chunk when no session runs. */
    long owedRecordBytes() {
        if (!tracking) {
            long total = 0;
            for (int i = 0; i < chunks; i++) {
                total += REC_HEAD + chunkLength(i) + REC_TAIL;
            }
            return total;
        }
        return recordBytes(initialTodo) + recordBytes(dirty) + recordBytes(stopOnly);
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

    /** Takes a resumed image's memory as the state; closes the old one. */
    void adopt(Mapping staging) {
        Mapping old = memory;
        memory = staging;
        old.close();
    }

    /** What a device that loses state does (the lose-state fault): its first chunk reads as zero. */
    void zeroFirstChunk() {
        if (memory != null) {
            NativeMemory.fill(memory.address(), Math.min(bytes, CHUNK), (byte) 0);
        }
    }

    long digest() {
        return memory == null ? 0 : ContentDigest.of(memory.address(), bytes);
    }

    @Override
    public void close() {
        if (memory != null) {
            memory.close();
            memory = null;
        }
    }
}
