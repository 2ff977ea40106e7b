package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_dirty_log} (KVM_GET_DIRTY_LOG). 16 bytes:
 * <pre>
 *  0 slot (u32)  4 padding1 (u32)  8 dirty_bitmap (pointer, as u64)
 * </pre>
 * {@code dirty_bitmap} points at caller memory of one bit per page of the slot, rounded up to
 * whole u64 words: bit {@code p % 64} of word {@code p / 64} is page {@code p} — the layout of
 * {@code DirtyBitmap}, so its {@code address()} goes here directly. KVM overwrites every word.
 */
public final class KvmDirtyLog extends KvmStruct {
    public static final int SIZE = 16;
    public static final int SLOT_OFFSET = 0;
    public static final int DIRTY_BITMAP_OFFSET = 8;

    public KvmDirtyLog() {
        super(SIZE);
    }

    public void set(int slot, long dirtyBitmap) {
        u32(SLOT_OFFSET, slot);
        u32(4, 0);
        u64(DIRTY_BITMAP_OFFSET, dirtyBitmap);
    }

    public int slot() {
        return u32(SLOT_OFFSET);
    }

    public long dirtyBitmap() {
        return u64(DIRTY_BITMAP_OFFSET);
    }
}
