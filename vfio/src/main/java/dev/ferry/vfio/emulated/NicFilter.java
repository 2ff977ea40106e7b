package dev.ferry.vfio.emulated;

import dev.ferry.core.sys.NativeMemory;

import java.util.Arrays;
import java.util.List;

/**
 * What the NIC's receive filter holds — the VF's MAC, the MAC and VLAN filter tables and the RSS
 * key — all programmed through the mailbox and invisible in the registers. An immutable value:
 * the device swaps in a new one per mailbox message, the driver keeps the one it programmed, and
 * the verifier judges delivered frames by it.
 *
 * <p>A frame passes when the receiver is promiscuous, or when its destination is the VF's MAC,
 * a table MAC or broadcast and it is untagged or in a table VLAN. The RSS hash is a Toeplitz
 * hash of the frame's first {@value #RSS_INPUT} bytes under the key (0 without a key).
 */
public final class NicFilter {
    static final int RSS_INPUT = 32;
    private static final long[] NONE = new long[0];

    /** Nothing programmed: no MAC, empty tables, a zero key. */
    public static final NicFilter EMPTY = new NicFilter(0, NONE, new int[0], new byte[NicRegisters.RSS_KEY_SIZE]);

    private final long mac;
    private final long[] macs;
    private final int[] vlans;
    private final byte[] rssKey;

    NicFilter(long mac, long[] macs, int[] vlans, byte[] rssKey) {
        this.mac = mac;
        this.macs = macs;
        this.vlans = vlans;
        this.rssKey = rssKey;
    }

    /** The VF's own MAC; 0 when none is set. */
    public long mac() {
        return mac;
    }

    public List<Long> macTable() {
        return Arrays.stream(macs).boxed().toList();
    }

    public List<Integer> vlanTable() {
        return Arrays.stream(vlans).boxed().toList();
    }

    public byte[] rssKey() {
        return rssKey.clone();
    }

    public boolean hasMac(long m) {
        return Arrays.stream(macs).anyMatch(x -> x == m);
    }

    public boolean hasVlan(int v) {
        return Arrays.stream(vlans).anyMatch(x -> x == v);
    }

    public boolean accepts(long destination, int vlan, boolean promiscuous) {
        if (promiscuous) {
            return true;
        }
        boolean addressed = destination == NicWire.BROADCAST || (mac != 0 && destination == mac) || hasMac(destination);
        return addressed && (vlan == 0 || hasVlan(vlan));
    }

    /** The 16-bit RSS hash the device reports for the frame of {@code length} bytes at native {@code frame}. */
    public int rssHash(long frame, int length) {
        int n = Math.min(length, RSS_INPUT);
        long window = 0; // key bits [i, i + 32) for the current input bit i, in the top 32 bits
        for (int b = 0; b < 8; b++) {
            window = window << 8 | (rssKey[b] & 0xFF);
        }
        int keyBit = 64;
        int hash = 0;
        for (int i = 0; i < n; i++) {
            int in = NativeMemory.getByte(frame + i) & 0xFF;
            for (int bit = 7; bit >= 0; bit--) {
                if ((in >>> bit & 1) != 0) {
                    hash ^= (int) (window >>> 32);
                }
                window <<= 1;
                int k = keyBit++;
                if (k < rssKey.length * 8 && (rssKey[k >>> 3] >>> (7 - (k & 7)) & 1) != 0) {
                    window |= 1;
                }
            }
        }
        return hash >>> 16;
    }

    NicFilter withMac(long m) {
        return new NicFilter(m, macs, vlans, rssKey);
    }

    NicFilter withTableMac(long m) {
        if (hasMac(m)) {
            return this;
        }
        long[] t = Arrays.copyOf(macs, macs.length + 1);
        t[macs.length] = m;
        return new NicFilter(mac, t, vlans, rssKey);
    }

    NicFilter withoutTableMac(long m) {
        return new NicFilter(mac, Arrays.stream(macs).filter(x -> x != m).toArray(), vlans, rssKey);
    }

    NicFilter withVlan(int v) {
        if (hasVlan(v)) {
            return this;
        }
        int[] t = Arrays.copyOf(vlans, vlans.length + 1);
        t[vlans.length] = v;
        return new NicFilter(mac, macs, t, rssKey);
    }

    NicFilter withoutVlan(int v) {
        return new NicFilter(mac, macs, Arrays.stream(vlans).filter(x -> x != v).toArray(), rssKey);
    }

    NicFilter withRssKey(byte[] key) {
        if (key.length != NicRegisters.RSS_KEY_SIZE) {
            throw new IllegalArgumentException("an RSS key has " + NicRegisters.RSS_KEY_SIZE + " bytes, not " + key.length);
        }
        return new NicFilter(mac, macs, vlans, key.clone());
    }

    NicFilter withoutTables() {
        return new NicFilter(mac, NONE, new int[0], rssKey);
    }

    int macCount() {
        return macs.length;
    }

    int vlanCount() {
        return vlans.length;
    }

    long tableMac(int i) {
        return macs[i];
    }

    int tableVlan(int i) {
        return vlans[i];
    }

    byte rssKeyByte(int i) {
        return rssKey[i];
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof NicFilter f && f.mac == mac && Arrays.equals(f.macs, macs) && Arrays.equals(f.vlans, vlans)
                && Arrays.equals(f.rssKey, rssKey);
    }

    @Override
    public int hashCode() {
        return Long.hashCode(mac) * 31 + Arrays.hashCode(macs) * 17 + Arrays.hashCode(vlans) + Arrays.hashCode(rssKey);
    }

    @Override
    public String toString() {
        return "NicFilter[mac=" + (mac == 0 ? "none" : NicRegisters.macString(mac)) + ", macs="
                + Arrays.stream(macs).mapToObj(NicRegisters::macString).toList() + ", vlans=" + Arrays.toString(vlans) + "]";
    }
}
