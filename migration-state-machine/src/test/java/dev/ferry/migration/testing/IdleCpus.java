package dev.ferry.migration.testing;

import dev.ferry.core.cpu.CpuEngine;

/**
 * A {@link CpuEngine} without vCPUs, for machines in stream tests: nothing runs, so guest memory
 * changes only when the test writes it. {@link #pause()} and {@link #resume()} record the state
 * and count the calls; the throttle is stored as auto-converge set it.
 *
 * <p>Thread-safe (the migration thread and the test thread both look at it).
 */
public final class IdleCpus implements CpuEngine {
    private boolean running;
    private int pauses;
    private int resumes;
    private int throttle;
    private boolean closed;

    /** Engine whose (absent) vCPUs are stopped, as for a VM in prelaunch or inmigrate. */
    public IdleCpus() {
        this(false);
    }

    /** @param running true for a machine created in the running state */
    public IdleCpus(boolean running) {
        this.running = running;
    }

    @Override
    public String name() {
        return "idle";
    }

    @Override
    public int vcpuCount() {
        return 0;
    }

    @Override
    public synchronized void resume() {
        checkOpen();
        running = true;
        resumes++;
    }

    @Override
    public synchronized void pause() {
        checkOpen();
        running = false;
        pauses++;
    }

    @Override
    public synchronized void setThrottlePercentage(int percentage) {
        if (percentage < 0 || percentage > 99) {
            throw new IllegalArgumentException("throttle must be in 0..99 %, got " + percentage);
        }
        throttle = percentage;
    }

    @Override
    public synchronized int throttlePercentage() {
        return throttle;
    }

    public synchronized boolean running() {
        return running;
    }

    public synchronized int pauses() {
        return pauses;
    }

    public synchronized int resumes() {
        return resumes;
    }

    @Override
    public synchronized void close() {
        running = false;
        closed = true;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("idle CPU engine used after close");
        }
    }
}
