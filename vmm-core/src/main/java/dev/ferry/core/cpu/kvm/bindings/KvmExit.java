package dev.ferry.core.cpu.kvm.bindings;

/**
 * Why KVM_RUN returned ({@code kvm_run.exit_reason}), with the sub-codes of the exits Ferry
 * handles, as {@code linux/kvm.h} defines them (x86 only; checked by {@code KvmHeaderProbeTest}).
 */
public final class KvmExit {
    public static final int KVM_EXIT_UNKNOWN = 0;
    public static final int KVM_EXIT_EXCEPTION = 1;
    public static final int KVM_EXIT_IO = 2;
    public static final int KVM_EXIT_HYPERCALL = 3;
    public static final int KVM_EXIT_DEBUG = 4;
    public static final int KVM_EXIT_HLT = 5;
    public static final int KVM_EXIT_MMIO = 6;
    public static final int KVM_EXIT_IRQ_WINDOW_OPEN = 7;
    public static final int KVM_EXIT_SHUTDOWN = 8;
    public static final int KVM_EXIT_FAIL_ENTRY = 9;
    public static final int KVM_EXIT_INTR = 10;
    public static final int KVM_EXIT_SET_TPR = 11;
    public static final int KVM_EXIT_TPR_ACCESS = 12;
    public static final int KVM_EXIT_NMI = 16;
    public static final int KVM_EXIT_INTERNAL_ERROR = 17;
    public static final int KVM_EXIT_SYSTEM_EVENT = 24;
    public static final int KVM_EXIT_IOAPIC_EOI = 26;
    public static final int KVM_EXIT_HYPERV = 27;
    public static final int KVM_EXIT_X86_RDMSR = 29;
    public static final int KVM_EXIT_X86_WRMSR = 30;
    public static final int KVM_EXIT_DIRTY_RING_FULL = 31;
    public static final int KVM_EXIT_AP_RESET_HOLD = 32;
    public static final int KVM_EXIT_X86_BUS_LOCK = 33;
    public static final int KVM_EXIT_XEN = 34;
    public static final int KVM_EXIT_NOTIFY = 37;

    /** {@code kvm_run.io.direction}. */
    public static final int KVM_EXIT_IO_IN = 0;
    public static final int KVM_EXIT_IO_OUT = 1;

    /** {@code kvm_run.internal.suberror}. */
    public static final int KVM_INTERNAL_ERROR_EMULATION = 1;
    public static final int KVM_INTERNAL_ERROR_SIMUL_EX = 2;
    public static final int KVM_INTERNAL_ERROR_DELIVERY_EV = 3;
    public static final int KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON = 4;

    /** {@code kvm_run.system_event.type}. */
    public static final int KVM_SYSTEM_EVENT_SHUTDOWN = 1;
    public static final int KVM_SYSTEM_EVENT_RESET = 2;
    public static final int KVM_SYSTEM_EVENT_CRASH = 3;

    private KvmExit() {
    }

    /** The symbolic name of an exit reason, e.g. {@code "KVM_EXIT_IO"}; unknown ones as a number. */
    public static String name(int reason) {
        return switch (reason) {
            case KVM_EXIT_UNKNOWN -> "KVM_EXIT_UNKNOWN";
            case KVM_EXIT_EXCEPTION -> "KVM_EXIT_EXCEPTION";
            case KVM_EXIT_IO -> "KVM_EXIT_IO";
            case KVM_EXIT_HYPERCALL -> "KVM_EXIT_HYPERCALL";
            case KVM_EXIT_DEBUG -> "KVM_EXIT_DEBUG";
            case KVM_EXIT_HLT -> "KVM_EXIT_HLT";
            case KVM_EXIT_MMIO -> "KVM_EXIT_MMIO";
            case KVM_EXIT_IRQ_WINDOW_OPEN -> "KVM_EXIT_IRQ_WINDOW_OPEN";
            case KVM_EXIT_SHUTDOWN -> "KVM_EXIT_SHUTDOWN";
            case KVM_EXIT_FAIL_ENTRY -> "KVM_EXIT_FAIL_ENTRY";
            case KVM_EXIT_INTR -> "KVM_EXIT_INTR";
            case KVM_EXIT_SET_TPR -> "KVM_EXIT_SET_TPR";
            case KVM_EXIT_TPR_ACCESS -> "KVM_EXIT_TPR_ACCESS";
            case KVM_EXIT_NMI -> "KVM_EXIT_NMI";
            case KVM_EXIT_INTERNAL_ERROR -> "KVM_EXIT_INTERNAL_ERROR";
            case KVM_EXIT_SYSTEM_EVENT -> "KVM_EXIT_SYSTEM_EVENT";
            case KVM_EXIT_IOAPIC_EOI -> "KVM_EXIT_IOAPIC_EOI";
            case KVM_EXIT_HYPERV -> "KVM_EXIT_HYPERV";
            case KVM_EXIT_X86_RDMSR -> "KVM_EXIT_X86_RDMSR";
            case KVM_EXIT_X86_WRMSR -> "KVM_EXIT_X86_WRMSR";
            case KVM_EXIT_DIRTY_RING_FULL -> "KVM_EXIT_DIRTY_RING_FULL";
            case KVM_EXIT_AP_RESET_HOLD -> "KVM_EXIT_AP_RESET_HOLD";
            case KVM_EXIT_X86_BUS_LOCK -> "KVM_EXIT_X86_BUS_LOCK";
            case KVM_EXIT_XEN -> "KVM_EXIT_XEN";
            case KVM_EXIT_NOTIFY -> "KVM_EXIT_NOTIFY";
            default -> "exit reason " + reason;
        };
    }

    public static String internalErrorName(int suberror) {
        return switch (suberror) {
            case KVM_INTERNAL_ERROR_EMULATION -> "emulation failure";
            case KVM_INTERNAL_ERROR_SIMUL_EX -> "simultaneous exceptions";
            case KVM_INTERNAL_ERROR_DELIVERY_EV -> "exit while delivering an event";
            case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON -> "unexpected exit reason";
            default -> "suberror " + suberror;
        };
    }

    public static String systemEventName(int type) {
        return switch (type) {
            case KVM_SYSTEM_EVENT_SHUTDOWN -> "shutdown";
            case KVM_SYSTEM_EVENT_RESET -> "reset";
            case KVM_SYSTEM_EVENT_CRASH -> "crash";
            default -> "type " + type;
        };
    }
}
