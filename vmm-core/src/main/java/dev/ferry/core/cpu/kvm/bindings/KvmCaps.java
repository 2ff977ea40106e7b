package dev.ferry.core.cpu.kvm.bindings;

/**
 * The KVM_CAP_* extension numbers Ferry asks about with KVM_CHECK_EXTENSION (and enables with
 * KVM_ENABLE_CAP), as {@code linux/kvm.h} defines them; checked by {@code KvmHeaderProbeTest}.
 */
public final class KvmCaps {
    public static final int KVM_CAP_IRQCHIP = 0;
    public static final int KVM_CAP_HLT = 1;
    public static final int KVM_CAP_USER_MEMORY = 3;
    public static final int KVM_CAP_SET_TSS_ADDR = 4;
    public static final int KVM_CAP_EXT_CPUID = 7;
    public static final int KVM_CAP_NR_VCPUS = 9;
    public static final int KVM_CAP_NR_MEMSLOTS = 10;
    public static final int KVM_CAP_MP_STATE = 14;
    public static final int KVM_CAP_SYNC_MMU = 16;
    public static final int KVM_CAP_IRQ_ROUTING = 25;
    public static final int KVM_CAP_IRQFD = 32;
    public static final int KVM_CAP_PIT2 = 33;
    public static final int KVM_CAP_IOEVENTFD = 36;
    public static final int KVM_CAP_SET_IDENTITY_MAP_ADDR = 37;
    public static final int KVM_CAP_ADJUST_CLOCK = 39;
    public static final int KVM_CAP_INTERNAL_ERROR_DATA = 40;
    public static final int KVM_CAP_VCPU_EVENTS = 41;
    public static final int KVM_CAP_DEBUGREGS = 50;
    public static final int KVM_CAP_XSAVE = 55;
    public static final int KVM_CAP_XCRS = 56;
    public static final int KVM_CAP_MAX_VCPUS = 66;
    public static final int KVM_CAP_READONLY_MEM = 81;
    public static final int KVM_CAP_IRQFD_RESAMPLE = 82;
    public static final int KVM_CAP_CHECK_EXTENSION_VM = 105;
    public static final int KVM_CAP_IMMEDIATE_EXIT = 136;
    public static final int KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 = 168;
    public static final int KVM_CAP_DIRTY_LOG_RING = 192;
    public static final int KVM_CAP_XSAVE2 = 208;

    private KvmCaps() {
    }

    /** The symbolic name, e.g. {@code "KVM_CAP_XSAVE"}; others as a number. */
    public static String name(int cap) {
        return switch (cap) {
            case KVM_CAP_IRQCHIP -> "KVM_CAP_IRQCHIP";
            case KVM_CAP_HLT -> "KVM_CAP_HLT";
            case KVM_CAP_USER_MEMORY -> "KVM_CAP_USER_MEMORY";
            case KVM_CAP_SET_TSS_ADDR -> "KVM_CAP_SET_TSS_ADDR";
            case KVM_CAP_EXT_CPUID -> "KVM_CAP_EXT_CPUID";
            case KVM_CAP_NR_VCPUS -> "KVM_CAP_NR_VCPUS";
            case KVM_CAP_NR_MEMSLOTS -> "KVM_CAP_NR_MEMSLOTS";
            case KVM_CAP_MP_STATE -> "KVM_CAP_MP_STATE";
            case KVM_CAP_SYNC_MMU -> "KVM_CAP_SYNC_MMU";
            case KVM_CAP_IRQ_ROUTING -> "KVM_CAP_IRQ_ROUTING";
            case KVM_CAP_IRQFD -> "KVM_CAP_IRQFD";
            case KVM_CAP_PIT2 -> "KVM_CAP_PIT2";
            case KVM_CAP_IOEVENTFD -> "KVM_CAP_IOEVENTFD";
            case KVM_CAP_SET_IDENTITY_MAP_ADDR -> "KVM_CAP_SET_IDENTITY_MAP_ADDR";
            case KVM_CAP_ADJUST_CLOCK -> "KVM_CAP_ADJUST_CLOCK";
            case KVM_CAP_INTERNAL_ERROR_DATA -> "KVM_CAP_INTERNAL_ERROR_DATA";
            case KVM_CAP_VCPU_EVENTS -> "KVM_CAP_VCPU_EVENTS";
            case KVM_CAP_DEBUGREGS -> "KVM_CAP_DEBUGREGS";
            case KVM_CAP_XSAVE -> "KVM_CAP_XSAVE";
            case KVM_CAP_XCRS -> "KVM_CAP_XCRS";
            case KVM_CAP_MAX_VCPUS -> "KVM_CAP_MAX_VCPUS";
            case KVM_CAP_READONLY_MEM -> "KVM_CAP_READONLY_MEM";
            case KVM_CAP_IRQFD_RESAMPLE -> "KVM_CAP_IRQFD_RESAMPLE";
            case KVM_CAP_CHECK_EXTENSION_VM -> "KVM_CAP_CHECK_EXTENSION_VM";
            case KVM_CAP_IMMEDIATE_EXIT -> "KVM_CAP_IMMEDIATE_EXIT";
            case KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 -> "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2";
            case KVM_CAP_DIRTY_LOG_RING -> "KVM_CAP_DIRTY_LOG_RING";
            case KVM_CAP_XSAVE2 -> "KVM_CAP_XSAVE2";
            default -> "KVM_CAP " + cap;
        };
    }
}
