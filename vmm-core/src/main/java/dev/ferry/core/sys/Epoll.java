package dev.ferry.core.sys;

import java.util.Objects;

/**
 * An epoll instance with its ready-event array: the safe wrapper over epoll_create1, epoll_ctl
 * and epoll_wait. Owns the epoll fd and the native memory below, closes both once.
 *
 * <p>Each registered fd carries a 64-bit {@code data} token chosen by the caller; {@link #await}
 * fills a reused native array of packed {@code struct epoll_event}s (layout in
 * {@link Linux#EPOLL_EVENT_SIZE}) and {@link #events(int)} / {@link #data(int)} read it, so
 * waiting allocates nothing.
 *
 * <p>Threads: {@link #add}, {@link #modify} and {@link #delete} may be called from any thread
 * (they share one scratch event under this object's monitor). {@link #await}, {@link #events}
 * and {@link #data} belong to one waiting thread; {@link #close} is called by that thread or once
 * it has stopped waiting — never while another thread is inside {@link #await}, whose array the
 * kernel is writing.
 */
public final class Epoll implements AutoCloseable {
    private final Fd epfd;
    private final int maxEvents;
    /** maxEvents packed epoll_events, written by the kernel in {@link #await}. */
    private final long events;
    /** One epoll_event for epoll_ctl, guarded by this. */
    private final long scratch;
    /** Entries of {@link #events} the last {@link #await} filled; 0 once closed. Waiting thread only. */
    private int ready;
    private volatile Thread waiter;
    private boolean closed;

    /** @param maxEvents how many ready fds one {@link #await} reports at most */
    public Epoll(int maxEvents) {
        if (maxEvents <= 0) {
            throw new IllegalArgumentException("maxEvents " + maxEvents + " must be positive");
        }
        this.maxEvents = maxEvents;
        this.epfd = Sys.epollCreate(Linux.EPOLL_CLOEXEC);
        this.events = NativeMemory.allocate((long) maxEvents * Linux.EPOLL_EVENT_SIZE);
        this.scratch = NativeMemory.allocate(Linux.EPOLL_EVENT_SIZE);
    }

    /** The epoll fd (itself pollable: readable while events are ready). */
    public Fd fd() {
        return epfd;
    }

    /** Starts watching {@code fd} for {@code events} ({@link Linux#EPOLLIN}...); EEXIST if already watched. */
    public synchronized void add(Fd fd, int events, long data) {
        ctl(Linux.EPOLL_CTL_ADD, fd, events, data);
    }

    /** Changes the events and token of a watched fd. */
    public synchronized void modify(Fd fd, int events, long data) {
        ctl(Linux.EPOLL_CTL_MOD, fd, events, data);
    }

    /** Stops watching {@code fd}; ENOENT when it was not watched. */
    public synchronized void delete(Fd fd) {
        checkOpen();
        Sys.epollCtl(epfd, Linux.EPOLL_CTL_DEL, fd, scratch);
    }

    private void ctl(int op, Fd fd, int events, long data) {
        checkOpen();
        NativeMemory.putInt(scratch + Linux.EPOLL_EVENT_EVENTS_OFFSET, events);
        NativeMemory.putLong(scratch + Linux.EPOLL_EVENT_DATA_OFFSET, data);
        Sys.epollCtl(epfd, op, fd, scratch);
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException(epfd.description() + ": closed");
        }
    }

    /**
     * Waits up to {@code timeoutMillis} (-1: forever, 0: just look) for ready fds; returns how
     * many, 0 on timeout or when a signal interrupted the wait. Read them with {@link #events(int)}
     * and {@link #data(int)} before the next call.
     */
    public int await(int timeoutMillis) {
        waiter = Thread.currentThread();
        try {
            ready = 0;
            ready = Sys.epollWait(epfd, events, maxEvents, timeoutMillis);
            return ready;
        } finally {
            waiter = null;
        }
    }

    /** The ready events ({@link Linux#EPOLLIN}, {@link Linux#EPOLLHUP}...) of entry {@code i} of the last {@link #await}. */
    public int events(int i) {
        Objects.checkIndex(i, ready);
        return NativeMemory.getInt(events + (long) i * Linux.EPOLL_EVENT_SIZE + Linux.EPOLL_EVENT_EVENTS_OFFSET);
    }

    /** The token registered with the fd of entry {@code i} of the last {@link #await}. */
    public long data(int i) {
        Objects.checkIndex(i, ready);
        return NativeMemory.getLong(events + (long) i * Linux.EPOLL_EVENT_SIZE + Linux.EPOLL_EVENT_DATA_OFFSET);
    }

    /** Closes the epoll fd and frees the arrays; idempotent. Not while another thread is in {@link #await}. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        Thread w = waiter;
        if (w != null && w != Thread.currentThread()) {
            throw new IllegalStateException(epfd + ": close() while " + w.getName() + " waits on it");
        }
        closed = true;
        ready = 0;
        epfd.close();
        NativeMemory.free(events);
        NativeMemory.free(scratch);
    }

    @Override
    public String toString() {
        return epfd.toString();
    }
}
