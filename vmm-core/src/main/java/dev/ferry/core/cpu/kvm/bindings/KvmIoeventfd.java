package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_ioeventfd} (KVM_IOEVENTFD on the VM fd): a guest write of {@code len} bytes
 * to {@code addr} (MMIO, or a port with KVM_IOEVENTFD_FLAG_PIO) signals {@code fd} inside KVM
 * instead of exiting to user space. 64 bytes:
 * <pre>
 *  0 datamatch (u64)  8 addr (u64)  16 len (u32)  20 fd (s32)  24 flags (u32)  28 pad[36] (u8, zero)
 * </pre>
 * {@code flags}: KVM_IOEVENTFD_FLAG_DATAMATCH (only writes of exactly {@code datamatch} signal),
 * KVM_IOEVENTFD_FLAG_PIO, KVM_IOEVENTFD_FLAG_DEASSIGN (remove a matching registration).
 * {@code len} is 0 (any width, MMIO only), 1, 2, 4 or 8.
 */
public final class KvmIoeventfd extends KvmStruct {
    public static final int SIZE = 64;
    public static final int DATAMATCH_OFFSET = 0;
    public static final int ADDR_OFFSET = 8;
    public static final int LEN_OFFSET = 16;
    public static final int FD_OFFSET = 20;
    public static final int FLAGS_OFFSET = 24;
    public static final int PAD_OFFSET = 28;

    public KvmIoeventfd() {
        super(SIZE);
    }

    public long datamatch() {
        return u64(DATAMATCH_OFFSET);
    }

    public long addr() {
        return u64(ADDR_OFFSET);
    }

    public int len() {
        return u32(LEN_OFFSET);
    }

    public int fd() {
        return u32(FD_OFFSET);
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    /** Fills every field and zeroes the padding, as KVM refuses non-zero pad bytes. */
    public void set(long datamatch, long addr, int len, int fd, int flags) {
        clear();
        u64(DATAMATCH_OFFSET, datamatch);
        u64(ADDR_OFFSET, addr);
        u32(LEN_OFFSET, len);
        u32(FD_OFFSET, fd);
        u32(FLAGS_OFFSET, flags);
    }
}
