package dev.ferry.virtio.net;

/**
 * The frame a migrated NIC announces itself with, as QEMU's {@code announce_self_create} builds it:
 * a 60-byte RARP "reverse request" (ethertype 0x8035, op 3) from the NIC's MAC to broadcast, so
 * switches learn where the MAC lives now.
 * <pre>
 *   0 dst ff:ff:ff:ff:ff:ff   6 src mac   12 be16 0x8035
 *  14 htype be16 1   16 ptype be16 0x0800   18 hlen 6   19 plen 4   20 op be16 3
 *  22 sha mac   28 spa 0.0.0.0   32 tha mac   38 tpa 0.0.0.0   42..59 zero padding
 * </pre>
 */
public final class Rarp {
    public static final int SIZE = 60;
    public static final int ETHERTYPE = 0x8035;
    public static final int OP_REVERSE_REQUEST = 3;

    private Rarp() {
    }

    public static byte[] frame(byte[] mac) {
        byte[] f = new byte[SIZE];
        for (int i = 0; i < 6; i++) {
            f[i] = (byte) 0xff;
        }
        System.arraycopy(mac, 0, f, 6, 6);
        f[12] = (byte) 0x80;
        f[13] = 0x35;
        f[15] = 1;
        f[16] = 0x08;
        f[19 - 1] = 6;
        f[19] = 4;
        f[21] = OP_REVERSE_REQUEST;
        System.arraycopy(mac, 0, f, 22, 6);
        System.arraycopy(mac, 0, f, 32, 6);
        return f;
    }

    /** True when {@code f} is such a frame (any MAC). */
    public static boolean is(byte[] f, int length) {
        return length >= 42 && (f[12] & 0xff) == 0x80 && (f[13] & 0xff) == 0x35 && f[20] == 0
                && f[21] == OP_REVERSE_REQUEST;
    }
}
