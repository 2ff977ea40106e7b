package dev.ferry.virtio.net;

import java.util.Arrays;

/**
 * Which frames from the back-end reach the guest: QEMU's receive filter. Promiscuous mode (the
 * power-on default, as QEMU's) takes everything; otherwise broadcast unless NOBCAST, multicast
 * when ALLMULTI, the table overflowed or the address is in the table's multicast part (never
 * with NOMULTI), unicast to the device's MAC or, with ALLUNI, an overflowed table or an entry in
 * the unicast part, any (never with NOUNI).
 *
 * <p>Shared by the built-in {@link VirtioNet}, which filters with it, and the vhost-user-net
 * front-end, which only records it (its back-end moves the frames and filters nothing).
 * Loop thread only (and the migration thread with the VM stopped).
 */
public final class RxFilter {
    static final int TABLE_ENTRIES = 64;

    boolean promisc = true;
    boolean allmulti;
    boolean alluni;
    boolean nomulti;
    boolean nouni;
    boolean nobcast;
    boolean uniOverflow;
    boolean multiOverflow;
    /** {@code inUse} MACs, unicast first, multicast from {@code firstMulti}. */
    byte[] table = new byte[TABLE_ENTRIES * 6];
    int inUse;
    int firstMulti;
    private final byte[] scratch = new byte[6];

    /** The power-on state: promiscuous, an empty table. */
    public void reset() {
        promisc = true;
        allmulti = alluni = nomulti = nouni = nobcast = false;
        uniOverflow = multiOverflow = false;
        Arrays.fill(table, (byte) 0);
        inUse = 0;
        firstMulti = 0;
    }

    /** Promiscuous mode (RX_PROMISC; on at power-on). */
    public boolean promisc() {
        return promisc;
    }

    /** All-multicast mode (RX_ALLMULTI). */
    public boolean allmulti() {
        return allmulti;
    }

    /** MACs in the table (unicast and multicast), overflowed parts not counted. */
    public int tableEntries() {
        return inUse;
    }

    /** Whether a frame whose destination MAC is {@code dst[off..off+6)} passes. */
    boolean accepts(byte[] mac, long dstAddress) {
        if (promisc) {
            return true;
        }
        dev.ferry.core.sys.NativeMemory.copyToArray(dstAddress, scratch, 0, 6);
        return accepts(mac, scratch);
    }

    /** Whether a frame to {@code d} passes when the device's MAC is {@code mac}. */
    public boolean accepts(byte[] mac, byte[] d) {
        if (promisc) {
            return true;
        }
        boolean broadcast = true;
        for (byte b : d) {
            broadcast &= b == (byte) 0xff;
        }
        if (broadcast) {
            return !nobcast;
        }
        if ((d[0] & 1) != 0) {
            if (nomulti) {
                return false;
            }
            if (allmulti || multiOverflow) {
                return true;
            }
            return inTable(d, firstMulti, inUse);
        }
        if (nouni) {
            return false;
        }
        if (alluni || uniOverflow || Arrays.equals(mac, d)) {
            return true;
        }
        return inTable(d, 0, firstMulti);
    }

    private boolean inTable(byte[] d, int from, int to) {
        for (int i = from; i < to; i++) {
            if (Arrays.equals(table, i * 6, i * 6 + 6, d, 0, 6)) {
                return true;
            }
        }
        return false;
    }
}
