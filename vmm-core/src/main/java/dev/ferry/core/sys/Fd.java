package dev.ferry.core.sys;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * An owned file descriptor: exactly one object owns it and closes it exactly once. Closing twice
 * is harmless; using a closed Fd is an {@link IllegalStateException}, never a read of a reused
 * fd number.
 */
public final class Fd implements AutoCloseable {
    private static final int CLOSED = -1;
    private final AtomicInteger fd;
    private final String description;

    public Fd(int fd, String description) {
        if (fd < 0) {
            throw new IllegalArgumentException("negative fd " + fd + " for " + description);
        }
        this.fd = new AtomicInteger(fd);
        this.description = description;
    }

    /** The fd number, for a system call made now. */
    public int get() {
        int v = fd.get();
        if (v == CLOSED) {
            throw new IllegalStateException(description + ": fd already closed");
        }
        return v;
    }

    public boolean isOpen() {
        return fd.get() != CLOSED;
    }

    public String description() {
        return description;
    }

    /**
     * Gives up ownership: returns the number and leaves this object closed without closing the
     * descriptor (for handing an fd to a peer that now owns it).
     */
    public int release() {
        int v = fd.getAndSet(CLOSED);
        if (v == CLOSED) {
            throw new IllegalStateException(description + ": fd already closed");
        }
        return v;
    }

    @Override
    public void close() {
        int v = fd.getAndSet(CLOSED);
        if (v != CLOSED) {
            Sys.close(v, description);
        }
    }

    @Override
    public String toString() {
        int v = fd.get();
        return description + (v == CLOSED ? " (closed)" : " (fd " + v + ")");
    }
}
