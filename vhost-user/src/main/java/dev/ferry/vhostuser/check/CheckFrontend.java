package dev.ferry.vhostuser.check;

import dev.ferry.core.sys.Fd;
import dev.ferry.vhostuser.proto.BackendConnection;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserException;
import dev.ferry.vhostuser.proto.VhostUserMessage;
import dev.ferry.virtio.queue.QueueConfig;

import java.nio.file.Path;

/**
 * The check's front-end side of one connection: QEMU's requests in QEMU's order (negotiation,
 * memory table, rings, the migration log), each through {@link BackendConnection}, which holds
 * every reply to its flags and request and every REPLY_ACK ack to 0. Counts the acknowledged
 * requests so the report can say how often the reply rule was verified. Owns the connection.
 */
final class CheckFrontend implements AutoCloseable {
    /** A reply that came in time but breaks the specification (wrong ring, wrong size, wrong window). */
    static final class ReplyViolation extends VhostUserException {
        ReplyViolation(String message) {
            super(message);
        }
    }

    private final BackendConnection conn;
    private long offered = -1;
    private long protocol = -1;
    private long acked;
    private int replies;
    private CheckGuest guest;

    private CheckFrontend(BackendConnection conn) {
        this.conn = conn;
    }

    static CheckFrontend connect(Path socket, long replyTimeoutMs) throws VhostUserException {
        return new CheckFrontend(BackendConnection.connect(socket, "back-end", replyTimeoutMs));
    }

    String peer() {
        return conn.peer();
    }

    BackendConnection connection() {
        return conn;
    }

    long offered() {
        return offered;
    }

    long protocol() {
        return protocol;
    }

    /** Protocol features both sides use. */
    long acked() {
        return acked;
    }

    boolean hasProtocol(int bit) {
        return VhostUser.has(acked, bit);
    }

    /** Replies (with data or acks) received and found well-formed. */
    int replies() {
        return replies;
    }

    long getFeatures() throws VhostUserException {
        offered = conn.getU64(VhostUser.GET_FEATURES);
        replies++;
        return offered;
    }

    long getProtocolFeatures() throws VhostUserException {
        protocol = conn.getU64(VhostUser.GET_PROTOCOL_FEATURES);
        replies++;
        return protocol;
    }

    /** SET_PROTOCOL_FEATURES with what both offer of {@code wanted}; REPLY_ACK applies from the next request. */
    void setProtocolFeatures(long wanted) throws VhostUserException {
        acked = wanted & protocol;
        request(VhostUser.SET_PROTOCOL_FEATURES, Payloads.u64(acked));
        conn.replyAck(VhostUser.has(acked, VhostUser.PF_REPLY_ACK));
    }

    /** The whole handshake up to SET_FEATURES, as QEMU does it at device init and start. */
    void negotiate(long wantedProtocol, long features) throws VhostUserException {
        getFeatures();
        if (!VhostUser.has(offered, VhostUser.F_PROTOCOL_FEATURES)) {
            throw new VhostUserException("the back-end does not offer PROTOCOL_FEATURES (bit 30); GET_FEATURES 0x"
                    + Long.toHexString(offered));
        }
        getProtocolFeatures();
        setProtocolFeatures(wantedProtocol);
        request(VhostUser.SET_OWNER, new byte[0]);
        request(VhostUser.SET_FEATURES, Payloads.u64(features));
    }

    void request(int request, byte[] payload, Fd... fds) throws VhostUserException {
        conn.request(request, payload, fds);
        if (conn.replyAck() && !VhostUser.hasOwnReply(request)) {
            replies++;
        }
    }

    /** SET_MEM_TABLE with the guest's one region; ring addresses refer to this guest from now on. */
    void setMemTable(CheckGuest guest) throws VhostUserException {
        this.guest = guest;
        request(VhostUser.SET_MEM_TABLE, Payloads.memTable(guest.memTable()), guest.memfd());
    }

    /** The ring's size, base, addresses (with the used-ring log when {@code log}), call and kick. */
    void startRing(CheckRing ring, int base, boolean log) throws VhostUserException {
        int q = ring.index();
        QueueConfig c = ring.config();
        request(VhostUser.SET_VRING_NUM, Payloads.vringState(q, c.size()));
        request(VhostUser.SET_VRING_BASE, Payloads.vringState(q, base));
        setVringAddr(ring, log ? VhostUser.VRING_F_LOG : 0, c);
        // CALL before KICK: a back-end may serve a pending kick as soon as it gets the kick fd, and
        // qemu-storage-daemon 7.2 then writes to a call fd it closed at GET_VRING_BASE and panics.
        request(VhostUser.SET_VRING_CALL, Payloads.u64(q), ring.callFd().fd());
        request(VhostUser.SET_VRING_KICK, Payloads.u64(q), ring.kickFd().fd());
    }

    void setVringAddr(CheckRing ring, int flags, QueueConfig c) throws VhostUserException {
        CheckGuest g = guest;
        request(VhostUser.SET_VRING_ADDR, Payloads.vringAddr(new Payloads.VringAddr(ring.index(), flags,
                g.userAddress(c.descGpa()), g.userAddress(c.usedGpa()), g.userAddress(c.availGpa()), c.usedGpa())));
    }

    void enable(int q, boolean on) throws VhostUserException {
        request(VhostUser.SET_VRING_ENABLE, Payloads.vringState(q, on ? 1 : 0));
    }

    /** GET_VRING_BASE: the ring's last available index (checked to name the ring asked for). */
    int getVringBase(int q) throws VhostUserException {
        try (VhostUserMessage r = conn.call(VhostUser.GET_VRING_BASE, Payloads.vringState(q, 0))) {
            Payloads.noFds(r);
            Payloads.VringState s = Payloads.vringState(r);
            replies++;
            if (s.index() != q) {
                throw new ReplyViolation(peer() + ": the reply to GET_VRING_BASE(" + q + ") names ring " + s.index());
            }
            return s.num();
        }
    }

    /**
     * Turns migration logging on as QEMU 7.2 does: SET_LOG_BASE with the shared log (its reply may
     * hold 0, 8 or 16 bytes), SET_FEATURES with LOG_ALL, then each ring's address with the log flag.
     */
    void startLogging(long features, CheckRing... rings) throws VhostUserException {
        try (VhostUserMessage r = conn.call(VhostUser.SET_LOG_BASE,
                Payloads.logBase(new Payloads.LogBase(guest.logBytes(), 0)), guest.logFd())) {
            if (r.size() != 0 && r.size() != 8 && r.size() != 16) {
                throw new ReplyViolation(peer() + ": the reply to SET_LOG_BASE holds " + r.size()
                        + " bytes; 0, 8 or 16 expected");
            }
            replies++;
        }
        request(VhostUser.SET_FEATURES, Payloads.u64(features | VhostUser.bit(VhostUser.F_LOG_ALL)));
        for (CheckRing ring : rings) {
            setVringAddr(ring, VhostUser.VRING_F_LOG, ring.config());
        }
    }

    /** GET_CONFIG of the first {@code size} bytes of the device's config space. */
    byte[] getConfig(int size) throws VhostUserException {
        try (VhostUserMessage r = conn.call(VhostUser.GET_CONFIG,
                Payloads.config(new Payloads.Config(0, size, 0, new byte[size])))) {
            Payloads.Config c = Payloads.config(r);
            replies++;
            if (c.size() != size || c.offset() != 0) {
                throw new ReplyViolation(peer() + ": the reply to GET_CONFIG holds offset " + c.offset() + " size "
                        + c.size() + "; offset 0 size " + size + " asked");
            }
            return c.data();
        }
    }

    @Override
    public void close() {
        conn.close();
    }
}
