package dev.ferry.migration.ram;

/**
 * RAM_SAVE_FLAG_* of QEMU's "ram" section, version 4. Each record starts with
 * {@code be64 (page_offset | flags)}; flags live in the low bits of the page-aligned offset.
 * <pre>
 * MEM_SIZE : be64 (total | 0x04) | per block: u8 len | idstr | be64 length     (setup only)
 * ZERO     : be64 (offset | 0x02 [| 0x20]) | [u8 len | idstr unless CONTINUE] | u8 fill
 * PAGE     : be64 (offset | 0x08 [| 0x20]) | [u8 len | idstr unless CONTINUE] | 4096 bytes
 * EOS      : be64 0x10                                                             (ends every section)
 * </pre>
 */
public final class RamFlags {
    public static final int ZERO = 0x02;
    public static final int MEM_SIZE = 0x04;
    public static final int PAGE = 0x08;
    public static final int EOS = 0x10;
    public static final int CONTINUE = 0x20;
    public static final int XBZRLE = 0x40;
    public static final int HOOK = 0x80;
    public static final int COMPRESS_PAGE = 0x100;
    public static final int MULTIFD_FLUSH = 0x200;

    public static final int PAGE_SIZE = 4096;
    public static final long PAGE_MASK = PAGE_SIZE - 1;
    public static final String SECTION_ID = "ram";
    public static final int SECTION_VERSION = 4;

    private RamFlags() {
    }
}
