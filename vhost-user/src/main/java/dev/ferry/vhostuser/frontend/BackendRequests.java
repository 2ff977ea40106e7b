package dev.ferry.vhostuser.frontend;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Sockets;
import dev.ferry.vhostuser.proto.BackendConnection;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserChannel;
import dev.ferry.vhostuser.proto.VhostUserException;
import dev.ferry.vhostuser.proto.VhostUserMessage;

/**
 * The front-end's end of the back-end's request channel (protocol feature BACKEND_REQ): a socket
 * pair made while the connection is negotiated, one end handed to the back-end with
 * SET_BACKEND_REQ_FD, this end read on the device's event loop. Over it the back-end tells the
 * front-end what only it knows; the one message acted on is CONFIG_CHANGE_MSG (a disk the
 * back-end's owner resized), which carries no payload and no descriptor. Any other request —
 * IOTLB, host notifiers, which Ferry does not use — is refused: with NEED_REPLY the answer is a
 * non-zero u64, as the specification asks of a request the front-end cannot serve.
 *
 * <p>What arrives is checked before it is believed: the framing by {@link VhostUserChannel}, then
 * a REPLY flag (the back-end sends requests here), a payload or descriptors where none belong.
 * A message that breaks the framing breaks the connection ({@link Outcome#BROKEN}); a request
 * that is well framed but wrong is only refused.
 *
 * <p>Device event loop thread. Owns its end of the pair; {@link VhostUserFrontend} owns this.
 */
final class BackendRequests implements AutoCloseable {
    /** What reading one message came to. */
    enum Outcome { SERVED, REFUSED, CLOSED, BROKEN }

    /** What the device does when its back-end says the config changed; false refuses it. */
    @FunctionalInterface
    interface ConfigChange {
        boolean configChanged() throws VhostUserException;
    }

    private final VhostUserChannel channel;
    private final long timeoutMs;
    private volatile String lastProblem;
    private volatile long configChanges;
    private volatile long refused;

    private BackendRequests(VhostUserChannel channel, long timeoutMs) {
        this.channel = channel;
        this.timeoutMs = timeoutMs;
    }

    /**
     * Makes the pair and sends SET_BACKEND_REQ_FD with the back-end's end (acknowledged when
     * REPLY_ACK was negotiated). The back-end's end is closed here once sent: the back-end holds
     * its own duplicate.
     */
    static BackendRequests open(BackendConnection conn, String name, long timeoutMs) throws VhostUserException {
        Fd[] pair;
        try {
            pair = Sockets.unixPair(name + " back-end requests");
        } catch (RuntimeException e) {
            throw new VhostUserException(name + ": cannot make the back-end's request channel: " + e.getMessage(), e);
        }
        BackendRequests r = new BackendRequests(new VhostUserChannel(pair[0], conn.peer() + " (back-end requests)"),
                timeoutMs);
        try {
            conn.request(VhostUser.SET_BACKEND_REQ_FD, new byte[0], pair[1]);
            return r;
        } catch (VhostUserException | RuntimeException e) {
            r.close();
            throw e;
        } finally {
            pair[1].close();
        }
    }

    /** This end, for the event loop to watch. */
    Fd socket() {
        return channel.socket();
    }

    /** CONFIG_CHANGE_MSGs acted on. */
    long configChanges() {
        return configChanges;
    }

    /** Requests refused (unknown, or malformed but well framed). */
    long refused() {
        return refused;
    }

    /** What went wrong last on this channel; null while nothing did. */
    String lastProblem() {
        return lastProblem;
    }

    /**
     * Reads one message (the loop saw the socket readable) and handles it. A request with
     * NEED_REPLY gets its u64 answer: 0 when served, 1 when refused. A back-end that hung up
     * this channel gives {@link Outcome#CLOSED}; a broken framing {@link Outcome#BROKEN}, with
     * the reason in {@link #lastProblem}.
     */
    Outcome serveOne(ConfigChange onConfigChange) throws VhostUserException {
        VhostUserMessage m;
        try {
            m = channel.receive(timeoutMs);
        } catch (VhostUserException.Disconnected e) {
            lastProblem = e.getMessage();
            return Outcome.CLOSED;
        } catch (VhostUserException e) {
            lastProblem = e.getMessage();
            return Outcome.BROKEN;
        }
        try (m) {
            String what = name(m.request());
            if (m.isReply()) {
                lastProblem = channel.peer() + ": " + what + " arrived with the REPLY flag; the back-end sends requests here";
                return Outcome.BROKEN;
            }
            boolean ok;
            if (m.request() != VhostUser.BACKEND_CONFIG_CHANGE_MSG) {
                ok = refuse(what + " is not served: Ferry negotiates no IOTLB, host notifiers or shared objects");
            } else if (m.size() != 0 || m.fdCount() != 0) {
                ok = refuse(what + " came with " + m.size() + " payload bytes and " + m.fdCount()
                        + " descriptors; it carries neither");
            } else if (onConfigChange.configChanged()) {
                configChanges++;
                ok = true;
            } else {
                ok = refuse(what + " refused by the device");
            }
            if (m.needsReply()) {
                channel.send(VhostUserMessage.reply(m.request(), Payloads.u64(ok ? 0 : 1)));
            }
            return ok ? Outcome.SERVED : Outcome.REFUSED;
        }
    }

    private boolean refuse(String why) {
        refused++;
        lastProblem = channel.peer() + ": " + why;
        return false;
    }

    /** The back-end request's name (the numbers overlap the front-end's requests). */
    static String name(int request) {
        return switch (request) {
            case VhostUser.BACKEND_IOTLB_MSG -> "IOTLB_MSG";
            case VhostUser.BACKEND_CONFIG_CHANGE_MSG -> "CONFIG_CHANGE_MSG";
            case VhostUser.BACKEND_VRING_HOST_NOTIFIER_MSG -> "VRING_HOST_NOTIFIER_MSG";
            case VhostUser.BACKEND_VRING_CALL -> "VRING_CALL";
            case VhostUser.BACKEND_VRING_ERR -> "VRING_ERR";
            default -> "back-end request " + request;
        };
    }

    @Override
    public void close() {
        channel.close();
    }
}
