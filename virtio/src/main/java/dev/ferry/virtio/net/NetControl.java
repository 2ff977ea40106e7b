package dev.ferry.virtio.net;

/**
 * The control queue's commands (net/description.tex 5.1.6.5): a request is
 * {@code u8 class | u8 command | command data} in device-readable buffers and one
 * device-writable {@code u8 ack} (OK 0, ERR 1) after them. Ferry serves the classes its features
 * offer: RX mode (CTRL_RX), the MAC filter table and address (CTRL_RX, CTRL_MAC_ADDR) and the
 * announce ack (GUEST_ANNOUNCE); every other class or command is answered ERR.
 * <pre>
 *   RX 0:        PROMISC 0, ALLMULTI 1, ALLUNI 2, NOMULTI 3, NOUNI 4, NOBCAST 5   data: u8 on/off
 *   MAC 1:       TABLE_SET 0   data: le32 n, n x mac[6] (unicast), le32 m, m x mac[6] (multicast)
 *                ADDR_SET 1    data: mac[6]
 *   VLAN 2, MQ 4, GUEST_OFFLOADS 5: not offered (ERR)
 *   ANNOUNCE 3:  ACK 0         no data; clears S_ANNOUNCE
 * </pre>
 */
public final class NetControl {
    public static final int OK = 0;
    public static final int ERR = 1;

    public static final int CLASS_RX = 0;
    public static final int RX_PROMISC = 0;
    public static final int RX_ALLMULTI = 1;
    public static final int RX_ALLUNI = 2;
    public static final int RX_NOMULTI = 3;
    public static final int RX_NOUNI = 4;
    public static final int RX_NOBCAST = 5;

    public static final int CLASS_MAC = 1;
    public static final int MAC_TABLE_SET = 0;
    public static final int MAC_ADDR_SET = 1;

    public static final int CLASS_VLAN = 2;
    public static final int CLASS_ANNOUNCE = 3;
    public static final int ANNOUNCE_ACK = 0;
    public static final int CLASS_MQ = 4;
    public static final int CLASS_GUEST_OFFLOADS = 5;

    /** The most command data Ferry reads (a full MAC table is 8 + 64 x 6 bytes). */
    public static final int MAX_DATA = 1024;

    private NetControl() {
    }
}
