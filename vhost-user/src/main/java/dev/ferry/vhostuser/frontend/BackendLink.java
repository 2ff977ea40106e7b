package dev.ferry.vhostuser.frontend;

import dev.ferry.core.device.DeviceEventLoop;
import dev.ferry.core.sys.Linux;
import dev.ferry.vhostuser.proto.VhostUserException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.function.IntConsumer;

/**
 * A {@link VhostUserDevice}'s connection to its back-end and the connection's life: the socket
 * watched between requests (a hang-up or an unasked message drops the back-end), the reconnect
 * timer (100 ms, doubling to at most 2 s), and the checks a reconnected back-end must pass — every
 * feature the first one offered, logging while a migration logs, the device's own check — before
 * the device hands it its state ({@link VhostUserDevice#afterReconnect}: blk's in-flight region).
 * It owns the current {@link VhostUserFrontend} (closed when lost or replaced), the socket's
 * watch and the timer.
 *
 * <p>Device event loop thread; {@code describe} reads the volatile fields from any thread. Log
 * lines go to the device's logger.
 */
final class BackendLink {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserDevice.class);
    static final long RECONNECT_FIRST_MS = 100;
    static final long RECONNECT_MAX_MS = 2_000;
    private final VhostUserDevice d;
    private volatile VhostUserFrontend fe;
    private DeviceEventLoop.Registration hangupReg;
    /** The watch on the current connection's back-end request channel, if it has one. */
    private DeviceEventLoop.Registration requestsReg;
    private DeviceEventLoop.Timer reconnectTimer;
    private long reconnectDelayMs = RECONNECT_FIRST_MS;
    private volatile String lostReason;
    /**
     * Why the back-end was lost while a migration's log ran (kept across a reconnect until the
     * log stops): its successor cannot vouch for what it logged, so the migration must fail.
     */
    private volatile String lostWhileLogging;
    private volatile String reconnectError;
    private volatile long reconnects;
    /** Tests: the request observer every later connection gets (the current one's: {@link VhostUserDevice#withFrontend}). */
    private volatile IntConsumer laterConnectionsObserver;

    /** Takes ownership of the first, freshly negotiated connection. */
    BackendLink(VhostUserDevice device, VhostUserFrontend first) {
        this.d = device;
        this.fe = first;
    }

    /** The reconnect timer, and the watch on the first connection. Constructor thread, once. */
    void open() {
        this.reconnectTimer = d.loop.timer(this::reconnect);
        d.loop.call(() -> {
            watch();
            return null;
        });
    }

    /** The current connection; null while the back-end is lost. */
    VhostUserFrontend frontend() {
        return fe;
    }

    /** Why the back-end was lost; null once a reconnect succeeded. */
    String lostWhileLogging() {
        return lostWhileLogging;
    }

    /** A migration's log starts or stops: a loss before it is no concern of the next. */
    void forgetLossWhileLogging() {
        lostWhileLogging = null;
    }

    String lostReason() {
        return lostReason;
    }

    /** Why the last reconnect attempt failed; null after a success. */
    String reconnectError() {
        return reconnectError;
    }

    long reconnects() {
        return reconnects;
    }

    /** Tests: {@code observer} sees the requests of every connection made from now on, before each is sent. */
    void observeLaterConnections(IntConsumer observer) {
        laterConnectionsObserver = observer;
    }

    /** The delay before the next reconnect attempt. Loop thread (tests read it through {@code loop.call}). */
    long reconnectDelayMs() {
        return reconnectDelayMs;
    }

    /**
     * Watches the socket: between requests the back-end has nothing to say, so readiness means it
     * hung up or broke the protocol. And the back-end's request channel, when it has one: each
     * message is read and served as it comes.
     */
    private void watch() {
        VhostUserFrontend f = fe;
        hangupReg = d.loop.addFd(f.socketFd(), Linux.EPOLLIN | Linux.EPOLLRDHUP, ev -> {
            if (fe == f) {
                d.backendLost((ev & (Linux.EPOLLHUP | Linux.EPOLLRDHUP | Linux.EPOLLERR)) != 0 ? "the back-end hung up"
                        : "the back-end sent a message nobody asked for");
            }
        });
        BackendRequests requests = f.backendRequests();
        if (requests != null) {
            requestsReg = d.loop.addFd(requests.socket(), Linux.EPOLLIN | Linux.EPOLLRDHUP, ev -> {
                if (fe == f) {
                    serveRequest(f, requests);
                }
            });
        }
    }

    /** One message on the back-end's request channel (loop thread). */
    private void serveRequest(VhostUserFrontend f, BackendRequests requests) {
        BackendRequests.Outcome o;
        try {
            o = requests.serveOne(() -> d.backendConfigChanged(f));
        } catch (VhostUserException e) {
            d.backendLost(e.getMessage());
            return;
        }
        switch (o) {
            case SERVED -> { }
            case REFUSED -> LOG.warn("{}: refused a back-end request: {}", d.who(), requests.lastProblem());
            case CLOSED -> {
                // The back-end closed its end (a back-end going away closes its main socket too,
                // which the other watch reports); the device goes on without the channel.
                LOG.info("{}: the back-end at {} closed its request channel", d.who(), d.options.socket());
                VhostUserDevice.closeQuietly(requestsReg);
                requestsReg = null;
            }
            case BROKEN -> d.backendLost("its request channel broke: " + requests.lastProblem());
        }
    }

    /**
     * The back-end is lost for {@code reason}: logged, recorded, no longer watched and no longer
     * current. Returns the dropped connection for the caller to close once the rings fell back,
     * or null when none was current.
     */
    VhostUserFrontend drop(String reason) {
        if (fe == null) {
            return null;
        }
        LOG.warn("{}: vhost-user back-end at {}: {}; {}", d.who(), d.options.socket(), reason,
                d.ctx != null ? "reconnecting" : "the device reconnects when it starts");
        lostReason = reason;
        if (d.log != null && lostWhileLogging == null) {
            lostWhileLogging = reason;
        }
        unwatch();
        VhostUserFrontend f = fe;
        fe = null;
        return f;
    }

    /** The first reconnect attempt after {@link #RECONNECT_FIRST_MS}. */
    void scheduleReconnect() {
        reconnectDelayMs = RECONNECT_FIRST_MS;
        reconnectTimer.arm(reconnectDelayMs * 1_000_000L);
    }

    /** Timer: one reconnect attempt; the next after twice the delay (at most {@link #RECONNECT_MAX_MS}). */
    private void reconnect() {
        if (fe != null) {
            return;
        }
        reconnectNow();
        if (fe == null) {
            reconnectDelayMs = Math.min(reconnectDelayMs * 2, RECONNECT_MAX_MS);
            reconnectTimer.arm(reconnectDelayMs * 1_000_000L);
        } else if (d.ctx != null && !d.rings.running()) {
            try {
                d.rings.start();
                if (d.rings.running()) {
                    LOG.info("{}: reconnected to {}; rings restarted", d.who(), d.options.socket());
                }
            } catch (VhostUserException e) {
                d.backendLost(e.getMessage());
            }
        }
    }

    /** Connects once and checks the back-end offers what the guest took; on failure {@code fe} stays null. */
    void reconnectNow() {
        VhostUserFrontend f;
        try {
            f = VhostUserFrontend.connect(d.id, d.options.socket(), d.options.replyTimeoutMs(),
                    VhostUserFrontend.DEVICE_PROTOCOL);
        } catch (VhostUserException e) {
            reconnectError = e.getMessage();
            return;
        }
        IntConsumer o = laterConnectionsObserver;
        if (o != null) {
            f.requestObserver(o);
        }
        long lacking = d.offeredBackendFeatures & ~f.backendFeatures();
        boolean logging = d.log != null;
        if (lacking != 0 || (logging && !f.canLog())) {
            reconnectError = "the back-end at " + d.options.socket() + " now lacks features 0x" + Long.toHexString(lacking)
                    + (logging && !f.canLog() ? " and logging" : "");
            f.close();
            return;
        }
        try {
            d.checkBackend(f);
        } catch (VhostUserException e) {
            reconnectError = e.getMessage();
            f.close();
            return;
        }
        fe = f;
        reconnects++;
        lostReason = null;
        reconnectError = null;
        watch();
        d.afterReconnect(f);
    }

    /** The timer and the socket's watch (before the connection itself: nothing fires on a closed fd). */
    void closeWatch() {
        if (reconnectTimer != null) {
            VhostUserDevice.closeQuietly(reconnectTimer);
        }
        unwatch();
    }

    private void unwatch() {
        if (hangupReg != null) {
            VhostUserDevice.closeQuietly(hangupReg);
            hangupReg = null;
        }
        if (requestsReg != null) {
            VhostUserDevice.closeQuietly(requestsReg);
            requestsReg = null;
        }
    }

    /** The current connection, closed once. */
    void closeFrontend() {
        if (fe != null) {
            fe.close();
            fe = null;
        }
    }
}
