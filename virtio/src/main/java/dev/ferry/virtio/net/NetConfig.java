package dev.ferry.virtio.net;

/**
 * virtio-net's config space (net/description.tex, {@code struct virtio_net_config}) as Ferry
 * offers it, little-endian:
 * <pre>
 *   0 mac[6]   6 status le16 (LINK_UP 1, ANNOUNCE 2)                       (8 bytes)
 * </pre>
 * QEMU sizes the space by the features offered; without MQ, MTU and SPEED_DUPLEX it ends after
 * {@code status}. Read-only for a VERSION_1 driver (the MAC changes through the control queue).
 */
public final class NetConfig {
    public static final int SIZE = 8;
    public static final int MAC_OFFSET = 0;
    public static final int STATUS_OFFSET = 6;
    public static final int S_LINK_UP = 1;
    public static final int S_ANNOUNCE = 2;

    private NetConfig() {
    }

    static byte[] encode(byte[] mac, int status) {
        byte[] b = new byte[SIZE];
        System.arraycopy(mac, 0, b, MAC_OFFSET, 6);
        b[STATUS_OFFSET] = (byte) status;
        b[STATUS_OFFSET + 1] = (byte) (status >>> 8);
        return b;
    }
}
