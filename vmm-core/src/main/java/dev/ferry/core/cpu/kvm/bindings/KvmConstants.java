package dev.ferry.core.cpu.kvm.bindings;

/**
 * The flag and state values of the KVM uAPI that the bindings use, as {@code linux/kvm.h} and
 * {@code asm/kvm.h} define them (x86-64); checked by {@code KvmHeaderProbeTest}.
 */
public final class KvmConstants {
    /** What KVM_GET_API_VERSION returns; the only version there has ever been in mainline. */
    public static final int KVM_API_VERSION = 12;

    /** {@code kvm_userspace_memory_region.flags}. */
    public static final int KVM_MEM_LOG_DIRTY_PAGES = 1;
    public static final int KVM_MEM_READONLY = 2;

    /** {@code kvm_mp_state.mp_state} (x86 uses the first five). */
    public static final int KVM_MP_STATE_RUNNABLE = 0;
    public static final int KVM_MP_STATE_UNINITIALIZED = 1;
    public static final int KVM_MP_STATE_INIT_RECEIVED = 2;
    public static final int KVM_MP_STATE_HALTED = 3;
    public static final int KVM_MP_STATE_SIPI_RECEIVED = 4;

    /** {@code kvm_enable_cap.args[0]} for KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2. */
    public static final int KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE = 1;
    public static final int KVM_DIRTY_LOG_INITIALLY_SET = 2;

    /** {@code kvm_vcpu_events.flags}. */
    public static final int KVM_VCPUEVENT_VALID_NMI_PENDING = 0x1;
    public static final int KVM_VCPUEVENT_VALID_SIPI_VECTOR = 0x2;
    public static final int KVM_VCPUEVENT_VALID_SHADOW = 0x4;
    public static final int KVM_VCPUEVENT_VALID_SMM = 0x8;
    public static final int KVM_VCPUEVENT_VALID_PAYLOAD = 0x10;
    public static final int KVM_VCPUEVENT_VALID_TRIPLE_FAULT = 0x20;

    /** {@code kvm_clock_data.flags}. */
    public static final int KVM_CLOCK_TSC_STABLE = 2;
    public static final int KVM_CLOCK_REALTIME = 4;
    public static final int KVM_CLOCK_HOST_TSC = 8;

    /** {@code kvm_cpuid_entry2.flags} (the kernel's spelling). */
    public static final int KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

    /** {@code kvm_irqchip.chip_id} and the irqchip of a {@code kvm_irq_routing_entry}. */
    public static final int KVM_IRQCHIP_PIC_MASTER = 0;
    public static final int KVM_IRQCHIP_PIC_SLAVE = 1;
    public static final int KVM_IRQCHIP_IOAPIC = 2;

    /** {@code kvm_irq_routing_entry.type}: a route to an irqchip pin. */
    public static final int KVM_IRQ_ROUTING_IRQCHIP = 1;

    /** {@code kvm_irqfd.flags}. */
    public static final int KVM_IRQFD_FLAG_DEASSIGN = 1;
    public static final int KVM_IRQFD_FLAG_RESAMPLE = 2;

    /** {@code kvm_ioeventfd.flags} (bits of the header's enum: datamatch 0, pio 1, deassign 2). */
    public static final int KVM_IOEVENTFD_FLAG_DATAMATCH = 1;
    public static final int KVM_IOEVENTFD_FLAG_PIO = 2;
    public static final int KVM_IOEVENTFD_FLAG_DEASSIGN = 4;

    /** {@code kvm_pit_config.flags}. */
    public static final int KVM_PIT_SPEAKER_DUMMY = 1;

    /** Interrupt vectors, and so bits of {@code kvm_sregs.interrupt_bitmap}. */
    public static final int KVM_NR_INTERRUPTS = 256;

    private KvmConstants() {
    }

    public static String mpStateName(int mpState) {
        return switch (mpState) {
            case KVM_MP_STATE_RUNNABLE -> "runnable";
            case KVM_MP_STATE_UNINITIALIZED -> "uninitialized";
            case KVM_MP_STATE_INIT_RECEIVED -> "init-received";
            case KVM_MP_STATE_HALTED -> "halted";
            case KVM_MP_STATE_SIPI_RECEIVED -> "sipi-received";
            default -> "mp_state " + mpState;
        };
    }
}
