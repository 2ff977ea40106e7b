package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_clear_dirty_log} (KVM_CLEAR_DIRTY_LOG, with
 * KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 enabled). 24 bytes:
 * <pre>
 *  0 slot (u32)  4 num_pages (u32)  8 first_page (u64)  16 dirty_bitmap (pointer, as u64)
 * </pre>
 * Bit {@code i} of {@code dirty_bitmap} stands for page {@code first_page + i}; set bits are
 * cleared in KVM's log and those pages write-protected again. {@code first_page} must be a
 * multiple of 64, and so must {@code num_pages} unless the range ends at the slot's end.
 */
public final class KvmClearDirtyLog extends KvmStruct {
    public static final int SIZE = 24;
    public static final int SLOT_OFFSET = 0;
    public static final int NUM_PAGES_OFFSET = 4;
    public static final int FIRST_PAGE_OFFSET = 8;
    public static final int DIRTY_BITMAP_OFFSET = 16;

    public KvmClearDirtyLog() {
        super(SIZE);
    }

    public void set(int slot, long firstPage, int numPages, long dirtyBitmap) {
        u32(SLOT_OFFSET, slot);
        u32(NUM_PAGES_OFFSET, numPages);
        u64(FIRST_PAGE_OFFSET, firstPage);
        u64(DIRTY_BITMAP_OFFSET, dirtyBitmap);
    }

    public int slot() {
        return u32(SLOT_OFFSET);
    }

    public int numPages() {
        return u32(NUM_PAGES_OFFSET);
    }

    public long firstPage() {
        return u64(FIRST_PAGE_OFFSET);
    }

    public long dirtyBitmap() {
        return u64(DIRTY_BITMAP_OFFSET);
    }
}
