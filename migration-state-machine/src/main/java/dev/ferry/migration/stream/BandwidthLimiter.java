package dev.ferry.migration.stream;

import java.util.function.LongSupplier;

/**
 * max-bandwidth as QEMU applies it: a byte budget per 100 ms window ({@code BUFFER_DELAY}). The
 * sender asks {@link #limitReached()} between pages and, when it is, waits for the next window
 * with {@link #awaitNextWindow()}. A limit of 0 means unlimited. Migration thread only, except
 * {@link #setBytesPerSecond}, which QMP may call at any time.
 */
public final class BandwidthLimiter {
    public static final long WINDOW_NANOS = 100_000_000L;
    private final LongSupplier nanoClock;
    private volatile long bytesPerSecond;
    private long windowStart;
    private long windowBytes;

    public BandwidthLimiter(long bytesPerSecond, LongSupplier nanoClock) {
        this.bytesPerSecond = bytesPerSecond;
        this.nanoClock = nanoClock;
        this.windowStart = nanoClock.getAsLong();
    }

    public void setBytesPerSecond(long v) {
        this.bytesPerSecond = v;
    }

    public long bytesPerSecond() {
        return bytesPerSecond;
    }

    public void account(long bytes) {
        windowBytes += bytes;
    }

    public boolean limitReached() {
        long bps = bytesPerSecond;
        if (bps <= 0) {
            return false;
        }
        roll();
        return windowBytes >= bps / 10;
    }

    /** Sleeps until the current window ends (only if the budget is spent). */
    public void awaitNextWindow() throws InterruptedException {
        if (!limitReached()) {
            return;
        }
        long wait = windowStart + WINDOW_NANOS - nanoClock.getAsLong();
        if (wait > 0) {
            Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
        }
        roll();
    }

    private void roll() {
        long now = nanoClock.getAsLong();
        if (now - windowStart >= WINDOW_NANOS) {
            windowStart = now;
            windowBytes = 0;
        }
    }
}
