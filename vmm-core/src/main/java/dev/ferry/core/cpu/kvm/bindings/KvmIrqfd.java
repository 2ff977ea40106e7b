package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_irqfd} (KVM_IRQFD on the VM fd): binds an eventfd to a GSI so that a write to
 * the eventfd raises the GSI inside KVM. 32 bytes:
 * <pre>
 *  0 fd (u32)  4 gsi (u32)  8 flags (u32)  12 resamplefd (u32)  16 pad[16] (u8, zero)
 * </pre>
 * {@code flags}: KVM_IRQFD_FLAG_DEASSIGN removes the binding (fd and gsi must match the
 * assignment); KVM_IRQFD_FLAG_RESAMPLE makes the GSI level-triggered: KVM keeps it asserted
 * until the guest EOIs it, then signals {@code resamplefd} so the device can re-check its line.
 */
public final class KvmIrqfd extends KvmStruct {
    public static final int SIZE = 32;
    public static final int FD_OFFSET = 0;
    public static final int GSI_OFFSET = 4;
    public static final int FLAGS_OFFSET = 8;
    public static final int RESAMPLEFD_OFFSET = 12;
    public static final int PAD_OFFSET = 16;

    public KvmIrqfd() {
        super(SIZE);
    }

    public int fd() {
        return u32(FD_OFFSET);
    }

    public int gsi() {
        return u32(GSI_OFFSET);
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public int resamplefd() {
        return u32(RESAMPLEFD_OFFSET);
    }

    /** Fills every field and zeroes the padding, as KVM refuses non-zero pad bytes. */
    public void set(int fd, int gsi, int flags, int resamplefd) {
        clear();
        u32(FD_OFFSET, fd);
        u32(GSI_OFFSET, gsi);
        u32(FLAGS_OFFSET, flags);
        u32(RESAMPLEFD_OFFSET, resamplefd);
    }
}
