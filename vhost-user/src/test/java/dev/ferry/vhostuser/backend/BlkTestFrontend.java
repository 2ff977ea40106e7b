package dev.ferry.vhostuser.backend;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.sys.EventFd;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sys;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.QueueConfig;
import dev.ferry.virtio.queue.SplitRing;
import dev.ferry.vhostuser.proto.BackendConnection;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserException;
import dev.ferry.vhostuser.proto.VhostUserMessage;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A small vhost-user-blk front-end for the back-end's tests, following the specification's rules
 * (and QEMU 7.2's order): negotiation with REPLY_ACK, a two-region memory table of memfds whose
 * front-end addresses differ from the guest-physical ones, one ring driven by a
 * {@link DriverQueue} in that memory, kick and call eventfds, and the shared dirty log.
 *
 * <pre>
 *   gpa 0x000000  low region (1 MiB):   ring at 0x1000, request headers 0x10000, status bytes 0x20000
 *   gpa 0x200000  high region (1 MiB):  data buffers, one 4 KiB page per request slot
 * </pre>
 */
final class BlkTestFrontend implements AutoCloseable {
    static final long USER_BASE = 0x7f00_0000_0000L;
    static final long RING_GPA = 0x1000;
    static final long HEADERS = 0x10000;
    static final long STATUS = 0x20000;
    static final long DATA = 0x200000;
    static final int QUEUE_SIZE = 128;

    final GuestMemory memory;
    final DeviceMemory dm;
    final BackendConnection conn;
    final EventFd kick = new EventFd(Linux.EFD_NONBLOCK);
    final EventFd call = new EventFd(Linux.EFD_NONBLOCK);
    long features;
    long protocol;
    DriverQueue queue;
    QueueConfig ring;
    Fd logFd;
    Mapping logMap;
    long logSize;

    private final boolean ownsMemory;

    BlkTestFrontend(Path socket) throws VhostUserException {
        this(socket, GuestMemory.builder().region("low", 0, 1 << 20).region("high", DATA, 1 << 20).build(), true);
    }

    /** A front-end on existing memory (a migration destination sharing the source's RAM); does not own it. */
    BlkTestFrontend(Path socket, GuestMemory memory) throws VhostUserException {
        this(socket, memory, false);
    }

    private BlkTestFrontend(Path socket, GuestMemory memory, boolean owns) throws VhostUserException {
        this.memory = memory;
        this.ownsMemory = owns;
        this.dm = new DeviceMemory(memory);
        try {
            this.conn = BackendConnection.connect(socket, "test front-end", 5_000);
        } catch (VhostUserException e) {
            if (owns) {
                memory.close();
            }
            throw e;
        }
    }

    /** GET/SET features and protocol features (everything offered but LOG_ALL), SET_OWNER, the memory table. */
    BlkTestFrontend negotiate() throws VhostUserException {
        return negotiateWithout(0);
    }

    /** As {@link #negotiate()}, declining the features in {@code declined} too. */
    BlkTestFrontend negotiateWithout(long declined) throws VhostUserException {
        long offered = conn.getU64(VhostUser.GET_FEATURES);
        features = offered & ~VhostUser.bit(VhostUser.F_LOG_ALL) & ~declined;
        protocol = conn.getU64(VhostUser.GET_PROTOCOL_FEATURES);
        conn.request(VhostUser.SET_PROTOCOL_FEATURES, Payloads.u64(protocol));
        conn.replyAck(VhostUser.has(protocol, VhostUser.PF_REPLY_ACK));
        conn.request(VhostUser.SET_OWNER, new byte[0]);
        conn.request(VhostUser.SET_FEATURES, Payloads.u64(features));
        sendMemTable();
        return this;
    }

    void sendMemTable() throws VhostUserException {
        List<Payloads.MemRegion> table = new ArrayList<>();
        List<Fd> fds = new ArrayList<>();
        for (GuestRegion r : memory.regions()) {
            table.add(new Payloads.MemRegion(r.gpaBase(), r.size(), USER_BASE + r.gpaBase(), 0));
            fds.add(r.memfd());
        }
        conn.request(VhostUser.SET_MEM_TABLE, Payloads.memTable(table), fds.toArray(new Fd[0]));
    }

    long ringFeatures() {
        return features & (VhostUser.bit(SplitRing.F_EVENT_IDX) | VhostUser.bit(SplitRing.F_INDIRECT_DESC));
    }

    /** Lays out ring 0 fresh (indices 0) and starts it: NUM, BASE, ADDR, KICK, CALL, ENABLE. */
    BlkTestFrontend startRing() throws VhostUserException {
        ring = QueueConfig.contiguous(QUEUE_SIZE, RING_GPA, ringFeatures());
        queue = DriverQueue.builder(dm, ring).build();
        return startRing(0, false);
    }

    /** Starts ring 0 at {@code base} on a ring already laid out in memory; {@code log}: SET_VRING_ADDR asks for used-ring logging. */
    BlkTestFrontend startRing(int base, boolean log) throws VhostUserException {
        conn.request(VhostUser.SET_VRING_NUM, Payloads.vringState(0, QUEUE_SIZE));
        conn.request(VhostUser.SET_VRING_BASE, Payloads.vringState(0, base));
        setVringAddr(log);
        conn.request(VhostUser.SET_VRING_KICK, Payloads.u64(0), kick.fd());
        conn.request(VhostUser.SET_VRING_CALL, Payloads.u64(0), call.fd());
        enable(true);
        return this;
    }

    void setVringAddr(boolean log) throws VhostUserException {
        conn.request(VhostUser.SET_VRING_ADDR, Payloads.vringAddr(new Payloads.VringAddr(0, log ? VhostUser.VRING_F_LOG : 0,
                USER_BASE + ring.descGpa(), USER_BASE + ring.usedGpa(), USER_BASE + ring.availGpa(), ring.usedGpa())));
    }

    void enable(boolean on) throws VhostUserException {
        conn.request(VhostUser.SET_VRING_ENABLE, Payloads.vringState(0, on ? 1 : 0));
    }

    int getVringBase() throws VhostUserException {
        try (VhostUserMessage r = conn.call(VhostUser.GET_VRING_BASE, Payloads.vringState(0, 0))) {
            Payloads.VringState s = Payloads.vringState(r);
            if (s.index() != 0) {
                throw new AssertionError("GET_VRING_BASE answered for vq" + s.index());
            }
            return s.num();
        }
    }

    /** SET_LOG_BASE with a fresh memfd log covering both regions, then LOG_ALL and the used-ring log flag. */
    void startLogging() throws VhostUserException {
        logSize = (DATA + (1 << 20)) / 4096 / 8;
        logFd = Sys.memfdCreate("test-log", Linux.MFD_CLOEXEC);
        Sys.ftruncate(logFd, 4096);
        logMap = Mapping.shared(logFd, 0, 4096);
        try (VhostUserMessage r = conn.call(VhostUser.SET_LOG_BASE, Payloads.logBase(new Payloads.LogBase(logSize, 0)), logFd)) {
            if (r.size() != 8 || Payloads.u64(r) != 0) {
                throw new AssertionError("SET_LOG_BASE reply " + r);
            }
        }
        features |= VhostUser.bit(VhostUser.F_LOG_ALL);
        conn.request(VhostUser.SET_FEATURES, Payloads.u64(features));
        setVringAddr(true);
    }

    /** Harvests the log as QEMU does (atomic swap of each word with 0): the dirty GPAs' page numbers. */
    java.util.Set<Long> harvestLog() {
        java.util.Set<Long> pages = new java.util.TreeSet<>();
        for (long w = 0; w < (logSize + 7) / 8; w++) {
            long bits = NativeMemory.getAndSetLong(logMap.address() + w * 8, 0);
            for (int b = 0; b < 64; b++) {
                if ((bits & (1L << b)) != 0) {
                    pages.add(w * 64 + b);
                }
            }
        }
        return pages;
    }

    // ---- requests ----

    /** Queues a read of {@code sectors} sectors at {@code sector} into slot {@code slot}'s data page; returns the head. */
    int read(int slot, long sector, int sectors) {
        header(slot, 0, sector);
        return queue.add(List.of(new DriverQueue.Buffer(HEADERS + slot * 16L, 16)),
                List.of(new DriverQueue.Buffer(DATA + slot * 4096L, sectors * 512L), new DriverQueue.Buffer(STATUS + slot, 1)),
                false);
    }

    /** Queues a write of slot {@code slot}'s data page ({@code sectors} sectors) to {@code sector}. */
    int write(int slot, long sector, int sectors) {
        header(slot, 1, sector);
        return queue.add(List.of(new DriverQueue.Buffer(HEADERS + slot * 16L, 16),
                        new DriverQueue.Buffer(DATA + slot * 4096L, sectors * 512L)),
                List.of(new DriverQueue.Buffer(STATUS + slot, 1)), false);
    }

    private void header(int slot, int type, long sector) {
        dm.writeU32(HEADERS + slot * 16L, type);
        dm.writeU32(HEADERS + slot * 16L + 4, 0);
        dm.writeU64(HEADERS + slot * 16L + 8, sector);
        dm.writeU8(STATUS + slot, 0xff);
    }

    void kick() {
        kick.signal();
    }

    /** Waits up to 5 s for {@code n} used elements; returns them. */
    List<DriverQueue.Used> awaitUsed(int n) throws InterruptedException {
        List<DriverQueue.Used> got = new ArrayList<>();
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (got.size() < n) {
            DriverQueue.Used u = queue.pollUsed();
            if (u != null) {
                got.add(u);
            } else if (System.nanoTime() > deadline) {
                throw new AssertionError("only " + got.size() + " of " + n + " requests completed within 5 s");
            } else {
                Thread.sleep(1);
            }
        }
        return got;
    }

    int status(int slot) {
        return dm.readU8(STATUS + slot);
    }

    /** A copy of guest RAM (both regions), for comparing which pages a back-end changed. */
    byte[][] snapshot() {
        byte[][] s = new byte[memory.regions().size()][];
        for (int i = 0; i < s.length; i++) {
            GuestRegion r = memory.regions().get(i);
            s[i] = new byte[(int) r.size()];
            memory.read(dev.ferry.core.memory.Gpa.of(r.gpaBase()), s[i], 0, s[i].length);
        }
        return s;
    }

    /** Guest-physical page numbers whose contents differ from {@code before}. */
    java.util.Set<Long> changedPages(byte[][] before) {
        byte[][] now = snapshot();
        java.util.Set<Long> pages = new java.util.TreeSet<>();
        for (int i = 0; i < now.length; i++) {
            long base = memory.regions().get(i).gpaBase();
            for (int off = 0; off < now[i].length; off += 4096) {
                if (!java.util.Arrays.equals(now[i], off, off + 4096, before[i], off, off + 4096)) {
                    pages.add((base + off) >>> 12);
                }
            }
        }
        return pages;
    }

    @Override
    public void close() {
        conn.close();
        kick.close();
        call.close();
        if (logMap != null) {
            logMap.close();
        }
        if (logFd != null) {
            logFd.close();
        }
        if (ownsMemory) {
            memory.close();
        }
    }
}
