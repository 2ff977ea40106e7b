package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_lapic_state} (KVM_GET_LAPIC / KVM_SET_LAPIC, with an in-kernel irqchip):
 * the local APIC's register page, {@code char regs[KVM_APIC_REG_SIZE]} = 1024 bytes, each
 * register a u32 at its architectural offset (0x20 ID, 0x30 version, 0x80 TPR, 0xf0 SVR,
 * 0x100.. ISR, 0x200.. IRR, 0x320 LVT timer, 0x380 initial count, 0x390 current count, ...).
 * Opaque to migration, which copies it whole.
 */
public final class KvmLapicState extends KvmStruct {
    public static final int SIZE = 1024;
    public static final int REGS_OFFSET = 0;

    public KvmLapicState() {
        super(SIZE);
    }

    /** The u32 register at byte {@code offset} (a multiple of 16, below 1024). */
    public int register(int offset) {
        return u32(REGS_OFFSET + checkRegister(offset));
    }

    public void setRegister(int offset, int v) {
        u32(REGS_OFFSET + checkRegister(offset), v);
    }

    private static int checkRegister(int offset) {
        if (offset < 0 || offset >= SIZE || (offset & 0xf) != 0) {
            throw new IndexOutOfBoundsException("APIC register offset 0x" + Integer.toHexString(offset)
                    + " is not a multiple of 16 below 0x400");
        }
        return offset;
    }
}
