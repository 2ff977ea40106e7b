package dev.ferry.core.sys;

/** An eventfd: a counter the kernel and peers (vhost-user, KVM irqfd) signal through. */
public final class EventFd implements AutoCloseable {
    private final Fd fd;
    private final long buf;

    public EventFd(int flags) {
        this.fd = Sys.eventfd(0, flags | Linux.EFD_CLOEXEC);
        this.buf = NativeMemory.allocate(8);
    }

    public Fd fd() {
        return fd;
    }

    public void signal() {
        NativeMemory.putLong(buf, 1);
        Sys.write(fd, buf, 8);
    }

    /** Reads and resets the counter (blocks unless created with EFD_NONBLOCK). */
    public long consume() {
        Sys.read(fd, buf, 8);
        return NativeMemory.getLong(buf);
    }

    private boolean closed;

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            fd.close();
            NativeMemory.free(buf);
        }
    }
}
