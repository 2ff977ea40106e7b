package dev.ferry.vmm.qmp;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.concurrent.TimeoutException;
import java.util.function.Predicate;

/**
 * The most recent events a {@link QmpClient} received, for {@link QmpClient#awaitEvent}: a waiter
 * finds events that arrived before it started waiting. Bounded; when full the oldest event is
 * dropped. An event handed to a waiter is removed, so each is returned once.
 *
 * <p>Threads: the client's reader thread adds and fails; any thread awaits.
 */
final class QmpEventBuffer {
    private final int capacity;
    private final ArrayDeque<QmpEvent> events;
    private IOException failure; // guarded by this: set once no more events can arrive

    QmpEventBuffer(int capacity) {
        this.capacity = capacity;
        this.events = new ArrayDeque<>(capacity);
    }

    synchronized void add(QmpEvent event) {
        if (events.size() == capacity) {
            events.removeFirst();
        }
        events.addLast(event);
        notifyAll();
    }

    /** No more events will arrive; waiters that find nothing get {@code cause}. */
    synchronized void fail(IOException cause) {
        if (failure == null) {
            failure = cause;
        }
        notifyAll();
    }

    /** Removes and returns the oldest buffered event matching {@code filter}, waiting for one if needed. */
    synchronized QmpEvent await(Predicate<QmpEvent> filter, Duration timeout) throws IOException, TimeoutException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            for (Iterator<QmpEvent> it = events.iterator(); it.hasNext(); ) {
                QmpEvent event = it.next();
                if (filter.test(event)) {
                    it.remove();
                    return event;
                }
            }
            if (failure != null) {
                throw new IOException(failure.getMessage() + "; the awaited event did not arrive", failure);
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new TimeoutException("no matching QMP event within " + timeout);
            }
            try {
                wait(Math.max(1, left / 1_000_000));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while waiting for a QMP event");
            }
        }
    }
}
