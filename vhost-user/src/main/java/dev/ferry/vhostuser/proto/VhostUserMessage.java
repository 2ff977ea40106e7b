package dev.ferry.vhostuser.proto;

import dev.ferry.core.sys.Fd;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * One vhost-user message: the header's request and flags, the payload, and the descriptors that
 * came (or go) with it. A received message owns its descriptors: whoever handles it takes the ones
 * it keeps ({@link #takeFd}) and closes the message, which closes the rest.
 */
public final class VhostUserMessage implements AutoCloseable {
    private final int request;
    private final int flags;
    private final byte[] payload;
    private final Fd[] fds;

    public VhostUserMessage(int request, int flags, byte[] payload, Fd... fds) {
        if (payload.length > VhostUser.MAX_PAYLOAD) {
            throw new IllegalArgumentException(VhostUser.requestName(request) + ": payload of " + payload.length
                    + " bytes, at most " + VhostUser.MAX_PAYLOAD);
        }
        if (fds.length > VhostUser.MAX_FDS) {
            throw new IllegalArgumentException(VhostUser.requestName(request) + ": " + fds.length
                    + " descriptors, at most " + VhostUser.MAX_FDS);
        }
        this.request = request;
        this.flags = flags;
        this.payload = payload;
        this.fds = fds.clone();
    }

    /** A request from this side: version 1, NEED_REPLY when asked. */
    public static VhostUserMessage request(int request, boolean needReply, byte[] payload, Fd... fds) {
        return new VhostUserMessage(request, VhostUser.VERSION | (needReply ? VhostUser.FLAG_NEED_REPLY : 0),
                payload, fds);
    }

    /** A reply to {@code request}: flags exactly version 1 | REPLY, as the specification requires. */
    public static VhostUserMessage reply(int request, byte[] payload, Fd... fds) {
        return new VhostUserMessage(request, VhostUser.VERSION | VhostUser.FLAG_REPLY, payload, fds);
    }

    public int request() {
        return request;
    }

    public String name() {
        return VhostUser.requestName(request);
    }

    public int flags() {
        return flags;
    }

    public boolean needsReply() {
        return (flags & VhostUser.FLAG_NEED_REPLY) != 0;
    }

    public boolean isReply() {
        return (flags & VhostUser.FLAG_REPLY) != 0;
    }

    public int size() {
        return payload.length;
    }

    /** The payload bytes (not a copy). */
    public byte[] payload() {
        return payload;
    }

    /** The payload as a little-endian buffer positioned at 0 (x86-64: native order is little-endian). */
    public ByteBuffer buffer() {
        return ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN);
    }

    public int fdCount() {
        int n = 0;
        for (Fd f : fds) {
            if (f != null) {
                n++;
            }
        }
        return n;
    }

    /** The descriptors as sent (for the sender; still owned by whoever passed them in). */
    Fd[] fds() {
        return fds;
    }

    /** Takes ownership of descriptor {@code i}: the message will not close it. */
    public Fd takeFd(int i) {
        Fd f = fds[i];
        if (f == null) {
            throw new IllegalStateException(name() + ": descriptor " + i + " already taken");
        }
        fds[i] = null;
        return f;
    }

    /** Closes every descriptor not taken. */
    @Override
    public void close() {
        for (int i = 0; i < fds.length; i++) {
            if (fds[i] != null) {
                fds[i].close();
                fds[i] = null;
            }
        }
    }

    @Override
    public String toString() {
        return name() + " flags 0x" + Integer.toHexString(flags) + " size " + payload.length
                + (fds.length > 0 ? " fds " + fds.length : "");
    }
}
