package dev.ferry.core.sys;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * An eventfd: a counter the kernel and peers (vhost-user, KVM irqfd) signal through.
 *
 * <p>Thread-safe: any number of threads may {@link #signal}, {@link #consume} and {@link #close}
 * at once. Each call writes or reads the counter with glibc's {@code eventfd_write} /
 * {@code eventfd_read}, so no buffer is shared between callers. A use count keeps the fd open
 * while a call is inside its system call: {@link #close} marks the eventfd closed at once (later
 * calls throw {@link IllegalStateException}; none ever reaches a reused fd number), then closes
 * the fd when the last call in flight has left. A {@code consume()} blocked on a blocking eventfd
 * is woken by the close and throws {@link IllegalStateException}.
 *
 * <p>{@link #fd()} lends the number to the kernel (irqfd, ioeventfd, epoll): whoever holds it
 * must stop using it before the owner closes this object; nobody but this object closes it.
 */
public final class EventFd implements AutoCloseable {
    /** {@link #state} bit: closed, no new calls admitted. */
    private static final int CLOSED = 1 << 31;
    /** {@link #state} bits: calls inside a system call on the fd. */
    private static final int USERS = ~CLOSED;

    private final Fd fd;
    private final boolean blocking;
    /** {@link #CLOSED} | number of calls in flight. The fd is closed once this reads exactly CLOSED. */
    private final AtomicInteger state = new AtomicInteger();

    /** {@code flags}: {@link Linux#EFD_NONBLOCK}, {@link Linux#EFD_SEMAPHORE}; CLOEXEC is always added. */
    public EventFd(int flags) {
        this.fd = Sys.eventfd(0, flags | Linux.EFD_CLOEXEC);
        this.blocking = (flags & Linux.EFD_NONBLOCK) == 0;
    }

    private EventFd(Fd fd) {
        this.fd = fd;
        this.blocking = false;
    }

    /**
     * Takes ownership of an eventfd a peer sent (a vhost-user front-end's kick or call fd), after
     * checking that it is one: anything else — a pipe, a file, a socket — is refused and closed,
     * since an event loop would spin on it or block reading it. Made non-blocking (O_NONBLOCK is
     * shared with the peer's descriptor; eventfd users set it anyway), as a device loop needs.
     *
     * @throws IllegalArgumentException naming what the descriptor is instead
     */
    public static EventFd adopt(Fd fd) {
        String target;
        try {
            target = java.nio.file.Files.readSymbolicLink(java.nio.file.Path.of("/proc/self/fd/" + fd.get())).toString();
        } catch (java.io.IOException | RuntimeException e) {
            fd.close();
            throw new IllegalArgumentException(fd.description() + ": cannot tell what the descriptor is: " + e, e);
        }
        if (!target.equals("anon_inode:[eventfd]")) {
            fd.close();
            throw new IllegalArgumentException(fd.description() + " is " + target + ", not an eventfd");
        }
        try {
            Sys.setNonBlocking(fd);
        } catch (RuntimeException e) {
            fd.close();
            throw new IllegalArgumentException(fd.description() + ": " + e.getMessage(), e);
        }
        return new EventFd(fd);
    }

    public Fd fd() {
        return fd;
    }

    /** True when created with {@link Linux#EFD_NONBLOCK}: reads of a zero counter fail instead of blocking. */
    public boolean isNonBlocking() {
        return !blocking;
    }

    /** Adds one to the counter. After {@link #close}: {@link IllegalStateException}. */
    public void signal() {
        int n = enter("signal");
        try {
            Sys.eventfdWrite(n, 1);
        } finally {
            exit();
        }
    }

    /**
     * Reads and resets the counter (in {@link Linux#EFD_SEMAPHORE} mode: takes one). Blocks while
     * the counter is 0 unless created with {@link Linux#EFD_NONBLOCK}, in which case an empty
     * counter is a {@link NativeCallException} ({@code read: EAGAIN}).
     *
     * @throws IllegalStateException after {@link #close}, or when closed while this call blocked
     */
    public long consume() {
        int n = enter("consume");
        long v;
        boolean woken;
        try {
            v = Sys.eventfdRead(n);
            woken = blocking && (state.get() & CLOSED) != 0;
            if (woken) {
                passWakeOn(n);
            }
        } finally {
            exit();
        }
        if (woken) {
            throw new IllegalStateException(fd.description() + ": closed while consume() waited");
        }
        return v;
    }

    /**
     * Reads and resets the counter, or returns 0 when it is 0 — for event loops, which call it
     * when epoll reported the fd readable. Never blocks on an {@link Linux#EFD_NONBLOCK} eventfd;
     * on a blocking one it blocks like {@link #consume} when the counter is 0.
     *
     * @throws IllegalStateException after {@link #close}
     */
    public long consumeOrZero() {
        int n = enter("consume");
        try {
            return Sys.eventfdReadOrZero(n);
        } finally {
            exit();
        }
    }

    /**
     * Stops new calls at once and closes the fd once no call is inside a system call; returns
     * after the fd is closed. Idempotent; a concurrent second close waits for the first.
     */
    @Override
    public void close() {
        int before = state.getAndUpdate(s -> s | CLOSED);
        if ((before & CLOSED) == 0 && blocking && (before & USERS) != 0) {
            // A consume() may be blocked in read(2): wake it (it then passes the wake-up on). The
            // fd stays open: only this method closes it, below.
            Sys.eventfdWrite(fd.get(), 1);
        }
        boolean interrupted = false;
        synchronized (this) {
            while (state.get() != CLOSED) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            fd.close();
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /** Admits one call; returns the fd number, which stays open until the matching {@link #exit}. */
    private int enter(String op) {
        for (;;) {
            int s = state.get();
            if ((s & CLOSED) != 0) {
                throw new IllegalStateException(fd.description() + ": " + op + "() after close");
            }
            if (state.compareAndSet(s, s + 1)) {
                return fd.get();
            }
        }
    }

    private void exit() {
        if (state.decrementAndGet() == CLOSED) {
            synchronized (this) {
                notifyAll();
            }
        }
    }

    /**
     * A consume() woken by {@link #close}: one read may take the whole counter, so another blocked
     * consume() needs its own wake-up. Called while this call still holds its use, so the fd is open.
     */
    private void passWakeOn(int n) {
        if ((state.get() & USERS) > 1) {
            Sys.eventfdWrite(n, 1);
        }
    }
}
