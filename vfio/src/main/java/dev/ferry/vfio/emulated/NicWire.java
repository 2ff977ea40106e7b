package dev.ferry.vfio.emulated;

import dev.ferry.core.memory.MemoryDigest;
import dev.ferry.core.sys.NativeMemory;

/**
 * The network an emulated NIC VF is plugged into: a deterministic stream of Ethernet frames,
 * frame {@code n} a pure function of the wire's seed and {@code n}. The device delivers them in
 * order while its receiver runs; the verifier regenerates any of them to check what the device
 * wrote into guest memory, and a destination device that took over the seed and position carries
 * on with exactly the frame that comes next.
 *
 * <p>Frames go to one of {@link #STATIONS} station MACs (the addresses a driver programs), to
 * broadcast, or to unknown MACs; a quarter each are untagged or in VLAN 100, 200, 300. Layout:
 * destination MAC, source MAC, an optional 802.1Q tag, ethertype 0x88B5, then the payload:
 * be64 sequence number, be64 seed, and filler from a per-frame generator. 64..1518 bytes.
 *
 * <p>Immutable and allocation-free.
 */
public final class NicWire {
    public static final long BROADCAST = 0xFFFF_FFFF_FFFFL;
    public static final int STATIONS = 8;
    private static final int[] VLANS = {0, 100, 200, 300};
    private static final int ETHERTYPE = 0x88B5;
    private static final int TPID = 0x8100;
    private static final int MAX_UNTAGGED = 1514;

    private final long seed;

    public NicWire(long seed) {
        this.seed = seed;
    }

    /** The seed of VF {@code index} of a device built with spec seed {@code specSeed}. */
    public static long seedFor(long specSeed, int index) {
        return MemoryDigest.mix(specSeed * 0x9E3779B97F4A7C15L + index + 0x1F2E3D4C5B6A7988L);
    }

    /** The MAC of station {@code k} (0..{@value #STATIONS}-1): 02:fe:00:00:00:0k+1, locally administered. */
    public static long station(int k) {
        if (k < 0 || k >= STATIONS) {
            throw new IllegalArgumentException("station " + k + " outside 0.." + (STATIONS - 1));
        }
        return 0x02FE_0000_0000L | (k + 1);
    }

    public long seed() {
        return seed;
    }

    private long bits(long seq) {
        return MemoryDigest.mix(seed + seq * 0x9E3779B97F4A7C15L + 0x2545F4914F6CDD1DL);
    }

    /** The destination MAC of frame {@code seq}. */
    public long destination(long seq) {
        long r = bits(seq);
        int kind = (int) (r & 15);
        if (kind < 10) {
            return station((int) (r >>> 4) & 7);
        }
        if (kind < 12) {
            return BROADCAST;
        }
        return 0x02FE_EE00_0000L | ((r >>> 40) & 0xFFFF);
    }

    /** The VLAN of frame {@code seq}; 0 for untagged. */
    public int vlan(long seq) {
        return VLANS[(int) (bits(seq) >>> 8) & 3];
    }

    /** The length of frame {@code seq} in bytes. */
    public int length(long seq) {
        long r = bits(seq);
        int untagged = NicRegisters.MIN_FRAME + (int) Long.remainderUnsigned(r >>> 16, MAX_UNTAGGED - NicRegisters.MIN_FRAME + 1);
        return vlan(seq) == 0 ? untagged : untagged + 4;
    }

    /** Writes frame {@code seq} at native {@code address} (room for {@link NicRegisters#MAX_FRAME}); returns its length. */
    public int frame(long seq, long address) {
        long r = bits(seq);
        int len = length(seq);
        int vlan = vlan(seq);
        putMac(address, destination(seq));
        putMac(address + 6, 0x02FE_FF00_0000L | (seed & 0xFFFFFF));
        int off = 12;
        if (vlan != 0) {
            putBe16(address + off, TPID);
            putBe16(address + off + 2, vlan);
            off += 4;
        }
        putBe16(address + off, ETHERTYPE);
        off += 2;
        NativeMemory.putLong(address + off, Long.reverseBytes(seq));
        NativeMemory.putLong(address + off + 8, Long.reverseBytes(seed));
        off += 16;
        long x = r | 1;
        for (; off + 8 <= len; off += 8) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            NativeMemory.putLong(address + off, x);
        }
        for (; off < len; off++) {
            x = x * 0x9E3779B97F4A7C15L + 1;
            NativeMemory.putByte(address + off, (byte) (x >>> 56));
        }
        return len;
    }

    static void putMac(long address, long mac) {
        for (int i = 0; i < 6; i++) {
            NativeMemory.putByte(address + i, (byte) (mac >>> (8 * (5 - i))));
        }
    }

    static long getMac(long address) {
        long mac = 0;
        for (int i = 0; i < 6; i++) {
            mac = mac << 8 | (NativeMemory.getByte(address + i) & 0xFF);
        }
        return mac;
    }

    private static void putBe16(long address, int v) {
        NativeMemory.putByte(address, (byte) (v >>> 8));
        NativeMemory.putByte(address + 1, (byte) v);
    }
}
