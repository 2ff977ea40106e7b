package dev.ferry.core.sys;

/**
 * A timerfd on {@link Linux#CLOCK_MONOTONIC}, non-blocking: readable in epoll once the armed time
 * has passed, its read returning how many expirations happened since the last read. Owns the fd
 * and one {@code struct itimerspec} of native memory (layout in {@link Linux#ITIMERSPEC_SIZE}),
 * closes both once.
 *
 * <p>Thread-safe: every method runs under this object's monitor (none blocks), so arming from
 * one thread while an event loop reads expirations on another is fine; after {@link #close}
 * every method but close throws {@link IllegalStateException}.
 */
public final class TimerFd implements AutoCloseable {
    private static final long NANOS_PER_SECOND = 1_000_000_000L;
    private final Fd fd;
    /** struct itimerspec for settime; its first 8 bytes also receive read(2)'s expiration count. */
    private final long buf;
    private boolean closed;

    public TimerFd() {
        this.fd = Sys.timerfdCreate(Linux.CLOCK_MONOTONIC, Linux.TFD_NONBLOCK | Linux.TFD_CLOEXEC);
        this.buf = NativeMemory.allocate(Linux.ITIMERSPEC_SIZE);
    }

    public Fd fd() {
        return fd;
    }

    /**
     * Fires once, {@code delayNanos} from now (at once, on the next loop turn, when ≤ 0). Replaces
     * any earlier arming and forgets expirations not yet read.
     */
    public synchronized void arm(long delayNanos) {
        settime(Math.max(delayNanos, 1), 0);
    }

    /** Fires {@code delayNanos} from now and then every {@code periodNanos} (> 0). */
    public synchronized void armPeriodic(long delayNanos, long periodNanos) {
        if (periodNanos <= 0) {
            throw new IllegalArgumentException("period " + periodNanos + " ns must be positive");
        }
        settime(Math.max(delayNanos, 1), periodNanos);
    }

    /** Stops the timer and forgets expirations not yet read: {@link #expirations()} returns 0 until armed again. */
    public synchronized void disarm() {
        settime(0, 0);
    }

    /** Expirations since the last call (or arming), 0 when none; never blocks. */
    public synchronized long expirations() {
        checkOpen();
        if (Sys.readNonBlocking(fd, buf, 8) < 0) {
            return 0;
        }
        return NativeMemory.getLong(buf);
    }

    private void settime(long valueNanos, long intervalNanos) {
        checkOpen();
        putTimespec(buf + Linux.ITIMERSPEC_INTERVAL_OFFSET, intervalNanos);
        putTimespec(buf + Linux.ITIMERSPEC_VALUE_OFFSET, valueNanos);
        Sys.timerfdSettime(fd, 0, buf);
    }

    private static void putTimespec(long at, long nanos) {
        NativeMemory.putLong(at + Linux.TIMESPEC_SEC_OFFSET, nanos / NANOS_PER_SECOND);
        NativeMemory.putLong(at + Linux.TIMESPEC_NSEC_OFFSET, nanos % NANOS_PER_SECOND);
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("timerfd closed");
        }
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            fd.close();
            NativeMemory.free(buf);
        }
    }

    @Override
    public String toString() {
        return fd.toString();
    }
}
