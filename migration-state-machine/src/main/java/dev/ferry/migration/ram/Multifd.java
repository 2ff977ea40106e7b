package dev.ferry.migration.ram;

/**
 * The multifd wire format: QEMU's layouts, big-endian.
 *
 * <pre>
 * channel opening (64 bytes, once per channel, first thing on its connection)
 *   be32 magic 0x11223344 · be32 version 1 · u8 uuid[16] · u8 channel id · u8 unused[7] · be64 unused[4]
 *
 * packet (320 bytes, then the offsets, then the normal pages' data)
 *   be32 magic · be32 version · be32 flags (bit 0: SYNC)
 *   be32 pages_alloc (≤ 128) · be32 normal_pages · be32 next_packet_size (= normal_pages × 4096)
 *   be64 packet_num · be32 zero_pages · be32 unused · be64 unused[3]
 *   char ramblock[256] (NUL-terminated RAM block name)
 *   be64 offset[normal_pages + zero_pages] (normal pages first, then zero pages; byte offsets in the block)
 *   normal_pages × 4096 bytes
 * </pre>
 *
 * Unlike QEMU, which reads a fixed-size packet holding {@code pages_alloc} offsets, the offsets
 * array carries exactly {@code normal_pages + zero_pages} entries. The main stream's RAM section
 * carries MEM_SIZE, EOS and a MULTIFD_FLUSH record at each synchronisation point: everything the
 * channels carried before their SYNC packets is in guest memory before the destination reads on.
 */
final class Multifd {
    static final int MAGIC = 0x11223344;
    static final int VERSION = 1;
    static final int FLAG_SYNC = 1;
    /** QEMU's MULTIFD_PACKET_SIZE (512 KiB) in 4 KiB pages. */
    static final int PAGES_PER_PACKET = 128;
    static final int RAMBLOCK_BYTES = 256;
    static final int INIT_BYTES = 64;
    static final int HEADER_BYTES = 320;
    static final int UUID_BYTES = 16;
    /** QEMU's multifd-channels range. */
    static final int MAX_CHANNELS = 255;

    /** A packet's header and its largest offsets array, the size of a channel's staging buffer. */
    static final int STAGING_BYTES = HEADER_BYTES + 8 * PAGES_PER_PACKET;

    /**
     * A packet's pages in one buffer. On a detached socket pages of 2 MiB-page RAM go straight
     * between guest memory and the socket; pages of 4 KiB-page RAM are copied through this buffer
     * in user space, because the kernel's own copy from or to 4 KiB user mappings runs at
     * 0.4–0.55 GB/s on the nested hosts this was measured on (against 3.7 GB/s for 2 MiB
     * mappings, and 17–24 GB/s for a user-space copy out of the same 4 KiB pages), so one
     * user-space copy through a small, cache- and TLB-resident buffer is the faster way there.
     */
    static final int BOUNCE_BYTES = PAGES_PER_PACKET * RamFlags.PAGE_SIZE;

    private Multifd() {
    }

    static void putBe32(long address, int v) {
        dev.ferry.core.sys.NativeMemory.putInt(address, dev.ferry.core.sys.NativeMemory.BIG_ENDIAN_HOST ? v : Integer.reverseBytes(v));
    }

    static void putBe64(long address, long v) {
        dev.ferry.core.sys.NativeMemory.putLong(address, dev.ferry.core.sys.NativeMemory.BIG_ENDIAN_HOST ? v : Long.reverseBytes(v));
    }

    static int getBe32(long address) {
        int v = dev.ferry.core.sys.NativeMemory.getInt(address);
        return dev.ferry.core.sys.NativeMemory.BIG_ENDIAN_HOST ? v : Integer.reverseBytes(v);
    }

    static long getBe64(long address) {
        long v = dev.ferry.core.sys.NativeMemory.getLong(address);
        return dev.ferry.core.sys.NativeMemory.BIG_ENDIAN_HOST ? v : Long.reverseBytes(v);
    }

    /**
     * Closing the channels: waits up to 10 s for each thread but the caller's (a channel thread
     * that closes them itself). Interrupted, it stops waiting and keeps the flag; a thread still
     * alive then keeps its stream open rather than free it under its feet.
     */
    static void joinAll(java.util.List<Thread> threads) {
        for (Thread t : threads) {
            if (t == Thread.currentThread()) {
                continue;
            }
            try {
                t.join(10_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}
