package dev.ferry.core.device;

import dev.ferry.core.sys.Epoll;
import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.EventFd;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.TimerFd;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.Callable;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.FutureTask;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.IntConsumer;
import java.util.function.LongConsumer;

/**
 * The machine's device event loop: one daemon thread, {@code ferry-devices-<name>}, waiting on one
 * epoll for the eventfds, sockets and timers devices register, and running their handlers.
 *
 * <h2>Which thread runs what</h2>
 * <ul>
 *   <li><b>Handlers</b> (given to {@link #add}, {@link #addCounted}, {@link #addFd},
 *       {@link #timer}) run on the loop thread, one at a time, and never while the loop is paused.
 *   <li><b>Tasks</b> ({@link #execute}, {@link #call}) run on the loop thread between handlers,
 *       in submission order, <em>also while paused</em>: with the VM stopped, devices drain and
 *       save their state through {@link #call}.
 *   <li>Every public method may be called from any thread. Registering, {@link Registration#close}
 *       and {@link Timer#cancel} take effect on the loop thread (inline when called there), so from
 *       another thread they wait for a running handler to return: do not call them while holding
 *       a lock a handler may wait for.
 * </ul>
 *
 * <h2>Run state</h2>
 * Running once constructed; the machine pauses it on VM stop and resumes it on VM start.
 * <pre>
 *   state     pause()                      resume()        close()
 *   RUNNING   PAUSED, once no handler runs  RUNNING         CLOSED (joins)
 *   PAUSED    PAUSED                        RUNNING         CLOSED (joins)
 *   CLOSED    CLOSED                        CLOSED          CLOSED
 * </pre>
 * While paused the thread waits on a condition, not on epoll, so ready fds are not spun on: they
 * stay ready (every registration is level-triggered; {@link Linux#EPOLLET} and
 * {@link Linux#EPOLLONESHOT} are refused) and their handlers run once resumed — an eventfd
 * signalled during the pause fires once after {@link #resume}, a timer that expired fires then.
 *
 * <h2>Ownership</h2>
 * The loop owns its epoll fd, its wake-up eventfd and the timerfds behind its {@link Timer}s, and
 * closes them in {@link #close}. Eventfds and sockets passed in stay the caller's: the caller
 * closes the {@link Registration} first (the loop then never touches the fd again) and the fd
 * after.
 *
 * <p>The hot path allocates nothing: one reused native epoll_event array, a
 * {@link RegistrationTable} indexed by the epoll token, an uncontended lock around each handler.
 */
public final class DeviceEventLoop implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DeviceEventLoop.class);
    private static final int MAX_EVENTS = 64;
    /** epoll token of the wake-up eventfd; never a {@link RegistrationTable} token (those are ≥ 0). */
    private static final long WAKE_TOKEN = -1L;
    private static final int EDGE_OR_ONESHOT = Linux.EPOLLET | Linux.EPOLLONESHOT;

    private final String name;
    private final Epoll epoll;
    /** Signalled by task submitters and close() to get the loop out of epoll_wait. */
    private final EventFd wake;
    private final Thread thread;

    private final ReentrantLock lock = new ReentrantLock();
    /** Signalled on resume, close, new tasks (for a paused loop) and the end of a handler (for pause()). */
    private final Condition changed = lock.newCondition();
    // Guarded by lock.
    private final ArrayDeque<Runnable> tasks = new ArrayDeque<>();
    private boolean pauseRequested;
    private boolean dispatching;
    private boolean closing;

    /** Loop thread only: what each epoll token stands for. */
    private final RegistrationTable<LoopSource> sources = new RegistrationTable<>();

    /** Starts the loop thread, running (not paused). */
    public DeviceEventLoop(String name) {
        this.name = Objects.requireNonNull(name, "name");
        Epoll e = new Epoll(MAX_EVENTS);
        EventFd w = null;
        try {
            w = new EventFd(Linux.EFD_NONBLOCK);
            e.add(w.fd(), Linux.EPOLLIN, WAKE_TOKEN);
        } catch (RuntimeException | Error failure) {
            if (w != null) {
                w.close();
            }
            e.close();
            throw failure;
        }
        this.epoll = e;
        this.wake = w;
        this.thread = new Thread(this::run, "ferry-devices-" + name);
        thread.setDaemon(true);
        thread.start();
    }

    public String name() {
        return name;
    }

    /** True on the loop thread (in a handler or task). */
    public boolean inLoopThread() {
        return Thread.currentThread() == thread;
    }

    /** A registered fd; {@link #close} removes it. */
    public interface Registration extends AutoCloseable {
        /**
         * Stops delivery: once this returns, the handler is not running and will not run again
         * (called from the loop thread — in a handler — the current handler finishes normally).
         * Idempotent; a no-op once the loop is closed.
         */
        @Override
        void close();
    }

    /**
     * Runs {@code onSignal} on the loop thread each time {@code fd} was signalled, after reading
     * and resetting its counter: many signals between two runs coalesce into one run.
     *
     * @param fd a {@link Linux#EFD_NONBLOCK} eventfd, so the loop never blocks on it; still the
     *           caller's, to close after the registration
     * @throws IllegalStateException once the loop is closed
     */
    public Registration add(EventFd fd, Runnable onSignal) {
        Objects.requireNonNull(onSignal, "onSignal");
        return addCounted(fd, count -> onSignal.run());
    }

    /**
     * Like {@link #add}, with the counter value read: how many signals this run stands for (1 per
     * run in {@link Linux#EFD_SEMAPHORE} mode).
     */
    public Registration addCounted(EventFd fd, LongConsumer onSignals) {
        Objects.requireNonNull(onSignals, "onSignals");
        if (!fd.isNonBlocking()) {
            throw new IllegalArgumentException(name + ": " + fd.fd() + " is blocking; the device loop reads eventfds "
                    + "without waiting: create it with EFD_NONBLOCK");
        }
        return call(() -> register(new LoopSource.EventFdSource(this, fd, onSignals), Linux.EPOLLIN));
    }

    /**
     * Runs {@code onReady} on the loop thread with the ready events while {@code fd} is ready for
     * any of {@code epollEvents} (level-triggered: a handler that leaves the socket readable is
     * called again). {@link Linux#EPOLLHUP} and {@link Linux#EPOLLERR} are always reported; on
     * them the handler closes the registration, or it is called again and again.
     *
     * @param fd the caller's, to close after the registration
     * @throws IllegalArgumentException for {@link Linux#EPOLLET} or {@link Linux#EPOLLONESHOT},
     *         whose events a pause would lose
     */
    public Registration addFd(Fd fd, int epollEvents, IntConsumer onReady) {
        Objects.requireNonNull(fd, "fd");
        Objects.requireNonNull(onReady, "onReady");
        if ((epollEvents & EDGE_OR_ONESHOT) != 0) {
            throw new IllegalArgumentException(name + ": " + fd + ": EPOLLET/EPOLLONESHOT registrations are refused; "
                    + "events that arrive while the loop is paused must still be reported after resume");
        }
        return call(() -> register(new LoopSource.FdSource(this, fd, onReady), epollEvents));
    }

    /**
     * A timer, not armed, whose expiries run {@code onExpiry} on the loop thread. The loop owns its
     * timerfd (CLOCK_MONOTONIC) and closes it with the timer or the loop.
     */
    public Timer timer(Runnable onExpiry) {
        Objects.requireNonNull(onExpiry, "onExpiry");
        return call(() -> {
            LoopSource.TimerSource s = register(new LoopSource.TimerSource(this, new TimerFd(), onExpiry), Linux.EPOLLIN);
            return new Timer(s);
        });
    }

    /** A one-shot timer on the loop; see {@link #timer}. */
    public final class Timer implements Registration {
        private final LoopSource.TimerSource source;

        private Timer(LoopSource.TimerSource source) {
            this.source = source;
        }

        /**
         * Fires once, {@code delayNanos} from now (on the next loop turn when ≤ 0), replacing an
         * earlier arming. Any thread, without waiting for the loop; an expiry that comes while the
         * loop is paused fires once resumed.
         *
         * @throws IllegalStateException once the timer or the loop is closed
         */
        public void arm(long delayNanos) {
            source.timerFd.arm(delayNanos);
        }

        /**
         * Disarms: once this returns the handler does not run for an expiry armed before (called
         * from the loop thread, effective at once; from elsewhere it waits for a running handler).
         * A no-op once closed.
         */
        public void cancel() {
            onLoopUnlessClosed(() -> {
                if (source.token != RegistrationTable.NONE) {
                    source.timerFd.disarm();
                }
            });
        }

        /** Removes the timer and closes its timerfd; see {@link Registration#close}. */
        @Override
        public void close() {
            source.close();
        }

        @Override
        public String toString() {
            return source.toString();
        }
    }

    /**
     * Runs {@code task} on the loop thread soon — also while paused. A task that throws is logged.
     *
     * @throws IllegalStateException once the loop is closed
     */
    public void execute(Runnable task) {
        submit(Objects.requireNonNull(task, "task"));
    }

    /**
     * Runs {@code task} on the loop thread — also while paused — and returns its result: inline
     * when called on the loop thread, otherwise after waiting (uninterruptibly; the interrupt
     * status is kept) for the loop to run it. A runtime exception or error the task throws is
     * rethrown as it is; a checked one wrapped in a {@link CompletionException}.
     *
     * @throws IllegalStateException when the loop is closed before the task ran
     */
    public <T> T call(Callable<T> task) {
        Objects.requireNonNull(task, "task");
        if (inLoopThread()) {
            try {
                return task.call();
            } catch (RuntimeException | Error e) {
                throw e;
            } catch (Exception e) {
                throw new CompletionException(e);
            }
        }
        FutureTask<T> future = new FutureTask<>(task);
        submit(future);
        boolean interrupted = false;
        try {
            for (;;) {
                try {
                    return future.get();
                } catch (InterruptedException e) {
                    interrupted = true;
                } catch (CancellationException e) {
                    throw new LoopClosedException(name, "closed before the task ran");
                } catch (ExecutionException e) {
                    Throwable cause = e.getCause();
                    if (cause instanceof RuntimeException r) {
                        throw r;
                    }
                    if (cause instanceof Error err) {
                        throw err;
                    }
                    throw new CompletionException(cause);
                }
            }
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * Stops handlers: returns once no handler runs, and none runs until {@link #resume}. Tasks
     * keep running. Called in a handler, it returns at once (that handler is the one running;
     * no other starts after it). Idempotent.
     */
    public void pause() {
        lock.lock();
        try {
            pauseRequested = true;
            if (inLoopThread()) {
                return;
            }
            while (dispatching) {
                changed.awaitUninterruptibly();
            }
        } finally {
            lock.unlock();
        }
    }

    /** Lets handlers run again, starting with the events that arrived while paused. Idempotent. */
    public void resume() {
        lock.lock();
        try {
            pauseRequested = false;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    public boolean isPaused() {
        lock.lock();
        try {
            return pauseRequested;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Stops the loop: no handler or task starts afterwards; tasks not yet run are dropped (their
     * {@link #call}s throw {@link IllegalStateException}). From another thread it joins the loop
     * thread, which closes the epoll fd, the wake-up eventfd and the timers' timerfds before it
     * ends. From the loop thread it returns at once and the thread ends after the current handler
     * or task. Idempotent.
     */
    @Override
    public void close() {
        lock.lock();
        try {
            if (!closing) {
                closing = true;
                changed.signalAll();
                wake.signal(); // open: only shutDown() closes it, after setting closing
            }
        } finally {
            lock.unlock();
        }
        if (!inLoopThread()) {
            awaitTermination();
        }
    }

    @Override
    public String toString() {
        return "device event loop " + name;
    }

    // ---- the loop thread ----

    private void run() {
        try {
            loop();
        } catch (Throwable t) {
            LOG.error("{}: device event loop failed and stopped; devices get no more events", name, t);
        } finally {
            shutDown();
        }
    }

    private void loop() {
        for (;;) {
            boolean paused;
            lock.lock();
            try {
                while (pauseRequested && tasks.isEmpty() && !closing) {
                    changed.awaitUninterruptibly();
                }
                if (closing) {
                    return;
                }
                paused = pauseRequested;
            } finally {
                lock.unlock();
            }
            boolean moreTasks = runTasks();
            if (paused) {
                continue;
            }
            int n = epoll.await(moreTasks ? 0 : -1);
            for (int i = 0; i < n; i++) {
                long token = epoll.data(i);
                if (token == WAKE_TOKEN) {
                    wake.consumeOrZero();
                    continue;
                }
                LoopSource s = sources.get(token);
                if (s == null) {
                    continue; // removed by an earlier handler of this batch
                }
                if (!enterHandler()) {
                    break; // paused or closing: the rest stays ready and is reported again
                }
                try {
                    s.ready(epoll.events(i));
                } catch (VirtualMachineError e) {
                    throw e;
                } catch (Throwable t) {
                    LOG.error("{}: handler of {} failed; the loop goes on", name, s, t);
                } finally {
                    exitHandler();
                }
            }
        }
    }

    /** Runs the tasks queued now (not those they queue); true when more are waiting. */
    private boolean runTasks() {
        int budget;
        lock.lock();
        try {
            budget = tasks.size();
        } finally {
            lock.unlock();
        }
        for (; budget > 0; budget--) {
            Runnable task;
            lock.lock();
            try {
                if (closing) {
                    return false;
                }
                task = tasks.poll();
            } finally {
                lock.unlock();
            }
            try {
                task.run();
            } catch (VirtualMachineError e) {
                throw e;
            } catch (Throwable t) {
                LOG.error("{}: task {} failed; the loop goes on", name, task, t);
            }
        }
        lock.lock();
        try {
            return !tasks.isEmpty();
        } finally {
            lock.unlock();
        }
    }

    private boolean enterHandler() {
        lock.lock();
        try {
            if (pauseRequested || closing) {
                return false;
            }
            dispatching = true;
            return true;
        } finally {
            lock.unlock();
        }
    }

    private void exitHandler() {
        lock.lock();
        try {
            dispatching = false;
            if (pauseRequested) {
                changed.signalAll();
            }
        } finally {
            lock.unlock();
        }
    }

    /** Last act of the loop thread: drops pending tasks and closes what the loop owns. */
    private void shutDown() {
        List<Runnable> dropped;
        lock.lock();
        try {
            closing = true;
            dropped = new ArrayList<>(tasks);
            tasks.clear();
            wake.close(); // under the lock: submitters signal it under the lock, only while !closing
        } finally {
            lock.unlock();
        }
        for (Runnable task : dropped) {
            if (task instanceof Future<?> f) {
                f.cancel(false);
            } else {
                LOG.debug("{}: closed before task {} ran", name, task);
            }
        }
        sources.clear(s -> {
            s.token = RegistrationTable.NONE;
            try {
                s.removed();
            } catch (RuntimeException e) {
                LOG.warn("{}: closing {} failed: {}", name, s, e.toString());
            }
        });
        epoll.close();
    }

    // ---- registrations (loop thread) ----

    private <S extends LoopSource> S register(S s, int events) {
        s.token = sources.add(s);
        try {
            epoll.add(s.fd, events, s.token);
        } catch (RuntimeException | Error e) {
            sources.remove(s.token);
            s.token = RegistrationTable.NONE;
            s.removed();
            throw e;
        }
        return s;
    }

    /** A source's {@code close()}: removes it on the loop thread (unless the loop is closed already). */
    void removeSource(LoopSource s) {
        onLoopUnlessClosed(() -> unregister(s));
    }

    private void unregister(LoopSource s) {
        if (s.token == RegistrationTable.NONE) {
            return;
        }
        try {
            if (s.fd.isOpen()) {
                epoll.delete(s.fd);
            }
        } catch (NativeCallException e) {
            if (e.errno() != Errno.ENOENT && e.errno() != Errno.EBADF) {
                throw e;
            }
            LOG.debug("{}: {} was no longer watched: {}", name, s, e.getMessage());
        } finally {
            sources.remove(s.token);
            s.token = RegistrationTable.NONE;
            s.removed();
        }
    }

    /** Runs {@code action} on the loop thread and waits; once the loop is closed, waits for its end instead. */
    private void onLoopUnlessClosed(Runnable action) {
        if (inLoopThread()) {
            action.run();
            return;
        }
        try {
            call(() -> {
                action.run();
                return null;
            });
        } catch (LoopClosedException closed) {
            awaitTermination(); // the loop releases everything itself; wait so no handler still runs
        }
    }

    private void submit(Runnable task) {
        lock.lock();
        try {
            if (closing) {
                throw new LoopClosedException(name, "closed");
            }
            tasks.add(task);
            if (!inLoopThread()) {
                changed.signalAll();
                wake.signal();
            }
        } finally {
            lock.unlock();
        }
    }

    private void awaitTermination() {
        boolean interrupted = false;
        while (thread.isAlive()) {
            try {
                thread.join();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
