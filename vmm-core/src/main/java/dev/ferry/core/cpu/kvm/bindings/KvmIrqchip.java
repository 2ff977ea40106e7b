package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_irqchip} (KVM_GET_IRQCHIP / KVM_SET_IRQCHIP, with an in-kernel irqchip):
 * the state of one of the three chips, picked by {@code chip_id}. 520 bytes:
 * <pre>
 *  0 chip_id (u32: KVM_IRQCHIP_PIC_MASTER 0, PIC_SLAVE 1, IOAPIC 2)  4 pad (u32)
 *  8 chip (512-byte union): struct kvm_pic_state (16 bytes) or struct kvm_ioapic_state:
 *      +0 base_address (u64)  +8 ioregsel (u32)  +12 id (u32)  +16 irr (u32)  +20 pad (u32)
 *      +24 redirtbl[24] (u64 each: bits 0-7 vector, 14 remote_irr, 15 trig_mode, 16 mask, 56-63 dest_id)
 * </pre>
 * Opaque to migration, which saves each chip whole; the IOAPIC and PIC accessors exist for tests
 * and diagnostics.
 */
public final class KvmIrqchip extends KvmStruct {
    public static final int SIZE = 520;
    public static final int CHIP_ID_OFFSET = 0;
    public static final int CHIP_OFFSET = 8;
    /** Bytes of the {@code chip} union. */
    public static final int CHIP_SIZE = 512;
    public static final int IOAPIC_IRR_OFFSET = 24;
    public static final int IOAPIC_REDIRTBL_OFFSET = 32;
    /** Pins of the IOAPIC, and so entries of {@code redirtbl}. */
    public static final int IOAPIC_NUM_PINS = 24;
    public static final int PIC_IRR_OFFSET = 9;
    public static final int PIC_IMR_OFFSET = 10;
    /** {@code redirtbl} bits, the IOAPIC's own (not the uAPI's, so private and not in the header probe). */
    private static final long REDIR_REMOTE_IRR = 1L << 14;
    private static final long REDIR_LEVEL_TRIGGERED = 1L << 15;
    private static final long REDIR_MASKED = 1L << 16;

    public KvmIrqchip() {
        super(SIZE);
    }

    /** A zeroed struct asking for {@code chipId}, ready for KVM_GET_IRQCHIP. */
    public static KvmIrqchip of(int chipId) {
        KvmIrqchip c = new KvmIrqchip();
        c.setChipId(chipId);
        return c;
    }

    public int chipId() {
        return u32(CHIP_ID_OFFSET);
    }

    public void setChipId(int chipId) {
        if (chipId < KvmConstants.KVM_IRQCHIP_PIC_MASTER || chipId > KvmConstants.KVM_IRQCHIP_IOAPIC) {
            throw new IllegalArgumentException("chip_id " + chipId + " is none of PIC master (0), PIC slave (1), "
                    + "IOAPIC (2)");
        }
        u32(CHIP_ID_OFFSET, chipId);
    }

    /** The IOAPIC's interrupt request register: bit {@code n} = pin {@code n} asserted. IOAPIC only. */
    public int ioapicIrr() {
        requireChip(KvmConstants.KVM_IRQCHIP_IOAPIC);
        return u32(IOAPIC_IRR_OFFSET);
    }

    /** Redirection table entry of IOAPIC {@code pin} (0..23). */
    public long ioapicRedirection(int pin) {
        requireChip(KvmConstants.KVM_IRQCHIP_IOAPIC);
        return u64(IOAPIC_REDIRTBL_OFFSET + 8 * checkIndex(pin, IOAPIC_NUM_PINS, "redirtbl"));
    }

    public void setIoapicRedirection(int pin, long entry) {
        requireChip(KvmConstants.KVM_IRQCHIP_IOAPIC);
        u64(IOAPIC_REDIRTBL_OFFSET + 8 * checkIndex(pin, IOAPIC_NUM_PINS, "redirtbl"), entry);
    }

    /** Remote IRR of IOAPIC {@code pin}: a level-triggered interrupt delivered and not yet EOIed. */
    public boolean ioapicRemoteIrr(int pin) {
        return (ioapicRedirection(pin) & REDIR_REMOTE_IRR) != 0;
    }

    public boolean ioapicLevelTriggered(int pin) {
        return (ioapicRedirection(pin) & REDIR_LEVEL_TRIGGERED) != 0;
    }

    public boolean ioapicMasked(int pin) {
        return (ioapicRedirection(pin) & REDIR_MASKED) != 0;
    }

    /** The PIC's interrupt request register (8 pins). PIC master or slave only. */
    public int picIrr() {
        requirePic();
        return u8(PIC_IRR_OFFSET);
    }

    /** The PIC's interrupt mask register. */
    public int picImr() {
        requirePic();
        return u8(PIC_IMR_OFFSET);
    }

    private void requireChip(int chipId) {
        if (chipId() != chipId) {
            throw new IllegalStateException("kvm_irqchip holds chip " + chipId() + ", not " + chipId);
        }
    }

    private void requirePic() {
        if (chipId() == KvmConstants.KVM_IRQCHIP_IOAPIC) {
            throw new IllegalStateException("kvm_irqchip holds the IOAPIC, not a PIC");
        }
    }

    @Override
    protected void checkLoadable(byte[] b) {
        super.checkLoadable(b);
        int chipId = b[0] & 0xff | (b[1] & 0xff) << 8 | (b[2] & 0xff) << 16 | (b[3] & 0xff) << 24;
        if (chipId < KvmConstants.KVM_IRQCHIP_PIC_MASTER || chipId > KvmConstants.KVM_IRQCHIP_IOAPIC) {
            throw new IllegalArgumentException("KvmIrqchip: chip_id " + Integer.toUnsignedString(chipId)
                    + " is none of PIC master, PIC slave, IOAPIC");
        }
    }
}
