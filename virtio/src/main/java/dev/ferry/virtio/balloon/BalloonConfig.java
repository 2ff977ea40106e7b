package dev.ferry.virtio.balloon;

/**
 * virtio-balloon's config space, always little-endian whatever the transport:
 * <pre>
 *   0  le32 num_pages              pages (4 KiB) the host wants in the balloon   (device writes)
 *   4  le32 actual                 pages the driver has in the balloon           (driver writes)
 *   8  le32 free_page_hint_cmd_id  with FREE_PAGE_HINT: STOP 0, DONE 1, or a command id
 *  12  le32 poison_val             with PAGE_POISON (not offered by Ferry)
 * </pre>
 * As QEMU sizes it: 8 bytes, 12 with FREE_PAGE_HINT offered, 16 with PAGE_POISON.
 */
public final class BalloonConfig {
    public static final int NUM_PAGES = 0;
    public static final int ACTUAL = 4;
    public static final int FREE_PAGE_HINT_CMD_ID = 8;
    public static final int POISON_VAL = 12;
    /** The balloon's page unit, whatever the guest's page size: PFNs are in 4 KiB pages. */
    public static final int PFN_SHIFT = 12;
    public static final long PAGE = 1L << PFN_SHIFT;

    private BalloonConfig() {
    }

    /** The config size for the offered features. */
    public static int size(boolean freePageHint) {
        return freePageHint ? 12 : 8;
    }

    public static byte[] encode(int numPages, int actual, boolean freePageHint, int cmdId) {
        byte[] b = new byte[size(freePageHint)];
        putLe32(b, NUM_PAGES, numPages);
        putLe32(b, ACTUAL, actual);
        if (freePageHint) {
            putLe32(b, FREE_PAGE_HINT_CMD_ID, cmdId);
        }
        return b;
    }

    public static int le32(byte[] b, int off) {
        return (b[off] & 0xff) | (b[off + 1] & 0xff) << 8 | (b[off + 2] & 0xff) << 16 | (b[off + 3] & 0xff) << 24;
    }

    private static void putLe32(byte[] b, int off, int v) {
        b[off] = (byte) v;
        b[off + 1] = (byte) (v >>> 8);
        b[off + 2] = (byte) (v >>> 16);
        b[off + 3] = (byte) (v >>> 24);
    }
}
