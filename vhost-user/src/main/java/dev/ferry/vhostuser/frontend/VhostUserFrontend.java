package dev.ferry.vhostuser.frontend;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.Fd;
import dev.ferry.vhostuser.proto.BackendConnection;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserException;
import dev.ferry.vhostuser.proto.VhostUserMessage;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * One connection of a front-end to a vhost-user back-end, speaking the requests in the order
 * QEMU 7.2 speaks them: negotiation when connected ({@link #connect}), then the device's start
 * (features, memory table, per ring NUM · BASE · ADDR · CALL · KICK · ENABLE), the dirty log
 * (SET_LOG_BASE, LOG_ALL, the used-ring log flag) and the stop (ENABLE 0, GET_VRING_BASE).
 * Every reply is checked by {@link BackendConnection}; a value the back-end returns is checked
 * here before it is believed (a ring index that is not the one asked for, a config of the wrong
 * size).
 *
 * <p>Not thread-safe: the device calls it from its event loop only. Owns the connection.
 */
public final class VhostUserFrontend implements AutoCloseable {
    /** Protocol features the front-end can use; the rest of what a back-end offers is left off. */
    public static final long WANTED_PROTOCOL = VhostUser.bit(VhostUser.PF_DEVICE_STATE) | VhostUser.bit(VhostUser.PF_MQ)
            | VhostUser.bit(VhostUser.PF_LOG_SHMFD)
            | VhostUser.bit(VhostUser.PF_RARP) | VhostUser.bit(VhostUser.PF_REPLY_ACK) | VhostUser.bit(VhostUser.PF_CONFIG)
            | VhostUser.bit(VhostUser.PF_INFLIGHT_SHMFD) | VhostUser.bit(VhostUser.PF_STATUS);
    /** What a device's connection asks for besides: the back-end's request channel (config changes). */
    public static final long DEVICE_PROTOCOL = WANTED_PROTOCOL | VhostUser.bit(VhostUser.PF_BACKEND_REQ);
    private final String name;
    private final Path socket;
    private final BackendConnection conn;
    private final long backendFeatures;
    private final long protocolFeatures;
    private final int queueNum;
    private final BackendRequests backendRequests;
    private volatile IntConsumer requestObserver = r -> { };

    private VhostUserFrontend(String name, Path socket, BackendConnection conn, long backendFeatures,
                              long protocolFeatures, int queueNum, BackendRequests backendRequests) {
        this.name = name;
        this.socket = socket;
        this.conn = conn;
        this.backendFeatures = backendFeatures;
        this.protocolFeatures = protocolFeatures;
        this.queueNum = queueNum;
        this.backendRequests = backendRequests;
    }

    /**
     * Connects to the back-end at {@code socket} and negotiates: GET_FEATURES, with
     * PROTOCOL_FEATURES offered GET/SET_PROTOCOL_FEATURES (what both know of
     * {@link #WANTED_PROTOCOL}), GET_QUEUE_NUM with MQ, SET_OWNER. The connection is closed if
     * any of it fails.
     *
     * @param name the device's id, for messages
     */
    public static VhostUserFrontend connect(String name, Path socket, long replyTimeoutMs) throws VhostUserException {
        return connect(name, socket, replyTimeoutMs, WANTED_PROTOCOL);
    }

    /**
     * As {@link #connect(String, Path, long)}, asking for the protocol features in {@code wanted}:
     * with {@link #DEVICE_PROTOCOL} and a back-end that offers BACKEND_REQ, its request channel
     * is set up (SET_BACKEND_REQ_FD, before SET_OWNER as QEMU sends it) for the device to read
     * ({@link #backendRequests()}).
     */
    static VhostUserFrontend connect(String name, Path socket, long replyTimeoutMs, long wanted)
            throws VhostUserException {
        BackendConnection c = BackendConnection.connect(socket, name, replyTimeoutMs);
        BackendRequests requests = null;
        try {
            long features = c.getU64(VhostUser.GET_FEATURES);
            long protocol = 0;
            int queues = 1;
            if (VhostUser.has(features, VhostUser.F_PROTOCOL_FEATURES)) {
                protocol = c.getU64(VhostUser.GET_PROTOCOL_FEATURES) & wanted;
                c.request(VhostUser.SET_PROTOCOL_FEATURES, Payloads.u64(protocol));
                c.replyAck(VhostUser.has(protocol, VhostUser.PF_REPLY_ACK));
                if (VhostUser.has(protocol, VhostUser.PF_MQ)) {
                    long n = c.getU64(VhostUser.GET_QUEUE_NUM);
                    if (n < 1 || n > 0x8000) {
                        throw new VhostUserException(c.peer() + ": GET_QUEUE_NUM says " + Long.toUnsignedString(n)
                                + " queues; a back-end has 1..32768");
                    }
                    queues = (int) n;
                }
                if (VhostUser.has(protocol, VhostUser.PF_BACKEND_REQ)) {
                    requests = BackendRequests.open(c, name, replyTimeoutMs);
                }
            }
            c.request(VhostUser.SET_OWNER, new byte[0]);
            return new VhostUserFrontend(name, socket, c, features, protocol, queues, requests);
        } catch (VhostUserException | RuntimeException e) {
            if (requests != null) {
                requests.close();
            }
            c.close();
            throw e;
        }
    }

    /** The back-end's request channel; null when BACKEND_REQ was not negotiated. */
    BackendRequests backendRequests() {
        return backendRequests;
    }

    public Path socket() {
        return socket;
    }

    public String peer() {
        return conn.peer();
    }

    /** The connected socket, to watch for the back-end's hang-up on the device's loop. */
    public Fd socketFd() {
        return conn.channel().socket();
    }

    /** The virtio and vhost feature bits the back-end offers (GET_FEATURES). */
    public long backendFeatures() {
        return backendFeatures;
    }

    /** The protocol features both sides use. */
    public long protocolFeatures() {
        return protocolFeatures;
    }

    public boolean hasProtocol(int bit) {
        return VhostUser.has(protocolFeatures, bit);
    }

    /** Queues the back-end can serve (GET_QUEUE_NUM with MQ, else 1). */
    public int queueNum() {
        return queueNum;
    }

    /** A back-end that can log its writes for migration: LOG_ALL and LOG_SHMFD. */
    public boolean canLog() {
        return VhostUser.has(backendFeatures, VhostUser.F_LOG_ALL) && hasProtocol(VhostUser.PF_LOG_SHMFD);
    }

    /**
     * Told every request number just before it goes out: a test port to fail a back-end at an
     * exact step of a sequence (outbound notification only).
     */
    public void requestObserver(IntConsumer observer) {
        this.requestObserver = observer;
    }

    private void about(int request) {
        requestObserver.accept(request);
    }

    /**
     * The back-end's internal state through DEVICE_STATE (rings stopped), or null when it does not
     * offer the feature.
     */
    public byte[] saveDeviceState(long timeoutMs) throws VhostUserException {
        if (!hasProtocol(VhostUser.PF_DEVICE_STATE)) {
            return null;
        }
        about(VhostUser.SET_DEVICE_STATE_FD);
        return DeviceStateTransfer.save(conn, timeoutMs);
    }

    /** Gives the back-end the state a source's back-end saved (rings not started yet). */
    public void loadDeviceState(byte[] state, long timeoutMs) throws VhostUserException {
        if (!hasProtocol(VhostUser.PF_DEVICE_STATE)) {
            throw new VhostUserException(conn.peer() + ": the stream carries the source back-end's device state, but"
                    + " this back-end does not offer DEVICE_STATE (protocol feature 19)");
        }
        about(VhostUser.SET_DEVICE_STATE_FD);
        DeviceStateTransfer.load(conn, state, timeoutMs);
    }

    /** GET_CONFIG of {@code size} bytes from offset 0 (needs CONFIG). */
    public byte[] getConfig(int size) throws VhostUserException {
        about(VhostUser.GET_CONFIG);
        byte[] req = Payloads.config(new Payloads.Config(0, size, 0, new byte[size]));
        try (VhostUserMessage r = conn.call(VhostUser.GET_CONFIG, req)) {
            Payloads.noFds(r);
            Payloads.Config c = Payloads.config(r);
            if (c.offset() != 0 || c.size() != size || c.data().length != size) {
                throw new VhostUserException(peer() + ": GET_CONFIG answered offset " + c.offset() + " size " + c.size()
                        + " for offset 0 size " + size);
            }
            return c.data();
        }
    }

    /** SET_FEATURES: the guest's features plus the vhost bits ({@code logAll}: LOG_ALL). */
    public void setFeatures(long guestFeatures, boolean logAll) throws VhostUserException {
        long f = guestFeatures;
        if (VhostUser.has(backendFeatures, VhostUser.F_PROTOCOL_FEATURES)) {
            f |= VhostUser.bit(VhostUser.F_PROTOCOL_FEATURES);
        }
        if (logAll) {
            f |= VhostUser.bit(VhostUser.F_LOG_ALL);
        }
        about(VhostUser.SET_FEATURES);
        conn.request(VhostUser.SET_FEATURES, Payloads.u64(f));
    }

    /**
     * SET_MEM_TABLE with every RAM region of {@code memory}, one memfd each: guest-physical base,
     * size, the region's address in this process (ring addresses use the same space), offset 0.
     */
    public void setMemTable(GuestMemory memory) throws VhostUserException {
        List<GuestRegion> regions = memory.regions();
        if (regions.size() > VhostUser.MAX_MEM_REGIONS) {
            throw new VhostUserException(name + ": " + regions.size() + " RAM regions; vhost-user carries at most "
                    + VhostUser.MAX_MEM_REGIONS);
        }
        List<Payloads.MemRegion> table = new ArrayList<>();
        Fd[] fds = new Fd[regions.size()];
        for (int i = 0; i < regions.size(); i++) {
            GuestRegion r = regions.get(i);
            table.add(new Payloads.MemRegion(r.gpaBase(), r.size(), r.hostAddress(0), 0));
            fds[i] = r.memfd();
        }
        about(VhostUser.SET_MEM_TABLE);
        conn.request(VhostUser.SET_MEM_TABLE, Payloads.memTable(table), fds);
    }

    /** SET_LOG_BASE: the shared log (LOG_SHMFD); the reply is 0, 8 or 16 bytes depending on the peer. */
    public void setLogBase(Fd log, long size) throws VhostUserException {
        about(VhostUser.SET_LOG_BASE);
        try (VhostUserMessage r = conn.call(VhostUser.SET_LOG_BASE, Payloads.logBase(new Payloads.LogBase(size, 0)), log)) {
            Payloads.noFds(r);
            if (r.size() != 0 && r.size() != 8 && r.size() != 16) {
                throw new VhostUserException(peer() + ": the reply to SET_LOG_BASE has " + r.size()
                        + " bytes; 0, 8 or 16 expected");
            }
        }
    }

    /** One ring's addresses as the back-end takes them: this process's addresses, the used ring's GPA for the log. */
    public record RingAddresses(long descUser, long usedUser, long availUser, long usedGpa) {
    }

    /**
     * Starts ring {@code index}: SET_VRING_NUM, SET_VRING_BASE ({@code base}: where the back-end
     * resumes popping), SET_VRING_ADDR (with the used-ring log flag when {@code log}),
     * SET_VRING_CALL, SET_VRING_KICK, and SET_VRING_ENABLE(1) when protocol features are in use
     * (rings start disabled then).
     *
     * <p>CALL goes before KICK: libvhost-user (qemu-storage-daemon 7.2) serves a ring from
     * SET_VRING_KICK on, reading a kick already counted in the eventfd at once and without
     * waiting for SET_VRING_ENABLE, and notifies after the first completion whatever the event
     * index says. With no call eventfd yet that notify fails (EBADF): the library marks the
     * device broken, drops every later completion and closes the connection, so the requests it
     * had taken are carried out with nobody told. (QEMU never meets this: it gives every queue a
     * call eventfd when it connects.)
     */
    public void startRing(int index, int num, int base, RingAddresses a, boolean log, Fd kick, Fd call)
            throws VhostUserException {
        startRing(index, num, base, a, log, kick, call, true);
    }

    /**
     * As above; {@code enable} false leaves the ring disabled (a net queue pair the driver has
     * not enabled): it is set up and the back-end keeps its base, but serves it only after
     * SET_VRING_ENABLE(1). Without protocol features rings run once set up, whatever {@code enable}.
     */
    public void startRing(int index, int num, int base, RingAddresses a, boolean log, Fd kick, Fd call, boolean enable)
            throws VhostUserException {
        about(VhostUser.SET_VRING_NUM);
        conn.request(VhostUser.SET_VRING_NUM, Payloads.vringState(index, num));
        about(VhostUser.SET_VRING_BASE);
        conn.request(VhostUser.SET_VRING_BASE, Payloads.vringState(index, base));
        setRingAddr(index, a, log);
        about(VhostUser.SET_VRING_CALL);
        conn.request(VhostUser.SET_VRING_CALL, Payloads.u64(index), call);
        about(VhostUser.SET_VRING_KICK);
        conn.request(VhostUser.SET_VRING_KICK, Payloads.u64(index), kick);
        if (enable && VhostUser.has(backendFeatures, VhostUser.F_PROTOCOL_FEATURES)) {
            enableRing(index, true);
        }
    }

    /** SET_VRING_ADDR, with the used-ring log flag when {@code log} (dirty logging on). */
    public void setRingAddr(int index, RingAddresses a, boolean log) throws VhostUserException {
        about(VhostUser.SET_VRING_ADDR);
        conn.request(VhostUser.SET_VRING_ADDR, Payloads.vringAddr(new Payloads.VringAddr(index,
                log ? VhostUser.VRING_F_LOG : 0, a.descUser(), a.usedUser(), a.availUser(), a.usedGpa())));
    }

    public void enableRing(int index, boolean on) throws VhostUserException {
        about(VhostUser.SET_VRING_ENABLE);
        conn.request(VhostUser.SET_VRING_ENABLE, Payloads.vringState(index, on ? 1 : 0));
    }

    /**
     * Stops ring {@code index}: SET_VRING_ENABLE(0) (with protocol features), then GET_VRING_BASE,
     * which stops the ring; returns the index the back-end will pop next (a u16).
     */
    public int stopRing(int index) throws VhostUserException {
        return stopRing(index, true);
    }

    /**
     * As above; {@code disableFirst} false sends GET_VRING_BASE alone (it stops the ring by
     * itself), as QEMU's vhost-net does.
     */
    public int stopRing(int index, boolean disableFirst) throws VhostUserException {
        if (disableFirst && VhostUser.has(backendFeatures, VhostUser.F_PROTOCOL_FEATURES)) {
            enableRing(index, false);
        }
        about(VhostUser.GET_VRING_BASE);
        try (VhostUserMessage r = conn.call(VhostUser.GET_VRING_BASE, Payloads.vringState(index, 0))) {
            Payloads.noFds(r);
            Payloads.VringState s = Payloads.vringState(r);
            if (s.index() != index) {
                throw new VhostUserException(peer() + ": GET_VRING_BASE for ring " + index + " answered for ring "
                        + s.index());
            }
            if ((s.num() & ~0xffff) != 0) {
                throw new VhostUserException(peer() + ": GET_VRING_BASE for ring " + index + " returned 0x"
                        + Integer.toHexString(s.num()) + ", not a 16-bit ring index");
            }
            return s.num();
        }
    }

    /** SET_STATUS (with STATUS negotiated; otherwise nothing). */
    public void setStatus(int status) throws VhostUserException {
        if (hasProtocol(VhostUser.PF_STATUS)) {
            about(VhostUser.SET_STATUS);
            conn.request(VhostUser.SET_STATUS, Payloads.u64(status));
        }
    }

    /** SEND_RARP for {@code mac} (with RARP negotiated; otherwise nothing). Returns whether it was sent. */
    public boolean sendRarp(byte[] mac) throws VhostUserException {
        if (!hasProtocol(VhostUser.PF_RARP)) {
            return false;
        }
        about(VhostUser.SEND_RARP);
        conn.request(VhostUser.SEND_RARP, Payloads.rarp(mac));
        return true;
    }

    /**
     * GET_INFLIGHT_FD for {@code queues} rings of {@code queueSize}: the back-end's shared
     * in-flight region (a memfd it created). The caller owns the returned descriptor.
     */
    public Inflight getInflight(int queues, int queueSize) throws VhostUserException {
        about(VhostUser.GET_INFLIGHT_FD);
        try (VhostUserMessage r = conn.call(VhostUser.GET_INFLIGHT_FD,
                Payloads.inflight(new Payloads.Inflight(0, 0, queues, queueSize)))) {
            Payloads.Inflight i = Payloads.inflight(r);
            if (r.fdCount() != 1) {
                throw new VhostUserException(peer() + ": GET_INFLIGHT_FD came with " + r.fdCount()
                        + " descriptors; one expected");
            }
            if (i.mmapSize() <= 0 || i.mmapSize() > 64L << 20) {
                throw new VhostUserException(peer() + ": GET_INFLIGHT_FD region of " + i.mmapSize()
                        + " bytes; 1 byte to 64 MiB accepted");
            }
            return new Inflight(r.takeFd(0), i.mmapSize(), i.mmapOffset(), queues, queueSize);
        }
    }

    /** The in-flight region: the memfd, its size and offset, and what it was asked for. */
    public record Inflight(Fd fd, long size, long offset, int queues, int queueSize) implements AutoCloseable {
        @Override
        public void close() {
            fd.close();
        }
    }

    /** SET_INFLIGHT_FD: hands the region back (before every start, so a new back-end resubmits). */
    public void setInflight(Inflight i) throws VhostUserException {
        about(VhostUser.SET_INFLIGHT_FD);
        conn.request(VhostUser.SET_INFLIGHT_FD,
                Payloads.inflight(new Payloads.Inflight(i.size(), i.offset(), i.queues(), i.queueSize())), i.fd());
    }

    /** Sends SET_VRING_ENABLE(0) without waiting for anything: the best a failing back-end gets. */
    public void disableQuietly(int index) {
        try {
            conn.send(VhostUser.SET_VRING_ENABLE, Payloads.vringState(index, 0));
        } catch (VhostUserException e) {
            // already gone: nothing to stop
        }
    }

    @Override
    public void close() {
        if (backendRequests != null) {
            backendRequests.close();
        }
        conn.close();
    }

    @Override
    public String toString() {
        return name + " → " + peer();
    }
}
