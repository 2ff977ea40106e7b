package dev.ferry.vfio.emulated;

import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.util.Arrays;

import static dev.ferry.vfio.emulated.NicRegisters.COUNTERS;
import static dev.ferry.vfio.emulated.NicRegisters.CTRL_KEPT;
import static dev.ferry.vfio.emulated.NicRegisters.CTRL_RX_EN;
import static dev.ferry.vfio.emulated.NicRegisters.CTRL_TX_EN;
import static dev.ferry.vfio.emulated.NicRegisters.DESC_SIZE;
import static dev.ferry.vfio.emulated.NicRegisters.ICR_ALL;
import static dev.ferry.vfio.emulated.NicRegisters.MAX_BUF_SIZE;
import static dev.ferry.vfio.emulated.NicRegisters.MAX_FRAME;
import static dev.ferry.vfio.emulated.NicRegisters.MBX_ERROR;
import static dev.ferry.vfio.emulated.NicRegisters.RSS_KEY_SIZE;
import static dev.ferry.vfio.emulated.NicRegisters.TABLE_SIZE;

/**
 * Everything an emulated NIC VF holds besides its bulk state memory: the registers, the counters,
 * the filter the mailbox programmed and the wire's seed and position. It travels as the device's
 * control state ({@code saveDeviceControl}), so it has a versioned layout and a decoder that
 * refuses anything a device could not have been in.
 *
 * <h2>Layout (big-endian)</h2>
 * <pre>
 *   0 be32 magic "FNIC"   4 be32 version (1)   8 be32 body length
 *  12 body:
 *     be32 ctrl, icr, imr, flags (bit 0: ring error)
 *     be64 rx base, be32 rx size, rx head, rx tail, rx buffer size
 *     be64 tx base, be32 tx size, tx head, tx tail
 *     be64 mailbox address, be32 mailbox status
 *     be64 counters[7] (RX_PACKETS .. DMA_FAULTS, register order)
 *     be64 MAC (0: none), be32 n, be64 table MAC[n], be32 m, be32 table VLAN[m], 40 bytes RSS key
 *     be64 wire seed, be64 wire position (next sequence number)
 * </pre>
 * Not thread-safe: the device guards it with its lock.
 */
final class NicState {
    static final int MAGIC = 0x464E4943; // "FNIC"
    static final int VERSION = 1;
    static final int HEAD = 12;

    int ctrl;
    int icr;
    int imr;
    boolean ringError;
    long rxBase;
    int rxSize;
    int rxHead;
    int rxTail;
    int rxBufSize;
    long txBase;
    int txSize;
    int txHead;
    int txTail;
    long mbxAddr;
    int mbxStatus;
    final long[] counters = new long[COUNTERS];
    NicFilter filter = NicFilter.EMPTY;
    long wireSeed;
    long wirePosition;

    /** A guest-visible reset: every register, counter and table back to zero; the wire goes on. */
    void resetGuestVisible() {
        long seed = wireSeed;
        long position = wirePosition;
        copyFrom(new NicState());
        wireSeed = seed;
        wirePosition = position;
    }

    void copyFrom(NicState o) {
        ctrl = o.ctrl;
        icr = o.icr;
        imr = o.imr;
        ringError = o.ringError;
        rxBase = o.rxBase;
        rxSize = o.rxSize;
        rxHead = o.rxHead;
        rxTail = o.rxTail;
        rxBufSize = o.rxBufSize;
        txBase = o.txBase;
        txSize = o.txSize;
        txHead = o.txHead;
        txTail = o.txTail;
        mbxAddr = o.mbxAddr;
        mbxStatus = o.mbxStatus;
        System.arraycopy(o.counters, 0, counters, 0, COUNTERS);
        filter = o.filter;
        wireSeed = o.wireSeed;
        wirePosition = o.wirePosition;
    }

    private int bodyLength() {
        return 16 + 24 + 20 + 12 + 8 * COUNTERS + 8 + 4 + 8 * filter.macCount() + 4 + 4 * filter.vlanCount()
                + RSS_KEY_SIZE + 16;
    }

    byte[] encode() {
        int body = bodyLength();
        ByteBuffer b = ByteBuffer.allocate(HEAD + body);
        b.putInt(MAGIC).putInt(VERSION).putInt(body);
        b.putInt(ctrl).putInt(icr).putInt(imr).putInt(ringError ? 1 : 0);
        b.putLong(rxBase).putInt(rxSize).putInt(rxHead).putInt(rxTail).putInt(rxBufSize);
        b.putLong(txBase).putInt(txSize).putInt(txHead).putInt(txTail);
        b.putLong(mbxAddr).putInt(mbxStatus);
        for (long c : counters) {
            b.putLong(c);
        }
        b.putLong(filter.mac()).putInt(filter.macCount());
        for (int i = 0; i < filter.macCount(); i++) {
            b.putLong(filter.tableMac(i));
        }
        b.putInt(filter.vlanCount());
        for (int i = 0; i < filter.vlanCount(); i++) {
            b.putInt(filter.tableVlan(i));
        }
        for (int i = 0; i < RSS_KEY_SIZE; i++) {
            b.put(filter.rssKeyByte(i));
        }
        b.putLong(wireSeed).putLong(wirePosition);
        if (b.hasRemaining()) {
            throw new IllegalStateException("NIC state layout: " + b.remaining() + " bytes unwritten");
        }
        return b.array();
    }

    /** Decodes and checks a control state; {@link IllegalArgumentException} names the first thing wrong. */
    static NicState decode(byte[] data) {
        ByteBuffer b = ByteBuffer.wrap(data);
        try {
            int magic = b.getInt();
            if (magic != MAGIC) {
                throw bad("magic 0x" + Integer.toHexString(magic) + " is not \"FNIC\"");
            }
            int version = b.getInt();
            if (version != VERSION) {
                throw bad("layout version " + version + "; this device reads version " + VERSION);
            }
            int body = b.getInt();
            if (body != data.length - HEAD) {
                throw bad("body length " + body + " but " + (data.length - HEAD) + " bytes follow the head");
            }
            NicState s = new NicState();
            s.ctrl = b.getInt();
            s.icr = b.getInt();
            s.imr = b.getInt();
            int flags = b.getInt();
            s.rxBase = b.getLong();
            s.rxSize = b.getInt();
            s.rxHead = b.getInt();
            s.rxTail = b.getInt();
            s.rxBufSize = b.getInt();
            s.txBase = b.getLong();
            s.txSize = b.getInt();
            s.txHead = b.getInt();
            s.txTail = b.getInt();
            s.mbxAddr = b.getLong();
            s.mbxStatus = b.getInt();
            for (int i = 0; i < COUNTERS; i++) {
                s.counters[i] = b.getLong();
            }
            long mac = b.getLong();
            int macs = b.getInt();
            if (macs < 0 || macs > TABLE_SIZE) {
                throw bad("MAC table of " + macs + " entries (at most " + TABLE_SIZE + ")");
            }
            long[] macTable = new long[macs];
            for (int i = 0; i < macs; i++) {
                macTable[i] = b.getLong();
            }
            int vlans = b.getInt();
            if (vlans < 0 || vlans > TABLE_SIZE) {
                throw bad("VLAN table of " + vlans + " entries (at most " + TABLE_SIZE + ")");
            }
            int[] vlanTable = new int[vlans];
            for (int i = 0; i < vlans; i++) {
                vlanTable[i] = b.getInt();
            }
            byte[] key = new byte[RSS_KEY_SIZE];
            b.get(key);
            s.wireSeed = b.getLong();
            s.wirePosition = b.getLong();
            if (b.hasRemaining()) {
                throw bad(b.remaining() + " bytes after the wire position");
            }
            s.ringError = check(flags, 1, "flags") != 0;
            s.filter = new NicFilter(mac, macTable, vlanTable, key);
            s.check();
            return s;
        } catch (BufferUnderflowException e) {
            throw bad("truncated: " + data.length + " bytes end inside a field");
        }
    }

    private static int check(int value, int allowed, String what) {
        if ((value & ~allowed) != 0) {
            throw bad(what + " 0x" + Integer.toHexString(value) + " has unknown bits 0x" + Integer.toHexString(value & ~allowed));
        }
        return value;
    }

    private void check() {
        check(ctrl, CTRL_KEPT, "CTRL");
        check(icr, ICR_ALL, "ICR");
        check(imr, ICR_ALL, "IMR");
        ring("RX", rxBase, rxSize, rxHead, rxTail);
        ring("TX", txBase, txSize, txHead, txTail);
        if (rxBufSize != 0 && (rxBufSize < MAX_FRAME || rxBufSize > MAX_BUF_SIZE)) {
            throw bad("RX buffer size " + rxBufSize + " outside " + MAX_FRAME + ".." + MAX_BUF_SIZE);
        }
        if ((ctrl & CTRL_RX_EN) != 0 && (rxSize == 0 || rxBufSize == 0)) {
            throw bad("RX enabled without a ring (size " + rxSize + ", buffers of " + rxBufSize + " bytes)");
        }
        if ((ctrl & CTRL_TX_EN) != 0 && txSize == 0) {
            throw bad("TX enabled without a ring");
        }
        if ((mbxStatus & 0xFF) > MBX_ERROR) {
            throw bad("mailbox state " + (mbxStatus & 0xFF));
        }
        for (int i = 0; i < COUNTERS; i++) {
            if (counters[i] < 0) {
                throw bad("counter " + i + " is negative (" + counters[i] + ")");
            }
        }
        if (filter.mac() != 0 && !NicRegisters.unicastMac(filter.mac())) {
            throw bad("MAC " + NicRegisters.macString(filter.mac()) + " is not a unicast address");
        }
        long[] seen = new long[filter.macCount()];
        for (int i = 0; i < filter.macCount(); i++) {
            long m = filter.tableMac(i);
            if (!tableMac(m)) {
                throw bad("MAC table entry " + i + " (0x" + Long.toHexString(m) + ") is not a 48-bit address");
            }
            for (int j = 0; j < i; j++) {
                if (seen[j] == m) {
                    throw bad("MAC table holds " + NicRegisters.macString(m) + " twice");
                }
            }
            seen[i] = m;
        }
        for (int i = 0; i < filter.vlanCount(); i++) {
            int v = filter.tableVlan(i);
            if (v < 1 || v > 4094) {
                throw bad("VLAN table entry " + i + " is " + v + " (1..4094)");
            }
            for (int j = 0; j < i; j++) {
                if (filter.tableVlan(j) == v) {
                    throw bad("VLAN table holds " + v + " twice");
                }
            }
        }
        if (wirePosition < 0) {
            throw bad("wire position " + wirePosition + " is negative");
        }
    }

    private static void ring(String name, long base, int size, int head, int tail) {
        if (size == 0) {
            if (head != 0 || tail != 0) {
                throw bad(name + " ring has no size but head " + head + ", tail " + tail);
            }
            return;
        }
        if (!NicRegisters.validRingSize(size)) {
            throw bad(name + " ring size " + size + " is not a power of two in " + NicRegisters.MIN_RING + ".."
                    + NicRegisters.MAX_RING);
        }
        if (head < 0 || head >= size || tail < 0 || tail >= size) {
            throw bad(name + " ring head " + head + " / tail " + tail + " outside a ring of " + size);
        }
        if (base % DESC_SIZE != 0 || base < 0) {
            throw bad(name + " ring base 0x" + Long.toHexString(base) + " is not " + DESC_SIZE + "-byte aligned");
        }
    }

    /** A MAC a filter table may hold: non-zero, 48 bits, not broadcast. */
    static boolean tableMac(long m) {
        return m != 0 && (m >>> 48) == 0 && m != NicWire.BROADCAST;
    }

    private static IllegalArgumentException bad(String what) {
        return new IllegalArgumentException("NIC control state: " + what);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof NicState s && Arrays.equals(s.encode(), encode());
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(encode());
    }
}
