package dev.ferry.vhostuser.proto;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.Sockets;

import java.nio.file.Path;

/**
 * The front-end's side of a connection to a vhost-user back-end: requests go out one at a time,
 * each reply is awaited at most the reply timeout and checked — the same request number, flags
 * exactly {@code VERSION | REPLY} — before its payload is believed. With REPLY_ACK negotiated,
 * requests without a reply of their own carry NEED_REPLY and a non-zero ack is an error naming
 * the request.
 *
 * <p>Thread-safe: one request (and its reply) at a time. Owns the channel.
 */
public final class BackendConnection implements AutoCloseable {
    /** What a reply may take by default (QEMU waits without a limit; a VMM must not hang). */
    public static final long DEFAULT_REPLY_TIMEOUT_MS = 5_000;
    private final VhostUserChannel channel;
    private final long replyTimeoutMs;
    private volatile boolean replyAck;

    public BackendConnection(VhostUserChannel channel, long replyTimeoutMs) {
        this.channel = channel;
        this.replyTimeoutMs = replyTimeoutMs;
    }

    /** Connects to the back-end listening at {@code socket}. */
    public static BackendConnection connect(Path socket, String name, long replyTimeoutMs) throws VhostUserException {
        Fd fd;
        try {
            fd = Sockets.unixConnect(socket);
        } catch (NativeCallException | IllegalArgumentException e) {
            throw new VhostUserException.Disconnected(name + ": cannot connect to " + socket + ": " + e.getMessage(), e);
        }
        return new BackendConnection(new VhostUserChannel(fd, name + " (" + socket + ")"), replyTimeoutMs);
    }

    public VhostUserChannel channel() {
        return channel;
    }

    public String peer() {
        return channel.peer();
    }

    /** REPLY_ACK was negotiated: requests without their own reply are acknowledged from now on. */
    public void replyAck(boolean on) {
        this.replyAck = on;
    }

    public boolean replyAck() {
        return replyAck;
    }

    /** A request without a reply of its own; with REPLY_ACK, waits for and checks its ack. */
    public synchronized void request(int request, byte[] payload, Fd... fds) throws VhostUserException {
        boolean ack = replyAck && !VhostUser.hasOwnReply(request);
        channel.send(VhostUserMessage.request(request, ack, payload, fds));
        if (ack) {
            try (VhostUserMessage r = awaitReply(request)) {
                long status = Payloads.u64(r);
                if (status != 0) {
                    throw new VhostUserException(peer() + ": " + VhostUser.requestName(request) + " failed: the back-end "
                            + "acknowledged it with status " + status);
                }
            }
        }
    }

    /** A request without a reply, never asking for an ack (SET_VRING_ENABLE(0) on a failing back-end). */
    public synchronized void send(int request, byte[] payload, Fd... fds) throws VhostUserException {
        channel.send(VhostUserMessage.request(request, false, payload, fds));
    }

    /** A request whose reply carries data: sends it and returns the checked reply (caller closes it). */
    public synchronized VhostUserMessage call(int request, byte[] payload, Fd... fds) throws VhostUserException {
        channel.send(VhostUserMessage.request(request, false, payload, fds));
        return awaitReply(request);
    }

    /** A GET request answered by a u64. */
    public long getU64(int request) throws VhostUserException {
        try (VhostUserMessage r = call(request, new byte[0])) {
            Payloads.noFds(r);
            return Payloads.u64(r);
        }
    }

    private VhostUserMessage awaitReply(int request) throws VhostUserException {
        VhostUserMessage r = channel.receive(replyTimeoutMs);
        String name = VhostUser.requestName(request);
        if (r.request() != request) {
            r.close();
            throw new VhostUserException(peer() + ": the reply to " + name + " is " + r.name()
                    + " (a reply names the request it answers)");
        }
        if (r.flags() != (VhostUser.VERSION | VhostUser.FLAG_REPLY)) {
            r.close();
            throw new VhostUserException(peer() + ": the reply to " + name + " has flags 0x" + Integer.toHexString(r.flags())
                    + "; a reply's flags are exactly 0x5 (version 1, REPLY)");
        }
        return r;
    }

    @Override
    public void close() {
        channel.close();
    }

    @Override
    public String toString() {
        return channel.toString();
    }
}
