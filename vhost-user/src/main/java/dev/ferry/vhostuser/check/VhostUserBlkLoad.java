package dev.ferry.vhostuser.check;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.sys.Fd;
import dev.ferry.vhostuser.proto.Payloads;
import dev.ferry.vhostuser.proto.VhostUser;
import dev.ferry.vhostuser.proto.VhostUserException;
import dev.ferry.vhostuser.proto.VhostUserMessage;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.DriverQueue.Buffer;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.LongUnaryOperator;

/**
 * The check's driver as a load generator, for {@code ferry bench vhost-user-blk}: one connection
 * to a vhost-user-blk back-end, queue 0 of {@link CheckGuest#QUEUE_SIZE} entries, up to
 * {@code depth} requests in flight, each into or out of its own slot. With {@code logging} the
 * connection is put in migration mode as QEMU does (shared log, LOG_ALL, used-ring logging) and
 * every {@link #run} ends with a harvest of the log, as a migration iteration's sync would; what
 * that costs the back-end is the benchmark's "logging" figure.
 *
 * <p>Not thread-safe: one benchmark thread. Owns the connection, the guest and the ring.
 */
public final class VhostUserBlkLoad implements AutoCloseable {
    private static final int T_IN = 0;
    private static final int T_OUT = 1;

    private final CheckGuest guest;
    private final DeviceMemory mem;
    private final CheckFrontend frontend;
    private final CheckRing ring;
    private final int depth;
    private final int[] slotOfHead = new int[CheckGuest.QUEUE_SIZE];
    private final long[] offsetOfSlot;
    private final int[] freeSlots;
    private int freeCount;
    private long pagesLogged;
    /** Per slot, the chains of a read and of a write of {@link #chainSize} bytes (only the header changes per request). */
    private final List<List<Buffer>> readOut = new ArrayList<>();
    private final List<List<Buffer>> readIn = new ArrayList<>();
    private final List<List<Buffer>> writeOut = new ArrayList<>();
    private final List<List<Buffer>> writeIn = new ArrayList<>();
    private int chainSize = -1;
    /** The back-end's in-flight region, when asked for (owned here; the back-end maps its own copy). */
    private Fd inflight;

    private VhostUserBlkLoad(CheckGuest guest, CheckFrontend frontend, CheckRing ring, int depth) {
        this.guest = guest;
        this.mem = guest.memory();
        this.frontend = frontend;
        this.ring = ring;
        this.depth = depth;
        this.offsetOfSlot = new long[depth];
        this.freeSlots = new int[depth];
        for (int i = 0; i < depth; i++) {
            freeSlots[freeCount++] = i;
        }
    }

    /**
     * Connects, negotiates, shares the guest and starts queue 0.
     *
     * @param maxIoSize the largest request, a multiple of 4 KiB
     * @param depth     requests in flight, at most {@code 4 MiB / maxIoSize} and 42 (three descriptors each)
     */
    public static VhostUserBlkLoad connect(Path socket, int maxIoSize, int depth, boolean logging)
            throws VhostUserException {
        return connect(socket, maxIoSize, depth, logging, false);
    }

    /**
     * As above; with {@code inflight} the back-end must offer INFLIGHT_SHMFD, and its in-flight
     * region is fetched (GET_INFLIGHT_FD) and handed back (SET_INFLIGHT_FD) before the ring
     * starts, as QEMU's vhost-user-blk does: the back-end then records every request it takes
     * and completes there, which is that figure's cost.
     */
    public static VhostUserBlkLoad connect(Path socket, int maxIoSize, int depth, boolean logging, boolean inflight)
            throws VhostUserException {
        CheckGuest guest = new CheckGuest(maxIoSize);
        if (depth < 1 || depth > guest.slots() || depth * 3 > CheckGuest.QUEUE_SIZE) {
            guest.close();
            throw new IllegalArgumentException("depth " + depth + " with " + maxIoSize + "-byte requests: 1.."
                    + Math.min(guest.slots(), CheckGuest.QUEUE_SIZE / 3));
        }
        CheckFrontend fe = null;
        CheckRing ring = null;
        Fd region = null;
        try {
            fe = CheckFrontend.connect(socket, 5_000);
            long features = VhostUser.bit(Virtio.F_VERSION_1) | VhostUser.bit(VhostUser.F_PROTOCOL_FEATURES);
            fe.negotiate(VhostUserCheck.WANTED_PROTOCOL | (inflight ? VhostUser.bit(VhostUser.PF_INFLIGHT_SHMFD) : 0),
                    features);
            if (logging && !(VhostUser.has(fe.offered(), VhostUser.F_LOG_ALL) && fe.hasProtocol(VhostUser.PF_LOG_SHMFD))) {
                throw new VhostUserException(socket + ": the back-end cannot log (no LOG_ALL or LOG_SHMFD)");
            }
            if (inflight && !fe.hasProtocol(VhostUser.PF_INFLIGHT_SHMFD)) {
                throw new VhostUserException(socket + ": the back-end keeps no in-flight region (no INFLIGHT_SHMFD)");
            }
            fe.setMemTable(guest);
            if (inflight) {
                Payloads.Inflight asked = new Payloads.Inflight(0, 0, 1, CheckGuest.QUEUE_SIZE);
                try (VhostUserMessage r = fe.connection().call(VhostUser.GET_INFLIGHT_FD, Payloads.inflight(asked))) {
                    Payloads.Inflight got = Payloads.inflight(r);
                    if (r.fdCount() != 1) {
                        throw new VhostUserException(socket + ": GET_INFLIGHT_FD came with " + r.fdCount() + " descriptors");
                    }
                    region = r.takeFd(0);
                    fe.request(VhostUser.SET_INFLIGHT_FD, Payloads.inflight(new Payloads.Inflight(got.mmapSize(),
                            got.mmapOffset(), 1, CheckGuest.QUEUE_SIZE)), region);
                }
            }
            ring = new CheckRing(guest, 0, 0);
            fe.startRing(ring, 0, false);
            fe.enable(0, true);
            if (logging) {
                fe.startLogging(features, ring);
            }
            for (int s = 0; s < depth; s++) {
                guest.memory().fill(guest.outBuffer(s), maxIoSize, (byte) (0x5a + s));
            }
            VhostUserBlkLoad load = new VhostUserBlkLoad(guest, fe, ring, depth);
            load.inflight = region;
            return load;
        } catch (VhostUserException | RuntimeException e) {
            if (region != null) {
                region.close();
            }
            if (ring != null) {
                ring.close();
            }
            if (fe != null) {
                fe.close();
            }
            guest.close();
            throw e;
        }
    }

    /**
     * Issues requests {@code first .. first + count - 1} of {@code ioSize} bytes at
     * {@code offset.applyAsLong(i)} (reads, or writes of the slots' bytes) with up to the depth in
     * flight; returns when all completed (and, when logging, after harvesting the log).
     *
     * @throws IllegalStateException a request failed or was not served within 5 s
     */
    public void run(int ioSize, LongUnaryOperator offset, long first, int count, boolean write) {
        if (ioSize <= 0 || ioSize > guest.slotBytes() || ioSize % 512 != 0) {
            throw new IllegalArgumentException("request of " + ioSize + " bytes; slots hold " + guest.slotBytes());
        }
        if (ioSize != chainSize) {
            chainsFor(ioSize);
        }
        long next = first;
        long end = first + count;
        int done = 0;
        while (done < count) {
            boolean added = false;
            while (next < end && freeCount > 0) {
                int s = freeSlots[--freeCount];
                long off = offset.applyAsLong(next++);
                offsetOfSlot[s] = off;
                long hdr = CheckGuest.HEADERS + (long) s * CheckGuest.HEADER_BYTES;
                mem.writeU32(hdr, write ? T_OUT : T_IN);
                mem.writeU32(hdr + 4, 0);
                mem.writeU64(hdr + 8, off / 512);
                int head = write ? ring.add(writeOut.get(s), writeIn.get(s)) : ring.add(readOut.get(s), readIn.get(s));
                slotOfHead[head] = s;
                added = true;
            }
            if (added) {
                ring.kick();
            }
            DriverQueue.Used u = ring.awaitUsed(5_000);
            if (u == null) {
                throw new IllegalStateException(frontend.connection().peer() + ": " + (count - done)
                        + " requests not served within 5 s");
            }
            do {
                int s = slotOfHead[u.id()];
                int st = mem.readU8(CheckGuest.STATUS + s);
                if (st != 0) {
                    throw new IllegalStateException("the back-end completed the request at offset " + offsetOfSlot[s]
                            + " with status " + st);
                }
                freeSlots[freeCount++] = s;
                done++;
            } while ((u = ring.queue().pollUsed()) != null);
        }
        pagesLogged += guest.harvestLog().cardinality();
    }

    private void chainsFor(int ioSize) {
        readOut.clear();
        readIn.clear();
        writeOut.clear();
        writeIn.clear();
        for (int s = 0; s < depth; s++) {
            Buffer hdr = new Buffer(CheckGuest.HEADERS + (long) s * CheckGuest.HEADER_BYTES, 16);
            Buffer status = new Buffer(CheckGuest.STATUS + s, 1);
            readOut.add(List.of(hdr));
            readIn.add(List.of(new Buffer(guest.inBuffer(s), ioSize), status));
            writeOut.add(List.of(hdr, new Buffer(guest.outBuffer(s), ioSize)));
            writeIn.add(List.of(status));
        }
        chainSize = ioSize;
    }

    /** Pages the back-end's log named over all runs (0 without logging). */
    public long pagesLogged() {
        return pagesLogged;
    }

    public int depth() {
        return depth;
    }

    @Override
    public void close() {
        ring.close();
        frontend.close();
        guest.close();
        if (inflight != null) {
            inflight.close();
        }
    }
}
