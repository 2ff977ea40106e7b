package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_userspace_memory_region} (KVM_SET_USER_MEMORY_REGION): one memory slot, guest
 * RAM at {@code guest_phys_addr} backed by this process's memory at {@code userspace_addr}.
 * 32 bytes:
 * <pre>
 *  0 slot (u32)  4 flags (u32: KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY)
 *  8 guest_phys_addr (u64)  16 memory_size (u64, 0 deletes the slot)  24 userspace_addr (u64)
 * </pre>
 */
public final class KvmUserspaceMemoryRegion extends KvmStruct {
    public static final int SIZE = 32;
    public static final int SLOT_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int GUEST_PHYS_ADDR_OFFSET = 8;
    public static final int MEMORY_SIZE_OFFSET = 16;
    public static final int USERSPACE_ADDR_OFFSET = 24;

    public KvmUserspaceMemoryRegion() {
        super(SIZE);
    }

    public void set(int slot, int flags, long guestPhysAddr, long memorySize, long userspaceAddr) {
        u32(SLOT_OFFSET, slot);
        u32(FLAGS_OFFSET, flags);
        u64(GUEST_PHYS_ADDR_OFFSET, guestPhysAddr);
        u64(MEMORY_SIZE_OFFSET, memorySize);
        u64(USERSPACE_ADDR_OFFSET, userspaceAddr);
    }

    public int slot() {
        return u32(SLOT_OFFSET);
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public long guestPhysAddr() {
        return u64(GUEST_PHYS_ADDR_OFFSET);
    }

    public long memorySize() {
        return u64(MEMORY_SIZE_OFFSET);
    }

    public long userspaceAddr() {
        return u64(USERSPACE_ADDR_OFFSET);
    }
}
