package dev.ferry.vfio.check;

import dev.ferry.vfio.device.VfioException;

import java.time.Duration;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Runs every device call of the check on one worker thread and waits at most the call timeout
 * for it, so that a device whose ioctl never returns (the kernel's STOP_COPY→PRE_COPY spin, a
 * driver stuck on firmware) shows up as a {@link Rule#NO_HANG} violation instead of a hung check.
 * A call that times out is interrupted (an emulated device notices; a thread stuck in an ioctl
 * does not) and the watchdog refuses every later call: the device is left to its stuck call.
 *
 * <p>Each call's latency is measured on the worker around the call itself, so the hand-over
 * between threads is not counted. Used by the check's thread only.
 */
final class CallWatchdog implements AutoCloseable {
    /** A device call that may fail the way the kernel fails. */
    @FunctionalInterface
    interface DeviceCall<T> {
        T run() throws VfioException;
    }

    /** A call did not return within the timeout. */
    static final class HungCallException extends Exception {
        private static final long serialVersionUID = 1L;

        HungCallException(String message) {
            super(message);
        }
    }

    private final Duration timeout;
    private final ExecutorService worker;
    private String hungCall;
    private long lastNanos;
    private int returned;

    CallWatchdog(Duration timeout, String threadName) {
        this.timeout = timeout;
        this.worker = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, threadName);
            t.setDaemon(true);
            return t;
        });
    }

    /** Runs {@code call} on the worker; {@code what} names it in the hang message. */
    <T> T call(String what, DeviceCall<T> call) throws VfioException, HungCallException {
        if (hungCall != null) {
            throw new HungCallException(what + " not attempted: " + hungCall + " never returned");
        }
        long[] nanos = new long[1];
        Future<T> f = worker.submit(() -> {
            long t0 = System.nanoTime();
            try {
                return call.run();
            } finally {
                nanos[0] = System.nanoTime() - t0;
            }
        });
        try {
            T result = f.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
            lastNanos = nanos[0];
            returned++;
            return result;
        } catch (TimeoutException e) {
            f.cancel(true);
            hungCall = what;
            throw new HungCallException(what + " did not return within " + timeout.toMillis() + " ms");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            f.cancel(true);
            hungCall = what;
            throw new HungCallException(what + " was abandoned: the check was interrupted");
        } catch (ExecutionException e) {
            lastNanos = nanos[0];
            returned++;
            Throwable cause = e.getCause();
            if (cause instanceof VfioException v) {
                throw v;
            }
            if (cause instanceof RuntimeException r) {
                throw r;
            }
            if (cause instanceof Error err) {
                throw err;
            }
            throw new IllegalStateException(what + " failed", cause);
        }
    }

    /** A call without a result. */
    void run(String what, DeviceCall<Void> call) throws VfioException, HungCallException {
        call(what, call);
    }

    /** The latency of the last call that returned (or failed), in nanoseconds. */
    long lastNanos() {
        return lastNanos;
    }

    /** How many calls returned (or failed) within the timeout. */
    int returnedCalls() {
        return returned;
    }

    /** The call that hung, or {@code null}. */
    String hungCall() {
        return hungCall;
    }

    /** Stops the worker; a stuck worker is abandoned (it is a daemon thread). */
    @Override
    public void close() {
        worker.shutdownNow();
    }
}
