package dev.ferry.vhostuser.backend;

import dev.ferry.core.sys.EventFd;
import dev.ferry.core.sys.Fd;
import dev.ferry.virtio.Virtio;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.virtio.VirtioDeviceModel;
import dev.ferry.virtio.net.NetHeader;
import dev.ferry.virtio.net.Rarp;
import dev.ferry.virtio.queue.SplitRing;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.Payloads.MemRegion;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserChannel;
import dev.ferry.vhostuser.proto.VhostUserException;
import dev.ferry.vhostuser.proto.VhostUserMessage;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import static dev.ferry.vhostuser.proto.VhostUser.bit;
import static dev.ferry.vhostuser.proto.VhostUser.has;

/**
 * One front-end connection: every request a front-end (QEMU 7.2, Ferry's own) sends, checked and
 * applied to the {@link DeviceRings}. What the front-end sends is hostile: every index, size,
 * address, descriptor count and feature bit is bounded before use. A request that breaks a rule
 * is refused with a reason naming it — nacked (u64 1) when it asked for an ack, logged otherwise;
 * a request whose own reply cannot be given (a GET with a bad payload) ends the connection, as
 * does broken framing. Nothing here throws past {@link #handle}.
 *
 * <p>REPLY_ACK: with the protocol feature negotiated, a request carrying NEED_REPLY that has no
 * reply of its own gets exactly one u64 reply, 0 for success; requests with their own reply
 * (GET_*, SET_LOG_BASE, SET_DEVICE_STATE_FD, CHECK_DEVICE_STATE) get only that.
 *
 * <p>Loop thread only.
 */
final class BackendSession {
    private static final Logger LOG = LoggerFactory.getLogger(BackendSession.class);
    /** How long CHECK_DEVICE_STATE waits for the state pipe. */
    private static final long STATE_TIMEOUT_MS = 10_000;
    private final String name;
    private final VhostUserChannel channel;
    private final VirtioDeviceModel model;
    private final DeviceRings rings;
    private final Set<BackendFaults> faults;
    private final BackendStats stats;
    private final long offeredFeatures;
    private final long offeredProtocol;
    private long protocol;
    private boolean featuresSet;
    private int status;
    private Fd logFd;
    private StateTransfer transfer;
    private String transferResult = "no transfer";

    BackendSession(String name, VhostUserChannel channel, VirtioDeviceModel model, DeviceRings rings,
                   Set<BackendFaults> faults, BackendStats stats) {
        this.name = name;
        this.channel = channel;
        this.model = model;
        this.rings = rings;
        this.faults = faults;
        this.stats = stats;
        this.offeredFeatures = offeredFeatures(model);
        this.offeredProtocol = offeredProtocol(model);
    }

    /** The virtio features offered: the model's, the ring features, VERSION_1, LOG_ALL and PROTOCOL_FEATURES. */
    static long offeredFeatures(VirtioDeviceModel model) {
        return model.features() | Virtio.bit(Virtio.F_VERSION_1) | Virtio.bit(SplitRing.F_EVENT_IDX)
                | Virtio.bit(SplitRing.F_INDIRECT_DESC) | bit(VhostUser.F_LOG_ALL) | bit(VhostUser.F_PROTOCOL_FEATURES);
    }

    static long offeredProtocol(VirtioDeviceModel model) {
        long p = bit(VhostUser.PF_LOG_SHMFD) | bit(VhostUser.PF_REPLY_ACK) | bit(VhostUser.PF_CONFIG)
                | bit(VhostUser.PF_RESET_DEVICE) | bit(VhostUser.PF_CONFIGURE_MEM_SLOTS) | bit(VhostUser.PF_STATUS)
                | bit(VhostUser.PF_DEVICE_STATE) | bit(VhostUser.PF_BACKEND_REQ);
        if (model.deviceId() == Virtio.ID_BLOCK) {
            p |= bit(VhostUser.PF_INFLIGHT_SHMFD);
        }
        if (VhostUserBackend.netBackend(model) != null) {
            p |= bit(VhostUser.PF_RARP);
        }
        if (model.queueCount() > 1) {
            p |= bit(VhostUser.PF_MQ);
        }
        return p;
    }

    /**
     * Handles {@code m} (the caller closes it afterwards, closing descriptors not taken). Returns
     * false when the connection must end.
     */
    boolean handle(VhostUserMessage m) {
        stats.messages.incrementAndGet();
        boolean ack = m.needsReply() && has(protocol, VhostUser.PF_REPLY_ACK) && !VhostUser.hasOwnReply(m.request())
                && m.request() != VhostUser.SET_LOG_BASE;
        try {
            if (m.isReply()) {
                throw new VhostUserException(m.name() + " arrived with the REPLY flag; a front-end sends requests");
            }
            dispatch(m);
            if (ack) {
                channel.send(VhostUserMessage.reply(m.request(), Payloads.u64(0)));
            }
            return true;
        } catch (VhostUserException | RuntimeException e) {
            String why = e.getMessage() == null ? e.toString() : e.getMessage();
            stats.refused.incrementAndGet();
            stats.lastRefusal = m.name() + ": " + why;
            LOG.warn("{}: refused {}: {}", name, m.name(), why);
            if (channel.brokenReason() != null) {
                return false;
            }
            if (VhostUser.hasOwnReply(m.request()) || m.request() == VhostUser.SET_LOG_BASE) {
                return false; // its reply cannot be given: the front-end would wait for it forever
            }
            if (ack) {
                try {
                    channel.send(VhostUserMessage.reply(m.request(), Payloads.u64(1)));
                } catch (VhostUserException x) {
                    return false;
                }
            }
            return true;
        }
    }

    private void dispatch(VhostUserMessage m) throws VhostUserException {
        int req = m.request();
        if (req != VhostUser.SET_MEM_TABLE && req != VhostUser.SET_LOG_BASE && req != VhostUser.SET_LOG_FD
                && req != VhostUser.SET_VRING_KICK && req != VhostUser.SET_VRING_CALL && req != VhostUser.SET_VRING_ERR
                && req != VhostUser.ADD_MEM_REG && req != VhostUser.REM_MEM_REG && req != VhostUser.SET_INFLIGHT_FD
                && req != VhostUser.SET_DEVICE_STATE_FD && req != VhostUser.SET_BACKEND_REQ_FD) {
            Payloads.noFds(m);
        }
        switch (req) {
            case VhostUser.GET_FEATURES -> replyU64(m, offeredFeatures);
            case VhostUser.SET_FEATURES -> setFeatures(Payloads.u64(m), m);
            case VhostUser.SET_OWNER, VhostUser.RESET_OWNER -> {
                Payloads.exact(m, 0);
                if (req == VhostUser.RESET_OWNER) {
                    rings.reset();
                }
            }
            case VhostUser.GET_PROTOCOL_FEATURES -> replyU64(m, offeredProtocol);
            case VhostUser.SET_PROTOCOL_FEATURES -> {
                long p = Payloads.u64(m);
                if ((p & ~offeredProtocol) != 0) {
                    throw Payloads.bad(m, String.format("acks protocol features 0x%x that were not offered (0x%x)",
                            p & ~offeredProtocol, offeredProtocol));
                }
                protocol = p;
            }
            case VhostUser.GET_QUEUE_NUM -> replyU64(m, model.queueCount());
            case VhostUser.GET_MAX_MEM_SLOTS -> {
                need(m, VhostUser.PF_CONFIGURE_MEM_SLOTS);
                replyU64(m, MemoryTable.MAX_SLOTS);
            }
            case VhostUser.SET_MEM_TABLE -> setMemTable(m);
            case VhostUser.ADD_MEM_REG, VhostUser.REM_MEM_REG -> changeMemRegion(m);
            case VhostUser.SET_LOG_BASE -> setLogBase(m);
            case VhostUser.SET_LOG_FD -> {
                Payloads.exact(m, 8);
                if (m.fdCount() != 1) {
                    throw Payloads.bad(m, "came with " + m.fdCount() + " descriptors; it needs one");
                }
                if (logFd != null) {
                    logFd.close();
                }
                logFd = m.takeFd(0);
            }
            case VhostUser.SET_VRING_NUM, VhostUser.SET_VRING_BASE, VhostUser.GET_VRING_BASE,
                    VhostUser.SET_VRING_ENABLE -> vringState(m);
            case VhostUser.SET_VRING_ADDR -> setVringAddr(m);
            case VhostUser.SET_VRING_KICK, VhostUser.SET_VRING_CALL, VhostUser.SET_VRING_ERR -> vringFd(m);
            case VhostUser.GET_CONFIG, VhostUser.SET_CONFIG -> config(m);
            case VhostUser.GET_INFLIGHT_FD, VhostUser.SET_INFLIGHT_FD -> inflight(m);
            case VhostUser.SET_STATUS -> {
                need(m, VhostUser.PF_STATUS);
                long s = Payloads.u64(m);
                if (s < 0 || s > 0xff) {
                    throw Payloads.bad(m, "status 0x" + Long.toHexString(s) + " is not a u8");
                }
                status = (int) s;
                stats.status = status;
            }
            case VhostUser.GET_STATUS -> {
                need(m, VhostUser.PF_STATUS);
                replyU64(m, status | (rings.deviceError() != null ? Virtio.STATUS_NEEDS_RESET : 0));
            }
            case VhostUser.RESET_DEVICE -> {
                need(m, VhostUser.PF_RESET_DEVICE);
                Payloads.exact(m, 0);
                rings.reset();
                featuresSet = false;
                status = 0;
            }
            case VhostUser.SET_DEVICE_STATE_FD -> setDeviceStateFd(m);
            case VhostUser.SET_BACKEND_REQ_FD -> {
                need(m, VhostUser.PF_BACKEND_REQ);
                Payloads.exact(m, 0);
                if (m.fdCount() != 1) {
                    throw Payloads.bad(m, "came with " + m.fdCount() + " descriptors; it needs one");
                }
                rings.backendRequests(new VhostUserChannel(m.takeFd(0), name + " (requests to the front-end)"));
            }
            case VhostUser.SEND_RARP -> {
                need(m, VhostUser.PF_RARP);
                sendRarp(Payloads.rarpMac(m));
            }
            case VhostUser.CHECK_DEVICE_STATE -> {
                need(m, VhostUser.PF_DEVICE_STATE);
                String r = transfer == null ? transferResult : transfer.finish(model, model.stateVersion(), STATE_TIMEOUT_MS);
                transfer = null;
                transferResult = "no transfer";
                if (r != null) {
                    LOG.warn("{}: device state transfer failed: {}", name, r);
                    stats.lastRefusal = "CHECK_DEVICE_STATE: " + r;
                }
                replyU64(m, r == null ? 0 : 1);
            }
            default -> throw new VhostUserException(m.name() + " is not supported by this back-end");
        }
    }

    private void setFeatures(long f, VhostUserMessage m) throws VhostUserException {
        if ((f & ~offeredFeatures) != 0) {
            throw Payloads.bad(m, String.format("acks features 0x%x that were not offered (0x%x)",
                    f & ~offeredFeatures, offeredFeatures));
        }
        long logAll = bit(VhostUser.F_LOG_ALL);
        if (rings.anyStarted() && featuresSet && ((f ^ rings.features()) & ~logAll) != 0) {
            throw Payloads.bad(m, String.format("changes features 0x%x while rings run; only LOG_ALL may change then",
                    (f ^ rings.features()) & ~logAll));
        }
        boolean logOn = (f & logAll) != 0;
        if (logOn && rings.log() == null) {
            LOG.info("{}: LOG_ALL negotiated before any SET_LOG_BASE; logging starts with the log", name);
        }
        rings.setFeatures(f, logOn, has(f, VhostUser.F_PROTOCOL_FEATURES));
        featuresSet = true;
        stats.features = f;
    }

    private void setMemTable(VhostUserMessage m) throws VhostUserException {
        List<MemRegion> regions = Payloads.memTable(m);
        List<Fd> fds = new ArrayList<>();
        for (int i = 0; i < regions.size(); i++) {
            fds.add(m.takeFd(i));
        }
        MemoryTable next = MemoryTable.build(MemoryTable.empty(), regions, fds);
        MemoryTable old = rings.table();
        rings.replaceMemory(next, old::close);
    }

    private void changeMemRegion(VhostUserMessage m) throws VhostUserException {
        need(m, VhostUser.PF_CONFIGURE_MEM_SLOTS);
        MemRegion r = Payloads.singleRegion(m);
        MemoryTable current = rings.table();
        if (m.request() == VhostUser.ADD_MEM_REG) {
            if (m.fdCount() != 1) {
                throw Payloads.bad(m, "came with " + m.fdCount() + " descriptors; a region needs one");
            }
            MemoryTable again = current.again(r);
            if (again != null) {
                // QEMU 7.2's second queue pair adding what the first added (see MemoryTable)
                m.takeFd(0).close();
                rings.replaceMemory(again, () -> { });
                return;
            }
            MemoryTable next = MemoryTable.build(current, List.of(r), List.of(m.takeFd(0)));
            rings.replaceMemory(next, () -> { });
        } else {
            if (m.fdCount() > 1) {
                throw Payloads.bad(m, "came with " + m.fdCount() + " descriptors; at most one");
            }
            List<dev.ferry.core.memory.GuestRegion> removed = new ArrayList<>();
            MemoryTable next = current.without(r, removed);
            rings.replaceMemory(next, DeviceRings.closing(removed));
        }
    }

    private void setLogBase(VhostUserMessage m) throws VhostUserException {
        need(m, VhostUser.PF_LOG_SHMFD);
        Payloads.LogBase l = Payloads.logBase(m, VhostLog.MAX_SIZE);
        long needed = (rings.table().gpaEnd() + (8L * VhostUser.LOG_PAGE) - 1) / (8L * VhostUser.LOG_PAGE);
        if (l.size() < needed) {
            LOG.warn("{}: the log of {} bytes covers less than the memory table (needs {}); writes past it are counted",
                    name, l.size(), needed);
        }
        VhostLog log = VhostLog.map(m.takeFd(0), l.size(), l.offset());
        rings.setLog(log, has(rings.features(), VhostUser.F_LOG_ALL));
        channel.send(VhostUserMessage.reply(m.request(), Payloads.u64(0)));
    }

    private void vringState(VhostUserMessage m) throws VhostUserException {
        Payloads.VringState s = Payloads.vringState(m);
        Vring r = ring(m, s.index());
        int num = s.num();
        switch (m.request()) {
            case VhostUser.SET_VRING_NUM -> {
                stopped(m, r);
                if (num < 1 || num > model.queueMaxSize() || Integer.bitCount(num) != 1) {
                    throw Payloads.bad(m, "size " + Integer.toUnsignedString(num) + " for vq" + r.index
                            + " is not a power of two from 1 to " + model.queueMaxSize());
                }
                r.num = num;
            }
            case VhostUser.SET_VRING_BASE -> {
                stopped(m, r);
                if ((num & ~0xffff) != 0) {
                    throw Payloads.bad(m, "base 0x" + Integer.toHexString(num) + " for vq" + r.index
                            + " is not a u16 (packed rings are not offered)");
                }
                r.base = num;
                stats.baseSet[r.index] = num;
            }
            case VhostUser.GET_VRING_BASE -> {
                int base = rings.stop(r);
                stats.baseReturned[r.index] = base;
                int answer = faults.contains(BackendFaults.WRONG_VRING_BASE) ? (base + 1) & 0xffff : base;
                channel.send(VhostUserMessage.reply(m.request(), Payloads.vringState(r.index, answer)));
            }
            case VhostUser.SET_VRING_ENABLE -> {
                // Before SET_FEATURES the flag is kept for the ring's start: QEMU 7.2's vhost-user
                // net sends SET_VRING_ENABLE 1 when the guest acks its features, before it starts
                // the back-end (and so before SET_FEATURES), and does not repeat it after.
                if (featuresSet && !has(rings.features(), VhostUser.F_PROTOCOL_FEATURES)) {
                    throw Payloads.bad(m, "without PROTOCOL_FEATURES negotiated (rings are always enabled then)");
                }
                if (num != 0 && num != 1) {
                    throw Payloads.bad(m, "enable value " + Integer.toUnsignedString(num) + " is not 0 or 1");
                }
                rings.enable(r, num == 1);
            }
            default -> throw new IllegalStateException(m.name());
        }
    }

    private void setVringAddr(VhostUserMessage m) throws VhostUserException {
        Payloads.VringAddr a = Payloads.vringAddr(m);
        Vring r = ring(m, a.index());
        if ((a.flags() & ~VhostUser.VRING_F_LOG) != 0) {
            throw Payloads.bad(m, "flags 0x" + Integer.toHexString(a.flags()) + " for vq" + r.index
                    + ": only bit 0 (log the used ring) exists");
        }
        if (r.started()) {
            Payloads.VringAddr o = r.addr;
            if (o.desc() != a.desc() || o.avail() != a.avail() || o.used() != a.used()) {
                throw Payloads.bad(m, "moves the rings of started vq" + r.index + "; stop it (GET_VRING_BASE) first");
            }
        }
        r.addr = a;
    }

    private void vringFd(VhostUserMessage m) throws VhostUserException {
        int index = Payloads.vringFdIndex(m, rings.rings.length);
        Vring r = rings.rings[index];
        EventFd fd = null;
        if (m.fdCount() == 1) {
            try {
                fd = EventFd.adopt(m.takeFd(0));
            } catch (IllegalArgumentException e) {
                throw Payloads.bad(m, "for vq" + index + ": " + e.getMessage());
            }
        }
        switch (m.request()) {
            case VhostUser.SET_VRING_KICK -> {
                if (fd == null) {
                    throw Payloads.bad(m, "without a descriptor: polling rings are not supported");
                }
                if (r.started()) {
                    rings.replaceKick(r, fd);
                } else {
                    rings.start(r, fd);
                }
            }
            case VhostUser.SET_VRING_CALL -> {
                Vring.closeQuietly(r.call);
                r.call = fd;
            }
            default -> {
                Vring.closeQuietly(r.err);
                r.err = fd;
            }
        }
    }

    private void config(VhostUserMessage m) throws VhostUserException {
        need(m, VhostUser.PF_CONFIG);
        Payloads.Config c = Payloads.config(m);
        if (m.request() == VhostUser.GET_CONFIG) {
            byte[] space = model.config();
            byte[] window = new byte[c.size()];
            if (c.offset() < space.length) {
                System.arraycopy(space, c.offset(), window, 0, Math.min(c.size(), space.length - c.offset()));
            }
            channel.send(VhostUserMessage.reply(m.request(),
                    Payloads.config(new Payloads.Config(c.offset(), c.size(), c.flags(), window))));
            return;
        }
        if (c.size() < 1 || c.size() > 8) {
            throw Payloads.bad(m, "writes " + c.size() + " bytes; config fields are 1 to 8 bytes");
        }
        long v = 0;
        for (int i = c.size() - 1; i >= 0; i--) {
            v = (v << 8) | (c.data()[i] & 0xff);
        }
        model.writeConfig(c.offset(), c.size(), v);
    }

    private void inflight(VhostUserMessage m) throws VhostUserException {
        need(m, VhostUser.PF_INFLIGHT_SHMFD);
        Payloads.Inflight in = Payloads.inflight(m);
        if (in.numQueues() < 1 || in.numQueues() > model.queueCount() || in.queueSize() < 1
                || in.queueSize() > model.queueMaxSize() || Integer.bitCount(in.queueSize()) != 1) {
            throw Payloads.bad(m, in.numQueues() + " queue(s) of " + in.queueSize() + ": this device has 1.."
                    + model.queueCount() + " queues of a power of two up to " + model.queueMaxSize());
        }
        if (m.request() == VhostUser.GET_INFLIGHT_FD) {
            Payloads.noFds(m);
            InflightRegion region = InflightRegion.create(in.numQueues(), in.queueSize());
            rings.setInflight(region);
            channel.send(VhostUserMessage.reply(m.request(), Payloads.inflight(
                    new Payloads.Inflight(region.size(), 0, in.numQueues(), in.queueSize())), region.fd()));
            return;
        }
        if (m.fdCount() != 1) {
            throw Payloads.bad(m, "came with " + m.fdCount() + " descriptors; the region needs one");
        }
        rings.setInflight(InflightRegion.attach(m.takeFd(0), in.mmapSize(), in.mmapOffset(), in.numQueues(),
                in.queueSize()));
    }

    /** SEND_RARP: one RARP announcement for {@code mac} through the net model's back-end (the guest cannot announce). */
    private void sendRarp(byte[] mac) throws VhostUserException {
        dev.ferry.virtio.net.NetBackend net = VhostUserBackend.netBackend(model);
        if (net == null) {
            throw new VhostUserException("SEND_RARP to a device that is not virtio-net");
        }
        byte[] frame = Rarp.frame(mac);
        long buf = NativeMemory.allocate(NetHeader.SIZE + frame.length);
        try {
            NetHeader.clear(buf);
            NativeMemory.copyFromArray(frame, 0, buf + NetHeader.SIZE, frame.length);
            if (!net.send(buf, NetHeader.SIZE + frame.length)) {
                throw new VhostUserException("SEND_RARP: the network back-end (" + net.describe()
                        + ") could not take the frame now");
            }
            stats.rarps.incrementAndGet();
        } catch (RuntimeException e) {
            throw new VhostUserException("SEND_RARP: sending through " + net.describe() + " failed: "
                    + e.getMessage(), e);
        } finally {
            NativeMemory.free(buf);
        }
    }

    private void setDeviceStateFd(VhostUserMessage m) throws VhostUserException {
        need(m, VhostUser.PF_DEVICE_STATE);
        Payloads.DeviceStateTransfer t = Payloads.deviceStateTransfer(m);
        if (m.fdCount() != 1) {
            throw Payloads.bad(m, "came with " + m.fdCount() + " descriptors; the state pipe needs one");
        }
        if (t.phase() != VhostUser.PHASE_STOPPED) {
            throw Payloads.bad(m, "phase " + t.phase() + ": only 0 (stopped) exists");
        }
        if (t.direction() != VhostUser.TRANSFER_SAVE && t.direction() != VhostUser.TRANSFER_LOAD) {
            throw Payloads.bad(m, "direction " + t.direction() + " is neither save (0) nor load (1)");
        }
        if (rings.anyStarted()) {
            throw Payloads.bad(m, "while rings run; the device state moves with every ring stopped");
        }
        if (transfer != null) {
            transfer.abandon();
        }
        Fd pipe = m.takeFd(0);
        try {
            transfer = t.direction() == VhostUser.TRANSFER_SAVE ? StateTransfer.save(model, pipe) : StateTransfer.load(pipe);
            transferResult = null;
        } catch (java.io.IOException e) {
            transfer = null;
            transferResult = "saving the device state failed: " + e.getMessage();
            throw new VhostUserException(m.name() + ": " + transferResult, e);
        }
        replyU64(m, VhostUser.DEVICE_STATE_NOFD);
    }

    private Vring ring(VhostUserMessage m, int index) throws VhostUserException {
        if (index < 0 || index >= rings.rings.length) {
            throw Payloads.bad(m, "names vq" + Integer.toUnsignedString(index) + "; this device has "
                    + rings.rings.length);
        }
        return rings.rings[index];
    }

    private static void stopped(VhostUserMessage m, Vring r) throws VhostUserException {
        if (r.started()) {
            throw Payloads.bad(m, "for vq" + r.index + " while it runs; stop it (GET_VRING_BASE) first");
        }
    }

    private void need(VhostUserMessage m, int protocolFeature) throws VhostUserException {
        if (!has(protocol, protocolFeature)) {
            throw Payloads.bad(m, "needs protocol feature " + protocolFeature + ", which was not negotiated");
        }
    }

    private void replyU64(VhostUserMessage m, long v) throws VhostUserException {
        channel.send(VhostUserMessage.reply(m.request(), Payloads.u64(v)));
    }

    /** Session end: the device reset, everything the connection brought closed. */
    void close() {
        if (transfer != null) {
            transfer.abandon();
            transfer = null;
        }
        rings.close();
        rings.backendRequests(null);
        if (logFd != null) {
            logFd.close();
            logFd = null;
        }
        protocol = 0;
    }
}
