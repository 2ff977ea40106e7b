package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_irq_level} (KVM_IRQ_LINE on the VM fd): drives one GSI of the in-kernel
 * irqchip to a level. 8 bytes:
 * <pre>
 *  0 irq / status (u32, a union: the GSI going in; KVM_IRQ_LINE_STATUS would return a status)
 *  4 level (u32: 1 asserted, 0 deasserted)
 * </pre>
 */
public final class KvmIrqLevel extends KvmStruct {
    public static final int SIZE = 8;
    public static final int IRQ_OFFSET = 0;
    public static final int STATUS_OFFSET = 0;
    public static final int LEVEL_OFFSET = 4;

    public KvmIrqLevel() {
        super(SIZE);
    }

    public int irq() {
        return u32(IRQ_OFFSET);
    }

    public int status() {
        return u32(STATUS_OFFSET);
    }

    public int level() {
        return u32(LEVEL_OFFSET);
    }

    public void set(int irq, boolean level) {
        u32(IRQ_OFFSET, irq);
        u32(LEVEL_OFFSET, level ? 1 : 0);
    }
}
