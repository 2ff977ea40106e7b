package dev.ferry.vfio.emulated;

/**
 * The emulated NIC VF's guest interface: the BAR0 register window, the descriptor layouts in
 * guest memory and the mailbox message format. The device ({@link EmulatedNicVf}) implements
 * it; the stand-in guest driver ({@link NicDriver}) and the verifier ({@link NicVerifier}) use it.
 *
 * <h2>BAR0 (4 KiB; 32-bit registers, little-endian; 64-bit pairs also as one 8-byte access)</h2>
 * <pre>
 * offset name          access  meaning
 * 0x000  ID            RO      {@link #ID_VALUE}
 * 0x004  VERSION       RO      1
 * 0x008  CTRL          RW      RX_EN 0, TX_EN 1, AUTO_RECYCLE 2, LOOPBACK 3, PROMISC 4; RESET 31 (write: reset, reads 0)
 * 0x00C  STATUS        RO      LINK_UP 0, RX_ACTIVE 1, TX_ACTIVE 2, MAC_SET 3, RING_ERROR 4
 * 0x010  ICR           RW1C    interrupt causes: RX 0, TX 1, MAILBOX 2, RX_DROP 3, DMA_FAULT 4
 * 0x014  IMR           RW      interrupt mask (kept; this model raises no interrupts)
 * 0x020  RX_BASE       RW64    guest-physical address of the RX ring (32-byte aligned)
 * 0x028  RX_SIZE       RW      descriptors in the ring: a power of two, 8..4096
 * 0x02C  RX_HEAD       RO      next descriptor the device fills
 * 0x030  RX_TAIL       RW      the device fills descriptors head..tail-1 (the driver posts by moving tail)
 * 0x034  RX_BUF_SIZE   RW      bytes of each RX buffer, {@link #MAX_FRAME}..65536
 * 0x040  TX_BASE       RW64    guest-physical address of the TX ring
 * 0x048  TX_SIZE       RW      a power of two, 8..4096
 * 0x04C  TX_HEAD       RO      next descriptor the device sends
 * 0x050  TX_TAIL       RW      doorbell: the device sends head..tail-1
 * 0x060  MBX_ADDR      RW64    guest-physical address of the mailbox message
 * 0x068  MBX_DOORBELL  WO      message length in bytes: the device reads the message by DMA and applies it
 * 0x06C  MBX_STATUS    RO      bits 0-7 state (0 idle, 1 done, 2 error), 8-15 error code,
 *                              16-31 messages processed (mod 65536)
 * 0x080  RX_PACKETS    RO64    counters, 64 bits each
 * 0x088  RX_BYTES      RO64
 * 0x090  RX_DROPS      RO64    accepted packets lost: ring full or an IOMMU fault
 * 0x098  RX_FILTERED   RO64    packets the MAC/VLAN filter rejected
 * 0x0A0  TX_PACKETS    RO64
 * 0x0A8  TX_BYTES      RO64
 * 0x0B0  DMA_FAULTS    RO64    DMAs the IOMMU refused (a bad ring or buffer address)
 * </pre>
 * Unknown offsets read 0 and ignore writes. Writes while the device is stopped (any non-running
 * VFIO state) are dropped and counted: a stopped device does not change.
 *
 * <h2>RX descriptor (32 bytes)</h2>
 * <pre>
 *  0 u64 buffer    driver: guest-physical address of a buffer of RX_BUF_SIZE bytes
 *  8 u32 length    device: frame bytes written to the buffer
 * 12 u32 status    device: DD 0 (done), LOOPBACK 1, VLAN 2; bits 4-15 VLAN id; bits 16-31 RSS hash
 * 16 u64 sequence  device: the wire's sequence number of the frame (TX packet number for loopback)
 * 24 u64 digest    device: digest of the frame bytes
 * </pre>
 * <h2>TX descriptor (32 bytes)</h2>
 * <pre>
 *  0 u64 buffer    driver
 *  8 u32 length    driver: 60..MAX_FRAME
 * 12 u32 status    device: DD 0 once consumed, TX_ERROR 1 if not sent (a length outside 60..MAX_FRAME)
 * 16..31           reserved
 * </pre>
 * <h2>Mailbox message (at MBX_ADDR, 8..{@link #MBX_MAX} bytes)</h2>
 * <pre>
 * 0 u32 opcode, 4 u32 argument length (= message length - 8), 8 arguments:
 *   SET_MAC 6 bytes (unicast, not zero)   ADD_MAC / DEL_MAC 6 bytes   ADD_VLAN / DEL_VLAN u16 (1..4094)
 *   SET_RSS_KEY 40 bytes                  CLEAR_FILTERS none
 * </pre>
 * MAC and VLAN tables hold {@link #TABLE_SIZE} entries each. MACs are 48-bit values whose most
 * significant byte is the first on the wire.
 */
public final class NicRegisters {
    public static final int BAR0_SIZE = 4096;
    public static final int ID_VALUE = 0xFE771C01;
    public static final int VERSION_VALUE = 1;

    public static final int ID = 0x000;
    public static final int VERSION = 0x004;
    public static final int CTRL = 0x008;
    public static final int STATUS = 0x00C;
    public static final int ICR = 0x010;
    public static final int IMR = 0x014;
    public static final int RX_BASE = 0x020;
    public static final int RX_SIZE = 0x028;
    public static final int RX_HEAD = 0x02C;
    public static final int RX_TAIL = 0x030;
    public static final int RX_BUF_SIZE = 0x034;
    public static final int TX_BASE = 0x040;
    public static final int TX_SIZE = 0x048;
    public static final int TX_HEAD = 0x04C;
    public static final int TX_TAIL = 0x050;
    public static final int MBX_ADDR = 0x060;
    public static final int MBX_DOORBELL = 0x068;
    public static final int MBX_STATUS = 0x06C;
    public static final int RX_PACKETS = 0x080;
    public static final int RX_BYTES = 0x088;
    public static final int RX_DROPS = 0x090;
    public static final int RX_FILTERED = 0x098;
    public static final int TX_PACKETS = 0x0A0;
    public static final int TX_BYTES = 0x0A8;
    public static final int DMA_FAULTS = 0x0B0;
    /** Counters from RX_PACKETS to DMA_FAULTS, in register order. */
    public static final int COUNTERS = 7;

    public static final int CTRL_RX_EN = 1;
    public static final int CTRL_TX_EN = 1 << 1;
    public static final int CTRL_AUTO_RECYCLE = 1 << 2;
    public static final int CTRL_LOOPBACK = 1 << 3;
    public static final int CTRL_PROMISC = 1 << 4;
    public static final int CTRL_RESET = 1 << 31;
    static final int CTRL_KEPT = CTRL_RX_EN | CTRL_TX_EN | CTRL_AUTO_RECYCLE | CTRL_LOOPBACK | CTRL_PROMISC;

    public static final int STATUS_LINK_UP = 1;
    public static final int STATUS_RX_ACTIVE = 1 << 1;
    public static final int STATUS_TX_ACTIVE = 1 << 2;
    public static final int STATUS_MAC_SET = 1 << 3;
    public static final int STATUS_RING_ERROR = 1 << 4;

    public static final int ICR_RX = 1;
    public static final int ICR_TX = 1 << 1;
    public static final int ICR_MAILBOX = 1 << 2;
    public static final int ICR_RX_DROP = 1 << 3;
    public static final int ICR_DMA_FAULT = 1 << 4;
    static final int ICR_ALL = 0x1F;

    public static final int MBX_IDLE = 0;
    public static final int MBX_DONE = 1;
    public static final int MBX_ERROR = 2;

    public static final int MBX_SET_MAC = 1;
    public static final int MBX_ADD_MAC = 2;
    public static final int MBX_DEL_MAC = 3;
    public static final int MBX_ADD_VLAN = 4;
    public static final int MBX_DEL_VLAN = 5;
    public static final int MBX_SET_RSS_KEY = 6;
    public static final int MBX_CLEAR_FILTERS = 7;
    public static final int MBX_MAX = 64;

    public static final int MBX_ERR_LENGTH = 1;
    public static final int MBX_ERR_OPCODE = 2;
    public static final int MBX_ERR_ARGUMENT = 3;
    public static final int MBX_ERR_TABLE_FULL = 4;
    public static final int MBX_ERR_NOT_FOUND = 5;
    public static final int MBX_ERR_DMA = 6;

    public static final int DESC_SIZE = 32;
    public static final int DESC_DD = 1;
    public static final int DESC_LOOPBACK = 1 << 1;
    public static final int DESC_VLAN = 1 << 2;
    public static final int DESC_TX_ERROR = 1 << 1;

    public static final int MIN_RING = 8;
    public static final int MAX_RING = 4096;
    public static final int MIN_FRAME = 60;
    /** The largest frame: 1514 bytes and a VLAN tag. */
    public static final int MAX_FRAME = 1518;
    public static final int MAX_BUF_SIZE = 65536;
    public static final int TABLE_SIZE = 16;
    public static final int RSS_KEY_SIZE = 40;

    private NicRegisters() {
    }

    /** A readable name for a mailbox error code. */
    public static String mailboxError(int code) {
        return switch (code) {
            case MBX_ERR_LENGTH -> "BAD_LENGTH";
            case MBX_ERR_OPCODE -> "BAD_OPCODE";
            case MBX_ERR_ARGUMENT -> "BAD_ARGUMENT";
            case MBX_ERR_TABLE_FULL -> "TABLE_FULL";
            case MBX_ERR_NOT_FOUND -> "NOT_FOUND";
            case MBX_ERR_DMA -> "DMA_FAULT";
            default -> "error " + code;
        };
    }

    static boolean validRingSize(long n) {
        return n >= MIN_RING && n <= MAX_RING && Long.bitCount(n) == 1;
    }

    static boolean unicastMac(long mac) {
        return mac != 0 && (mac >>> 48) == 0 && ((mac >>> 40) & 1) == 0;
    }

    /** {@code aa:bb:cc:dd:ee:ff}. */
    public static String macString(long mac) {
        StringBuilder sb = new StringBuilder(17);
        for (int i = 5; i >= 0; i--) {
            sb.append(String.format("%02x", (mac >>> (8 * i)) & 0xFF));
            if (i > 0) {
                sb.append(':');
            }
        }
        return sb.toString();
    }
}
