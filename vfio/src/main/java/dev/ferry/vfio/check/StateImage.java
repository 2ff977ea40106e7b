package dev.ferry.vfio.check;

import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;

/**
 * A device's saved migration data, off-heap: what one saving session produced, in order, ready
 * to be written into another instance's resuming fd. Grows by doubling up to a cap, so a device
 * that never ends its stream is stopped at the cap rather than exhausting memory. Owns its
 * mapping; used by one thread.
 */
final class StateImage implements AutoCloseable {
    private static final long INITIAL = 1L << 20;

    private final long cap;
    private Mapping buffer;
    private long size;

    StateImage(long cap) {
        this.cap = cap;
        this.buffer = Mapping.anonymous(Math.min(INITIAL, cap));
    }

    /** Bytes held. */
    long size() {
        return size;
    }

    long address() {
        return buffer.address();
    }

    long cap() {
        return cap;
    }

    /**
     * Makes room for at least one more byte and returns how many bytes may be appended at
     * {@link #tail()}; 0 when the cap is reached.
     */
    long room() {
        if (size == buffer.length()) {
            if (size >= cap) {
                return 0;
            }
            Mapping bigger = Mapping.anonymous(Math.min(cap, buffer.length() * 2));
            NativeMemory.copy(buffer.address(), bigger.address(), size);
            buffer.close();
            buffer = bigger;
        }
        return buffer.length() - size;
    }

    /** Where the next bytes go. */
    long tail() {
        return buffer.address() + size;
    }

    /** Counts {@code n} bytes written at {@link #tail()}. */
    void appended(long n) {
        if (n < 0 || size + n > buffer.length()) {
            throw new IllegalArgumentException("appended " + n + " bytes with " + (buffer.length() - size) + " free");
        }
        size += n;
    }

    @Override
    public void close() {
        buffer.close();
    }
}
