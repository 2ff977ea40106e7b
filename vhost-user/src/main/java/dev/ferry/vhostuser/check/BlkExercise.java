package dev.ferry.vhostuser.check;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.vhostuser.proto.VhostUserException;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.DriverQueue.Buffer;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;

/**
 * virtio-blk traffic for the check, on queue 0: it reads {@link #BLOCKS} 4 KiB blocks in the
 * middle of the disk (saving what they held), writes known patterns over them, reads them back
 * and compares, then writes the saved data back, so a checked disk ends as it began. A request
 * is {@code {le32 type, le32 reserved, le64 sector}} (driver), the data, and a status byte
 * (device); a status other than OK, or data that differs, is a traffic violation. The probe reads
 * the first block into a fresh slot and expects the saved data.
 */
final class BlkExercise implements DeviceExercise {
    static final int BLOCKS = 16;
    static final int BLOCK = 4096;
    private static final int T_IN = 0;
    private static final int T_OUT = 1;
    private static final int F_RO = 5;
    private static final int PROBE_SLOT = 3 * BLOCKS;
    /** Sectors from {@link #firstSector} on that the check may read: a whole slot's worth. */
    private static final long SLOT_SECTORS_MAX = (64 << 10) / 512;

    private final CheckGuest guest;
    private final DeviceMemory mem;
    private long capacitySectors = -1;
    private long firstSector;
    private boolean readOnly;
    private byte[][] saved;

    BlkExercise(CheckGuest guest) {
        this.guest = guest;
        this.mem = guest.memory();
    }

    @Override
    public String type() {
        return "blk";
    }

    @Override
    public long features(long offered) {
        readOnly = (offered & (1L << F_RO)) != 0;
        return offered & (1L << F_RO);
    }

    @Override
    public int rings() {
        return 1;
    }

    @Override
    public void configure(CheckFrontend frontend) throws VhostUserException {
        if (frontend.hasProtocol(dev.ferry.vhostuser.proto.VhostUser.PF_CONFIG)) {
            byte[] cfg = frontend.getConfig(8);
            capacitySectors = ByteBuffer.wrap(cfg).order(ByteOrder.LITTLE_ENDIAN).getLong();
        }
        long needed = Math.max((long) BLOCKS * BLOCK / 512, SLOT_SECTORS_MAX);
        if (capacitySectors < 0) {
            firstSector = 0; // no CONFIG: the first blocks, which every disk has
        } else if (capacitySectors < needed) {
            throw new VhostUserException("the disk has " + capacitySectors + " sectors; the check needs " + needed);
        } else {
            firstSector = (capacitySectors / 2 - needed / 2) & ~7L;
        }
    }

    long capacitySectors() {
        return capacitySectors;
    }

    @Override
    public void poison() {
        mem.fill(CheckGuest.STATUS, 4096, (byte) 0xff);
        mem.fill(CheckGuest.IN_DATA, (long) (PROBE_SLOT + 1) * guest.slotBytes(), (byte) 0xa5);
    }

    /** Adds one request for {@code block} using {@code slot}; data from (OUT) or into (IN) the slot's buffer. */
    int submit(CheckRing ring, int type, int slot, long sector, int bytes) {
        long hdr = CheckGuest.HEADERS + (long) slot * CheckGuest.HEADER_BYTES;
        mem.writeU32(hdr, type);
        mem.writeU32(hdr + 4, 0);
        mem.writeU64(hdr + 8, sector);
        Buffer status = new Buffer(CheckGuest.STATUS + slot, 1);
        if (type == T_OUT) {
            return ring.add(List.of(new Buffer(hdr, 16), new Buffer(guest.outBuffer(slot), bytes)), List.of(status));
        }
        return ring.add(List.of(new Buffer(hdr, 16)), List.of(new Buffer(guest.inBuffer(slot), bytes), status));
    }

    /** Waits for {@code n} completions; returns null or what failed (a timeout, a status not OK). */
    String complete(CheckRing ring, int[] slotOfHead, int n, long timeoutMs) {
        for (int i = 0; i < n; i++) {
            DriverQueue.Used u = ring.awaitUsed(timeoutMs);
            if (u == null) {
                return (n - i) + " of " + n + " requests not served within " + timeoutMs + " ms";
            }
            int slot = slotOfHead[u.id()];
            int status = mem.readU8(CheckGuest.STATUS + slot);
            if (status != 0) {
                return "request in slot " + slot + " completed with status " + status + " (0 = OK)";
            }
        }
        return null;
    }

    private String batch(CheckRing ring, int type, int firstSlot, long timeoutMs) {
        int[] slotOfHead = new int[CheckGuest.QUEUE_SIZE];
        for (int b = 0; b < BLOCKS; b++) {
            int slot = firstSlot + b;
            slotOfHead[submit(ring, type, slot, firstSector + (long) b * (BLOCK / 512), BLOCK)] = slot;
        }
        ring.kick();
        return complete(ring, slotOfHead, BLOCKS, timeoutMs);
    }

    private static byte pattern(int block, int i) {
        return (byte) (block * 31 + i * 7 + (i >>> 8) + 0x3c);
    }

    @Override
    public long[] traffic(CheckRing[] rings, CheckLedger ledger, long timeoutMs) {
        CheckRing ring = rings[0];
        long requests = 0;
        String why = batch(ring, T_IN, 0, timeoutMs);
        if (why != null) {
            ledger.violation(CheckRule.TRAFFIC, "reading " + BLOCKS + " blocks at sector " + firstSector + ": " + why);
            return new long[] {requests, 0};
        }
        requests += BLOCKS;
        saved = new byte[BLOCKS][BLOCK];
        for (int b = 0; b < BLOCKS; b++) {
            mem.read(guest.inBuffer(b), saved[b], 0, BLOCK);
        }
        if (readOnly) {
            ledger.note(CheckRule.TRAFFIC, "the disk is read-only (VIRTIO_BLK_F_RO): reads only");
            ledger.pass(CheckRule.TRAFFIC);
            return new long[] {requests, (long) requests * BLOCK};
        }
        byte[] block = new byte[BLOCK];
        for (int b = 0; b < BLOCKS; b++) {
            for (int i = 0; i < BLOCK; i++) {
                block[i] = pattern(b, i);
            }
            mem.write(guest.outBuffer(b), block, 0, BLOCK);
        }
        why = batch(ring, T_OUT, 0, timeoutMs);
        if (why == null) {
            requests += BLOCKS;
            why = batch(ring, T_IN, BLOCKS, timeoutMs);
        }
        if (why != null) {
            ledger.violation(CheckRule.TRAFFIC, "writing and reading back " + BLOCKS + " blocks: " + why);
            return new long[] {requests, (long) requests * BLOCK};
        }
        requests += BLOCKS;
        byte[] back = new byte[BLOCK];
        for (int b = 0; b < BLOCKS; b++) {
            mem.read(guest.inBuffer(BLOCKS + b), back, 0, BLOCK);
            for (int i = 0; i < BLOCK; i++) {
                block[i] = pattern(b, i);
            }
            if (!Arrays.equals(block, back)) {
                ledger.violation(CheckRule.TRAFFIC, "block " + b + " (sector " + (firstSector + b * 8L)
                        + ") read back differs from what was written");
                return new long[] {requests, (long) requests * BLOCK};
            }
        }
        for (int b = 0; b < BLOCKS; b++) {
            mem.write(guest.outBuffer(BLOCKS + b), saved[b], 0, BLOCK);
        }
        why = batch(ring, T_OUT, BLOCKS, timeoutMs);
        if (why != null) {
            ledger.violation(CheckRule.TRAFFIC, "writing the saved blocks back: " + why);
            return new long[] {requests, (long) requests * BLOCK};
        }
        requests += BLOCKS;
        ledger.pass(CheckRule.TRAFFIC);
        return new long[] {requests, (long) requests * BLOCK};
    }

    @Override
    public int burst(CheckRing[] rings) {
        int n = Math.min(32, PROBE_SLOT);
        for (int slot = 0; slot < n; slot++) {
            submit(rings[0], T_IN, slot, firstSector, guest.slotBytes());
        }
        rings[0].kick();
        return n;
    }

    @Override
    public int probeRing() {
        return 0;
    }

    @Override
    public int probe(CheckRing[] rings) {
        int head = submit(rings[0], T_IN, PROBE_SLOT, firstSector, BLOCK);
        rings[0].kick();
        return head;
    }

    @Override
    public String awaitProbe(CheckRing[] rings, int head, long timeoutMs) {
        rings[0].kick();
        DriverQueue.Used u = rings[0].awaitUsed(timeoutMs);
        if (u == null) {
            return "the request was not served within " + timeoutMs + " ms";
        }
        if (u.id() != head) {
            return "the back-end returned head " + u.id() + ", not the request's head " + head;
        }
        int status = mem.readU8(CheckGuest.STATUS + PROBE_SLOT);
        if (status != 0) {
            return "the request completed with status " + status;
        }
        if (saved != null) {
            byte[] got = new byte[BLOCK];
            mem.read(guest.inBuffer(PROBE_SLOT), got, 0, BLOCK);
            if (!Arrays.equals(got, saved[0])) {
                return "the data read differs from the block's content";
            }
        }
        return null;
    }
}
