package dev.ferry.virtio.guest;

/**
 * The frames Ferry's guest net driver and the traffic peer exchange: Ethernet with the local
 * experimental ethertype 0x88b5 and a fixed header, padded to the frame length in use.
 * <pre>
 *   0 dst mac   6 src mac   12 be16 0x88b5
 *  14 be32 magic "FRRY"   18 u8 kind (DATA 1 from the guest, REPLY 2 from the peer)   19 u8 flow
 *  20 be64 seq (the sender's, from 1, +1 per frame)   28 be64 echo (REPLY: the DATA seq it answers)
 *  36 .. padding
 * </pre>
 * The flow byte is 0 from a single-queue guest; a multiqueue guest ({@link SoftMqNetDriver}) sends
 * one flow per queue pair, numbered by the pair, each with its own sequence numbers; a REPLY
 * carries its DATA frame's flow.
 */
public final class NetTraffic {
    public static final int ETHERTYPE = 0x88b5;
    public static final int MAGIC = 0x46525259;
    public static final int DATA = 1;
    public static final int REPLY = 2;
    public static final int MIN_FRAME = 36;
    public static final int ETHERTYPE_ARP = 0x0806;

    /** The traffic peer's MAC: locally administered. */
    public static final byte[] PEER_MAC = {0x02, (byte) 0xfe, 0, 0, 0, 0x01};

    private NetTraffic() {
    }

    public static long macToLong(byte[] m) {
        long v = 0;
        for (int i = 0; i < 6; i++) {
            v = v << 8 | (m[i] & 0xff);
        }
        return v;
    }

    public static byte[] longToMac(long v) {
        byte[] m = new byte[6];
        for (int i = 5; i >= 0; i--) {
            m[i] = (byte) v;
            v >>>= 8;
        }
        return m;
    }

    /**
     * A gratuitous ARP for {@code mac} (who-has 0.0.0.0 tell 0.0.0.0 from {@code mac}, to
     * broadcast), 60 bytes: what the driver sends when the device asks it to announce itself.
     */
    public static byte[] garp(byte[] mac) {
        byte[] f = new byte[60];
        for (int i = 0; i < 6; i++) {
            f[i] = (byte) 0xff;
        }
        System.arraycopy(mac, 0, f, 6, 6);
        f[12] = 0x08;
        f[13] = 0x06;
        f[15] = 1;
        f[16] = 0x08;
        f[18] = 6;
        f[19] = 4;
        f[21] = 1;
        System.arraycopy(mac, 0, f, 22, 6);
        return f;
    }
}
