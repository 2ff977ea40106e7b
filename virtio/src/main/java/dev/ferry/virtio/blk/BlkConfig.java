package dev.ferry.virtio.blk;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * virtio-blk's config space (blk/description.tex, {@code struct virtio_blk_config}), little-endian:
 * <pre>
 *   0 capacity u64 (512-byte sectors)   8 size_max u32        12 seg_max u32
 *  16 geometry {u16 cyl, u8 heads, u8 sectors}                20 blk_size u32
 *  24 topology {u8 phys_exp, u8 align_off, u16 min_io, u32 opt_io}
 *  32 writeback u8   33 unused u8   34 num_queues u16
 *  36 max_discard_sectors u32   40 max_discard_seg u32   44 discard_sector_alignment u32
 *  48 max_write_zeroes_sectors u32   52 max_write_zeroes_seg u32   56 write_zeroes_may_unmap u8
 *  57 unused[3]                                                           (60 bytes)
 * </pre>
 * Only {@code writeback} is writable (with CONFIG_WCE).
 */
record BlkConfig(long capacitySectors, int segMax, int blkSize, int numQueues, boolean writeback) {
    static final int SIZE = 60;
    static final int WRITEBACK_OFFSET = 32;
    static final int MAX_DISCARD_SECTORS = 1 << 22; // 2 GiB per segment
    static final int MAX_DISCARD_SEG = 1;

    byte[] encode() {
        ByteBuffer b = ByteBuffer.allocate(SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(0, capacitySectors);
        b.putInt(8, 0);
        b.putInt(12, segMax);
        b.putInt(20, blkSize);
        b.put(32, (byte) (writeback ? 1 : 0));
        b.putShort(34, (short) numQueues);
        b.putInt(36, MAX_DISCARD_SECTORS);
        b.putInt(40, MAX_DISCARD_SEG);
        b.putInt(44, blkSize / 512);
        b.putInt(48, MAX_DISCARD_SECTORS);
        b.putInt(52, MAX_DISCARD_SEG);
        b.put(56, (byte) 1);
        return b.array();
    }

    static long capacityOf(byte[] config) {
        return ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
    }
}
