package dev.ferry.virtio.blk;

/**
 * virtio-blk request types and status codes (blk/description.tex). A request is a descriptor
 * chain: a device-readable header {@code le32 type | le32 reserved | le64 sector}, data
 * (device-readable for OUT, DISCARD and WRITE_ZEROES; device-writable for IN and GET_ID), and a
 * device-writable status byte last. Sectors are always 512 bytes.
 */
final class BlkRequest {
    static final int T_IN = 0;
    static final int T_OUT = 1;
    static final int T_FLUSH = 4;
    static final int T_GET_ID = 8;
    static final int T_DISCARD = 11;
    static final int T_WRITE_ZEROES = 13;

    static final int S_OK = 0;
    static final int S_IOERR = 1;
    static final int S_UNSUPP = 2;

    static final int HEADER = 16;
    static final int SECTOR = 512;
    static final int ID_BYTES = 20;
    /** {@code le64 sector | le32 num_sectors | le32 flags} per DISCARD / WRITE_ZEROES segment. */
    static final int RANGE = 16;
    static final int WRITE_ZEROES_UNMAP = 1;

    private BlkRequest() {
    }

    static String typeName(int type) {
        return switch (type) {
            case T_IN -> "IN";
            case T_OUT -> "OUT";
            case T_FLUSH -> "FLUSH";
            case T_GET_ID -> "GET_ID";
            case T_DISCARD -> "DISCARD";
            case T_WRITE_ZEROES -> "WRITE_ZEROES";
            default -> "type " + Integer.toUnsignedString(type);
        };
    }
}
