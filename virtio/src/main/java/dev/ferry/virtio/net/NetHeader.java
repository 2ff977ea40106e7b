package dev.ferry.virtio.net;

import dev.ferry.core.sys.NativeMemory;

/**
 * The virtio-net header in front of every frame (net/description.tex, {@code struct
 * virtio_net_hdr}), 12 bytes since the device always runs with VERSION_1, little-endian:
 * <pre>
 *   0 flags u8 (NEEDS_CSUM 1, DATA_VALID 2)   1 gso_type u8 (NONE 0, TCPV4 1, UDP 3, TCPV6 4, ECN 0x80)
 *   2 hdr_len le16   4 gso_size le16   6 csum_start le16   8 csum_offset le16   10 num_buffers le16
 * </pre>
 * Without MRG_RXBUF the device still writes {@code num_buffers} = 1 (VERSION_1). The legacy
 * 10-byte form (no VERSION_1, no MRG_RXBUF) never occurs: Ferry's transport requires VERSION_1.
 * Accessors read and write the header in a native frame buffer.
 */
public final class NetHeader {
    public static final int SIZE = 12;
    public static final int FLAGS = 0;
    public static final int GSO_TYPE = 1;
    public static final int HDR_LEN = 2;
    public static final int GSO_SIZE = 4;
    public static final int CSUM_START = 6;
    public static final int CSUM_OFFSET = 8;
    public static final int NUM_BUFFERS = 10;

    public static final int F_NEEDS_CSUM = 1;
    public static final int F_DATA_VALID = 2;
    public static final int GSO_NONE = 0;
    public static final int GSO_TCPV4 = 1;
    public static final int GSO_UDP = 3;
    public static final int GSO_TCPV6 = 4;
    public static final int GSO_ECN = 0x80;

    private NetHeader() {
    }

    public static void clear(long at) {
        NativeMemory.fill(at, SIZE, (byte) 0);
    }

    public static int flags(long at) {
        return NativeMemory.getByte(at + FLAGS) & 0xff;
    }

    public static int gsoType(long at) {
        return NativeMemory.getByte(at + GSO_TYPE) & 0xff;
    }

    public static void setNumBuffers(long at, int n) {
        short v = (short) n;
        NativeMemory.putShort(at + NUM_BUFFERS, NativeMemory.BIG_ENDIAN_HOST ? Short.reverseBytes(v) : v);
    }
}
