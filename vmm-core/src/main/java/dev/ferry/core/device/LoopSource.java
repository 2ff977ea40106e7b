package dev.ferry.core.device;

import dev.ferry.core.sys.EventFd;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.TimerFd;

import java.util.function.IntConsumer;
import java.util.function.LongConsumer;

/**
 * One fd a {@link DeviceEventLoop} watches, and what it does when the fd is ready: an eventfd
 * (consumed, then the handler with the count), any fd (the handler with the epoll events), or a
 * timerfd the loop owns (the handler once per expiry batch). {@link #token} is its epoll token
 * ({@link RegistrationTable#NONE} once removed); it and {@link #ready} belong to the loop thread.
 */
abstract class LoopSource implements DeviceEventLoop.Registration {
    final Fd fd;
    long token = RegistrationTable.NONE;
    private final DeviceEventLoop loop;

    LoopSource(DeviceEventLoop loop, Fd fd) {
        this.loop = loop;
        this.fd = fd;
    }

    /** Handles a ready event; loop thread, not paused. */
    abstract void ready(int events);

    /** After removal, on the loop thread: closes what the loop owns for this source. */
    void removed() {
    }

    @Override
    public void close() {
        loop.removeSource(this);
    }

    static final class EventFdSource extends LoopSource {
        private final EventFd eventFd;
        private final LongConsumer handler;

        EventFdSource(DeviceEventLoop loop, EventFd eventFd, LongConsumer handler) {
            super(loop, eventFd.fd());
            this.eventFd = eventFd;
            this.handler = handler;
        }

        @Override
        void ready(int events) {
            long count = eventFd.consumeOrZero();
            if (count > 0) {
                handler.accept(count);
            }
        }

        @Override
        public String toString() {
            return fd.toString();
        }
    }

    static final class FdSource extends LoopSource {
        private final IntConsumer handler;

        FdSource(DeviceEventLoop loop, Fd fd, IntConsumer handler) {
            super(loop, fd);
            this.handler = handler;
        }

        @Override
        void ready(int events) {
            handler.accept(events);
        }

        @Override
        public String toString() {
            return fd.toString();
        }
    }

    static final class TimerSource extends LoopSource {
        final TimerFd timerFd;
        private final Runnable handler;

        TimerSource(DeviceEventLoop loop, TimerFd timerFd, Runnable handler) {
            super(loop, timerFd.fd());
            this.timerFd = timerFd;
            this.handler = handler;
        }

        @Override
        void ready(int events) {
            if (timerFd.expirations() > 0) {
                handler.run();
            }
        }

        @Override
        void removed() {
            timerFd.close();
        }

        @Override
        public String toString() {
            return "timer " + fd;
        }
    }
}
