package dev.ferry.vhostuser.backend;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sys;
import dev.ferry.vhostuser.proto.VhostUserException;


/**
 * The front-end's shared dirty log (SET_LOG_BASE with LOG_SHMFD), mapped from its memfd: one bit
 * per 4 KiB page of guest-physical address space.
 * <pre>
 *   byte  gpa / 4096 / 8,  bit  (gpa / 4096) % 8        the specification's layout
 *   u64   gpa / 4096 / 64, bit  (gpa / 4096) % 64       the same bit on a little-endian host,
 *                                                       set here with an atomic OR, as the
 *                                                       front-end harvests with atomic swaps
 * </pre>
 * {@link #mark} runs on any thread that writes guest memory (the device's loop and its I/O
 * threads) and allocates nothing. A page beyond the log's end cannot be logged: it is counted
 * ({@link BackendStats#unloggable()}) — the front-end sized its log too small for its own memory table.
 *
 * <p>Owns the descriptor and the mapping; {@link #close} unmaps once. A retired log must not be
 * closed while a writer may still hold it: the back-end closes logs only with its device drained.
 */
final class VhostLog implements AutoCloseable {
    /** Most log a front-end may hand over: 64 MiB covers 2 TiB of guest-physical space. */
    static final long MAX_SIZE = 64L << 20;
    private final Fd fd;
    private final Mapping mapping;
    private final long base;
    private final long size;

    private VhostLog(Fd fd, Mapping mapping, long size) {
        this.fd = fd;
        this.mapping = mapping;
        this.base = mapping.address();
        this.size = size;
    }

    /**
     * Maps {@code size} bytes of {@code fd} (owned from here on, closed on failure) from
     * {@code offset}, after checking that the file holds them, so no access can fault.
     */
    static VhostLog map(Fd fd, long size, long offset) throws VhostUserException {
        try {
            long fileSize = Sys.fstatSizeAndAllocated(fd)[0];
            if (size <= 0 || size > MAX_SIZE || offset < 0 || offset > fileSize || size > fileSize - offset) {
                throw new VhostUserException("SET_LOG_BASE log of " + size + " bytes at offset " + offset
                        + " does not fit the front-end's file of " + fileSize + " bytes (or exceeds " + MAX_SIZE + ")");
            }
            // Whole u64 words are ORed: map to the next 8 bytes, still inside the file's last page.
            long mapped = (size + 7) & ~7L;
            return new VhostLog(fd, Mapping.shared(fd, offset, mapped), size);
        } catch (RuntimeException e) {
            fd.close();
            throw new VhostUserException("SET_LOG_BASE: cannot map the log: " + e.getMessage(), e);
        } catch (VhostUserException e) {
            fd.close();
            throw e;
        }
    }

    /** Sets the bit of every page {@code [gpa, gpa + length)} touches; false when a page lies past the log. */
    boolean mark(long gpa, long length) {
        if (length <= 0) {
            return true;
        }
        long first = gpa >>> 12;
        long last = (gpa + length - 1) >>> 12;
        for (long p = first; p <= last; p++) {
            if ((p >>> 3) >= size) {
                return false;
            }
            NativeMemory.getAndOrLong(base + ((p >>> 6) << 3), 1L << (p & 63));
        }
        return true;
    }

    /** True when the page holding {@code gpa} is marked (tests and the checker's reading of it). */
    boolean isMarked(long gpa) {
        long p = gpa >>> 12;
        return (p >>> 3) < size && (NativeMemory.getLongVolatile(base + ((p >>> 6) << 3)) & (1L << (p & 63))) != 0;
    }

    long size() {
        return size;
    }

    @Override
    public void close() {
        mapping.close();
        fd.close();
    }
}
