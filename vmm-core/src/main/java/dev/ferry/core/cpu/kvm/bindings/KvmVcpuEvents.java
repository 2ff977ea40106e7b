package dev.ferry.core.cpu.kvm.bindings;

/**
 * {@code struct kvm_vcpu_events} (KVM_GET_VCPU_EVENTS / KVM_SET_VCPU_EVENTS): events in flight
 * at the instant the vCPU stopped — a pending or injected exception, interrupt, NMI, SIPI, SMI
 * and the interrupt shadow. 64 bytes:
 * <pre>
 *  0 exception: 0 injected  1 nr  2 has_error_code  3 pending (u8)  4 error_code (u32)
 *  8 interrupt: 8 injected  9 nr  10 soft  11 shadow (u8)
 * 12 nmi:      12 injected 13 pending 14 masked 15 pad (u8)
 * 16 sipi_vector (u32)  20 flags (u32, KVM_VCPUEVENT_VALID_*)
 * 24 smi:      24 smm 25 pending 26 smm_inside_nmi 27 latched_init (u8)
 * 28 triple_fault.pending (u8)  29 reserved[26]  55 exception_has_payload (u8)
 * 56 exception_payload (u64)
 * </pre>
 * On SET, {@code flags} says which optional fields KVM should take (NMI pending, SIPI vector,
 * shadow, SMM, payload, triple fault); GET sets the bits for what it filled.
 */
public final class KvmVcpuEvents extends KvmStruct {
    public static final int SIZE = 64;
    public static final int EXCEPTION_INJECTED_OFFSET = 0;
    public static final int EXCEPTION_NR_OFFSET = 1;
    public static final int EXCEPTION_HAS_ERROR_CODE_OFFSET = 2;
    public static final int EXCEPTION_PENDING_OFFSET = 3;
    public static final int EXCEPTION_ERROR_CODE_OFFSET = 4;
    public static final int INTERRUPT_INJECTED_OFFSET = 8;
    public static final int INTERRUPT_NR_OFFSET = 9;
    public static final int INTERRUPT_SOFT_OFFSET = 10;
    public static final int INTERRUPT_SHADOW_OFFSET = 11;
    public static final int NMI_INJECTED_OFFSET = 12;
    public static final int NMI_PENDING_OFFSET = 13;
    public static final int NMI_MASKED_OFFSET = 14;
    public static final int SIPI_VECTOR_OFFSET = 16;
    public static final int FLAGS_OFFSET = 20;
    public static final int SMI_SMM_OFFSET = 24;
    public static final int SMI_PENDING_OFFSET = 25;
    public static final int SMI_SMM_INSIDE_NMI_OFFSET = 26;
    public static final int SMI_LATCHED_INIT_OFFSET = 27;
    public static final int TRIPLE_FAULT_PENDING_OFFSET = 28;
    public static final int EXCEPTION_HAS_PAYLOAD_OFFSET = 55;
    public static final int EXCEPTION_PAYLOAD_OFFSET = 56;

    public KvmVcpuEvents() {
        super(SIZE);
    }

    public boolean exceptionInjected() {
        return u8(EXCEPTION_INJECTED_OFFSET) != 0;
    }

    public int exceptionNr() {
        return u8(EXCEPTION_NR_OFFSET);
    }

    public boolean exceptionHasErrorCode() {
        return u8(EXCEPTION_HAS_ERROR_CODE_OFFSET) != 0;
    }

    public boolean exceptionPending() {
        return u8(EXCEPTION_PENDING_OFFSET) != 0;
    }

    public int exceptionErrorCode() {
        return u32(EXCEPTION_ERROR_CODE_OFFSET);
    }

    public boolean interruptInjected() {
        return u8(INTERRUPT_INJECTED_OFFSET) != 0;
    }

    public int interruptNr() {
        return u8(INTERRUPT_NR_OFFSET);
    }

    public boolean interruptSoft() {
        return u8(INTERRUPT_SOFT_OFFSET) != 0;
    }

    /** KVM_X86_SHADOW_INT_MOV_SS / KVM_X86_SHADOW_INT_STI bits. */
    public int interruptShadow() {
        return u8(INTERRUPT_SHADOW_OFFSET);
    }

    public boolean nmiInjected() {
        return u8(NMI_INJECTED_OFFSET) != 0;
    }

    public boolean nmiPending() {
        return u8(NMI_PENDING_OFFSET) != 0;
    }

    public boolean nmiMasked() {
        return u8(NMI_MASKED_OFFSET) != 0;
    }

    public int sipiVector() {
        return u32(SIPI_VECTOR_OFFSET);
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public void setFlags(int v) {
        u32(FLAGS_OFFSET, v);
    }

    public boolean smiSmm() {
        return u8(SMI_SMM_OFFSET) != 0;
    }

    public boolean smiPending() {
        return u8(SMI_PENDING_OFFSET) != 0;
    }

    public boolean smiInsideNmi() {
        return u8(SMI_SMM_INSIDE_NMI_OFFSET) != 0;
    }

    public boolean smiLatchedInit() {
        return u8(SMI_LATCHED_INIT_OFFSET) != 0;
    }

    public boolean tripleFaultPending() {
        return u8(TRIPLE_FAULT_PENDING_OFFSET) != 0;
    }

    public boolean exceptionHasPayload() {
        return u8(EXCEPTION_HAS_PAYLOAD_OFFSET) != 0;
    }

    public long exceptionPayload() {
        return u64(EXCEPTION_PAYLOAD_OFFSET);
    }

    /** Makes an NMI pending (sets KVM_VCPUEVENT_VALID_NMI_PENDING so SET takes it). */
    public void setNmiPending(boolean v) {
        u8(NMI_PENDING_OFFSET, v ? 1 : 0);
        setFlags(flags() | KvmConstants.KVM_VCPUEVENT_VALID_NMI_PENDING);
    }

    public void setNmiMasked(boolean v) {
        u8(NMI_MASKED_OFFSET, v ? 1 : 0);
    }

    /** Sets the interrupt shadow (and KVM_VCPUEVENT_VALID_SHADOW so SET takes it). */
    public void setInterruptShadow(int v) {
        u8(INTERRUPT_SHADOW_OFFSET, v);
        setFlags(flags() | KvmConstants.KVM_VCPUEVENT_VALID_SHADOW);
    }
}
