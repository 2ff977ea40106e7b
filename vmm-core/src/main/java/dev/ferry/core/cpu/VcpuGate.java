package dev.ferry.core.cpu;

import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The run-state protocol between the thread that drives the engine (the machine's run-state
 * changes) and the vCPU threads. The gate is open (vCPUs run) or closed. A vCPU thread checks
 * {@link #isOpen()} before every page; when it finds the gate closed it finishes nothing more,
 * publishes its state and {@link #park parks}, which is its acknowledgement. {@link #close(Runnable)}
 * returns once every started vCPU thread is parked or has exited — from then on no vCPU touches
 * guest memory or its state, and the lock hand-off makes everything they wrote visible to the
 * caller.
 *
 * <p>A vCPU thread that dies counts as acknowledged (it will not write again) and closes the gate
 * for the others, as QEMU stops a VM on an internal error; its exception is kept for
 * {@link #failure()}. No busy waiting anywhere: waiting is on two conditions of one lock.
 */
public final class VcpuGate {
    private final ReentrantLock lock = new ReentrantLock();
    /** vCPU threads wait here for the gate to open. */
    private final Condition opened = lock.newCondition();
    /** The closing thread waits here for acknowledgements. */
    private final Condition acknowledged = lock.newCondition();
    private volatile boolean open;
    private boolean shutdown;
    private boolean threadsStarted;
    private int started;
    private int parked;
    private int exited;
    private volatile Throwable failure;
    private final String engine;
    private final String threadPrefix;

    /** @param engine the engine's name for messages ({@code "soft"}, {@code "kvm"}); threadPrefix its vCPU threads' */
    public VcpuGate(String engine, String threadPrefix) {
        this.engine = engine;
        this.threadPrefix = threadPrefix;
    }

    /** vCPU threads, per page: may I keep writing? Any other thread: do the vCPUs run? One volatile read. */
    public boolean isOpen() {
        return open;
    }

    /**
     * Opens the gate. The first time, {@code startThreads} runs under the lock and calls
     * {@link #started()} for each thread it starts (so a thread that failed to start is never waited for). Any thread but a vCPU thread.
     */
    public void open(Runnable startThreads) {
        lock.lock();
        try {
            if (shutdown) {
                throw new IllegalStateException(engine + ": engine is closed");
            }
            Throwable f = failure;
            if (f != null) {
                throw new IllegalStateException(engine + ": cannot resume, " + f.getMessage() + "; close the engine", f);
            }
            open = true;
            if (!threadsStarted) {
                threadsStarted = true;
                startThreads.run();
            }
            opened.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Counts one started vCPU thread, whose acknowledgement {@link #close(Runnable)} will wait for. */
    public void started() {
        lock.lock();
        try {
            started++;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Closes the gate, calls {@code wake} (to cut the vCPUs' parks short) and waits, without
     * spinning, until every started vCPU thread has parked or exited. Idempotent. Not from a vCPU
     * thread (it would wait for itself).
     */
    public void close(Runnable wake) {
        lock.lock();
        try {
            open = false;
            wake.run();
            while (parked + exited < started) {
                acknowledged.awaitUninterruptibly();
            }
        } finally {
            lock.unlock();
        }
    }

    /** Closes the gate for good: parked vCPU threads return from {@link #park} with false. */
    public void shutdown() {
        lock.lock();
        try {
            shutdown = true;
            open = false;
            opened.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /**
     * vCPU thread: acknowledges that it stopped and waits until the gate opens (true: run again)
     * or shuts down (false: exit). Returns at once with true when the gate is already open.
     */
    public boolean park() {
        lock.lock();
        try {
            parked++;
            acknowledged.signalAll();
            while (!open && !shutdown) {
                opened.awaitUninterruptibly();
            }
            return !shutdown;
        } finally {
            parked--;
            lock.unlock();
        }
    }

    /**
     * True when the gate is closed and every started vCPU thread has acknowledged: nothing touches
     * guest memory or vCPU state. Any thread; takes the lock.
     */
    public boolean quiescent() {
        lock.lock();
        try {
            return !open && parked + exited >= started;
        } finally {
            lock.unlock();
        }
    }

    /** vCPU thread, last act: it exited, normally ({@code cause == null}) or by dying. */
    public void exited(int vcpu, Throwable cause) {
        lock.lock();
        try {
            exited++;
            if (cause != null) {
                if (failure == null) {
                    failure = new IllegalStateException(engine + " vCPU " + vcpu + " (thread " + threadPrefix
                            + vcpu + ") stopped: " + cause + "; the other vCPUs are stopped", cause);
                }
                open = false;
            }
            acknowledged.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /**
     * The first vCPU thread's death, or null: an {@link IllegalStateException} naming the vCPU,
     * caused by what killed it. Any thread.
     */
    public Throwable failure() {
        return failure;
    }
}
