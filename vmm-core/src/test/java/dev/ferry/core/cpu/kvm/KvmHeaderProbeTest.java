package dev.ferry.core.cpu.kvm;

import dev.ferry.core.cpu.kvm.bindings.KvmCaps;
import dev.ferry.core.cpu.kvm.bindings.KvmClearDirtyLog;
import dev.ferry.core.cpu.kvm.bindings.KvmClockData;
import dev.ferry.core.cpu.kvm.bindings.KvmConstants;
import dev.ferry.core.cpu.kvm.bindings.KvmCpuid2;
import dev.ferry.core.cpu.kvm.bindings.KvmDebugregs;
import dev.ferry.core.cpu.kvm.bindings.KvmDirtyLog;
import dev.ferry.core.cpu.kvm.bindings.KvmDtable;
import dev.ferry.core.cpu.kvm.bindings.KvmEnableCap;
import dev.ferry.core.cpu.kvm.bindings.KvmExit;
import dev.ferry.core.cpu.kvm.bindings.KvmFpu;
import dev.ferry.core.cpu.kvm.bindings.KvmIoctls;
import dev.ferry.core.cpu.kvm.bindings.KvmIoeventfd;
import dev.ferry.core.cpu.kvm.bindings.KvmIrqLevel;
import dev.ferry.core.cpu.kvm.bindings.KvmIrqRouting;
import dev.ferry.core.cpu.kvm.bindings.KvmIrqchip;
import dev.ferry.core.cpu.kvm.bindings.KvmIrqfd;
import dev.ferry.core.cpu.kvm.bindings.KvmLapicState;
import dev.ferry.core.cpu.kvm.bindings.KvmMpState;
import dev.ferry.core.cpu.kvm.bindings.KvmMsrList;
import dev.ferry.core.cpu.kvm.bindings.KvmMsrs;
import dev.ferry.core.cpu.kvm.bindings.KvmPitConfig;
import dev.ferry.core.cpu.kvm.bindings.KvmPitState2;
import dev.ferry.core.cpu.kvm.bindings.KvmRegs;
import dev.ferry.core.cpu.kvm.bindings.KvmRun;
import dev.ferry.core.cpu.kvm.bindings.KvmSegment;
import dev.ferry.core.cpu.kvm.bindings.KvmSregs;
import dev.ferry.core.cpu.kvm.bindings.KvmUserspaceMemoryRegion;
import dev.ferry.core.cpu.kvm.bindings.KvmVcpuEvents;
import dev.ferry.core.cpu.kvm.bindings.KvmXcrs;
import dev.ferry.core.cpu.kvm.bindings.KvmXsave;
import dev.ferry.core.cpu.kvm.ioctls.VcpuSignal;
import dev.ferry.core.testing.CProbe;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Checks every ioctl number, constant, struct size and field offset of the KVM bindings against
 * the host's {@code <linux/kvm.h>} (probe {@code probes/kvm_uapi.c}). Each bindings class has an
 * explicit mapping from its Java constants to the probe's keys: a public constant without an
 * entry fails the test, and so does a probed key that no mapping checks.
 */
class KvmHeaderProbeTest {
    /** Bindings class → (Java constant → probe key). */
    private static final Map<Class<?>, Map<String, String>> MAPPINGS = new LinkedHashMap<>();
    /** Probe keys checked against a Java value that another key already maps (counts that repeat). */
    private static final Map<String, Long> ALSO = Map.of(
            "kvm_run.system_event.data.count", (long) KvmRun.EXIT_DATA_MAX,
            "kvm_xcrs.xcrs.count", (long) KvmXcrs.MAX_XCRS,
            "KVM_APIC_REG_SIZE", (long) KvmLapicState.SIZE,
            "kvm_irqchip.chip.ioapic.redirtbl.count", (long) KvmIrqchip.IOAPIC_NUM_PINS);

    static {
        sameNames(KvmIoctls.class, "KVMIO KVM_GET_API_VERSION KVM_CREATE_VM KVM_GET_MSR_INDEX_LIST KVM_CHECK_EXTENSION "
                + "KVM_GET_VCPU_MMAP_SIZE KVM_GET_SUPPORTED_CPUID KVM_CREATE_VCPU KVM_GET_DIRTY_LOG "
                + "KVM_SET_USER_MEMORY_REGION KVM_SET_TSS_ADDR KVM_SET_IDENTITY_MAP_ADDR KVM_CREATE_IRQCHIP "
                + "KVM_IRQ_LINE KVM_GET_IRQCHIP KVM_SET_IRQCHIP KVM_SET_GSI_ROUTING KVM_IRQFD KVM_CREATE_PIT2 "
                + "KVM_IOEVENTFD KVM_SET_CLOCK KVM_GET_CLOCK KVM_GET_PIT2 KVM_SET_PIT2 KVM_ENABLE_CAP KVM_CLEAR_DIRTY_LOG KVM_RUN KVM_GET_REGS KVM_SET_REGS "
                + "KVM_GET_SREGS "
                + "KVM_SET_SREGS KVM_GET_MSRS KVM_SET_MSRS KVM_GET_FPU KVM_SET_FPU KVM_GET_LAPIC KVM_SET_LAPIC "
                + "KVM_SET_CPUID2 KVM_GET_MP_STATE KVM_SET_MP_STATE KVM_GET_VCPU_EVENTS KVM_SET_VCPU_EVENTS "
                + "KVM_GET_DEBUGREGS KVM_SET_DEBUGREGS KVM_GET_XSAVE KVM_SET_XSAVE KVM_GET_XCRS KVM_SET_XCRS");
        sameNames(KvmExit.class, "KVM_EXIT_UNKNOWN KVM_EXIT_EXCEPTION KVM_EXIT_IO KVM_EXIT_HYPERCALL KVM_EXIT_DEBUG "
                + "KVM_EXIT_HLT KVM_EXIT_MMIO KVM_EXIT_IRQ_WINDOW_OPEN KVM_EXIT_SHUTDOWN KVM_EXIT_FAIL_ENTRY "
                + "KVM_EXIT_INTR KVM_EXIT_SET_TPR KVM_EXIT_TPR_ACCESS KVM_EXIT_NMI KVM_EXIT_INTERNAL_ERROR "
                + "KVM_EXIT_SYSTEM_EVENT "
                + "KVM_EXIT_IOAPIC_EOI KVM_EXIT_HYPERV KVM_EXIT_X86_RDMSR KVM_EXIT_X86_WRMSR KVM_EXIT_DIRTY_RING_FULL "
                + "KVM_EXIT_AP_RESET_HOLD KVM_EXIT_X86_BUS_LOCK KVM_EXIT_XEN KVM_EXIT_NOTIFY KVM_EXIT_IO_IN "
                + "KVM_EXIT_IO_OUT KVM_INTERNAL_ERROR_EMULATION KVM_INTERNAL_ERROR_SIMUL_EX "
                + "KVM_INTERNAL_ERROR_DELIVERY_EV KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON KVM_SYSTEM_EVENT_SHUTDOWN "
                + "KVM_SYSTEM_EVENT_RESET KVM_SYSTEM_EVENT_CRASH");
        sameNames(KvmCaps.class, "KVM_CAP_IRQCHIP KVM_CAP_HLT KVM_CAP_USER_MEMORY KVM_CAP_SET_TSS_ADDR "
                + "KVM_CAP_EXT_CPUID KVM_CAP_NR_VCPUS KVM_CAP_NR_MEMSLOTS KVM_CAP_MP_STATE KVM_CAP_SYNC_MMU "
                + "KVM_CAP_IRQ_ROUTING KVM_CAP_IRQFD KVM_CAP_PIT2 KVM_CAP_IOEVENTFD KVM_CAP_IRQFD_RESAMPLE "
                + "KVM_CAP_SET_IDENTITY_MAP_ADDR KVM_CAP_ADJUST_CLOCK KVM_CAP_INTERNAL_ERROR_DATA KVM_CAP_VCPU_EVENTS "
                + "KVM_CAP_DEBUGREGS KVM_CAP_XSAVE KVM_CAP_XCRS KVM_CAP_MAX_VCPUS KVM_CAP_READONLY_MEM "
                + "KVM_CAP_CHECK_EXTENSION_VM KVM_CAP_IMMEDIATE_EXIT KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 "
                + "KVM_CAP_DIRTY_LOG_RING KVM_CAP_XSAVE2");
        sameNames(KvmConstants.class, "KVM_API_VERSION KVM_MEM_LOG_DIRTY_PAGES KVM_MEM_READONLY KVM_MP_STATE_RUNNABLE "
                + "KVM_MP_STATE_UNINITIALIZED KVM_MP_STATE_INIT_RECEIVED KVM_MP_STATE_HALTED "
                + "KVM_MP_STATE_SIPI_RECEIVED "
                + "KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE KVM_DIRTY_LOG_INITIALLY_SET KVM_VCPUEVENT_VALID_NMI_PENDING "
                + "KVM_VCPUEVENT_VALID_SIPI_VECTOR KVM_VCPUEVENT_VALID_SHADOW KVM_VCPUEVENT_VALID_SMM "
                + "KVM_VCPUEVENT_VALID_PAYLOAD KVM_VCPUEVENT_VALID_TRIPLE_FAULT KVM_CLOCK_TSC_STABLE "
                + "KVM_CLOCK_REALTIME KVM_CLOCK_HOST_TSC KVM_CPUID_FLAG_SIGNIFCANT_INDEX KVM_NR_INTERRUPTS "
                + "KVM_IRQCHIP_PIC_MASTER KVM_IRQCHIP_PIC_SLAVE KVM_IRQCHIP_IOAPIC KVM_IRQ_ROUTING_IRQCHIP "
                + "KVM_IRQFD_FLAG_DEASSIGN KVM_IRQFD_FLAG_RESAMPLE KVM_IOEVENTFD_FLAG_DATAMATCH "
                + "KVM_IOEVENTFD_FLAG_PIO KVM_IOEVENTFD_FLAG_DEASSIGN KVM_PIT_SPEAKER_DUMMY");

        layout(KvmRegs.class, "kvm_regs", "RAX_OFFSET rax", "RBX_OFFSET rbx", "RCX_OFFSET rcx", "RDX_OFFSET rdx",
                "RSI_OFFSET rsi", "RDI_OFFSET rdi", "RSP_OFFSET rsp", "RBP_OFFSET rbp", "R8_OFFSET r8", "R9_OFFSET r9",
                "R10_OFFSET r10", "R11_OFFSET r11", "R12_OFFSET r12", "R13_OFFSET r13", "R14_OFFSET r14",
                "R15_OFFSET r15", "RIP_OFFSET rip", "RFLAGS_OFFSET rflags");
        layout(KvmSegment.class, "kvm_segment", "BASE_OFFSET base", "LIMIT_OFFSET limit", "SELECTOR_OFFSET selector",
                "TYPE_OFFSET type", "PRESENT_OFFSET present", "DPL_OFFSET dpl", "DB_OFFSET db", "S_OFFSET s",
                "L_OFFSET l", "G_OFFSET g", "AVL_OFFSET avl", "UNUSABLE_OFFSET unusable");
        layout(KvmDtable.class, "kvm_dtable", "BASE_OFFSET base", "LIMIT_OFFSET limit");
        layout(KvmSregs.class, "kvm_sregs", "CS_OFFSET cs", "DS_OFFSET ds", "ES_OFFSET es", "FS_OFFSET fs",
                "GS_OFFSET gs", "SS_OFFSET ss", "TR_OFFSET tr", "LDT_OFFSET ldt", "GDT_OFFSET gdt", "IDT_OFFSET idt",
                "CR0_OFFSET cr0", "CR2_OFFSET cr2", "CR3_OFFSET cr3", "CR4_OFFSET cr4", "CR8_OFFSET cr8",
                "EFER_OFFSET efer", "APIC_BASE_OFFSET apic_base", "INTERRUPT_BITMAP_OFFSET interrupt_bitmap",
                "INTERRUPT_BITMAP_WORDS interrupt_bitmap.count");
        layout(KvmFpu.class, "kvm_fpu", "FPR_OFFSET fpr", "FCW_OFFSET fcw", "FSW_OFFSET fsw", "FTWX_OFFSET ftwx",
                "LAST_OPCODE_OFFSET last_opcode", "LAST_IP_OFFSET last_ip", "LAST_DP_OFFSET last_dp",
                "XMM_OFFSET xmm", "MXCSR_OFFSET mxcsr");
        layout(KvmXsave.class, "kvm_xsave", "REGION_OFFSET region");
        Map<String, String> xcrs = layout(KvmXcrs.class, "kvm_xcrs", "NR_XCRS_OFFSET nr_xcrs", "FLAGS_OFFSET flags",
                "XCRS_OFFSET xcrs");
        xcrs.put("XCR_SIZE", "sizeof(kvm_xcr)");
        xcrs.put("XCR_XCR_OFFSET", "kvm_xcr.xcr");
        xcrs.put("XCR_VALUE_OFFSET", "kvm_xcr.value");
        xcrs.put("MAX_XCRS", "KVM_MAX_XCRS");
        Map<String, String> msrs = layout(KvmMsrs.class, "kvm_msrs", "NMSRS_OFFSET nmsrs", "ENTRIES_OFFSET entries");
        msrs.put("ENTRY_SIZE", "sizeof(kvm_msr_entry)");
        msrs.put("ENTRY_INDEX_OFFSET", "kvm_msr_entry.index");
        msrs.put("ENTRY_DATA_OFFSET", "kvm_msr_entry.data");
        layout(KvmMsrList.class, "kvm_msr_list", "NMSRS_OFFSET nmsrs", "INDICES_OFFSET indices");
        Map<String, String> cpuid = layout(KvmCpuid2.class, "kvm_cpuid2", "NENT_OFFSET nent", "ENTRIES_OFFSET entries");
        cpuid.put("ENTRY_SIZE", "sizeof(kvm_cpuid_entry2)");
        for (String f : List.of("function", "index", "flags", "eax", "ebx", "ecx", "edx")) {
            cpuid.put("ENTRY_" + f.toUpperCase() + "_OFFSET", "kvm_cpuid_entry2." + f);
        }
        layout(KvmUserspaceMemoryRegion.class, "kvm_userspace_memory_region", "SLOT_OFFSET slot", "FLAGS_OFFSET flags",
                "GUEST_PHYS_ADDR_OFFSET guest_phys_addr", "MEMORY_SIZE_OFFSET memory_size",
                "USERSPACE_ADDR_OFFSET userspace_addr");
        layout(KvmDirtyLog.class, "kvm_dirty_log", "SLOT_OFFSET slot", "DIRTY_BITMAP_OFFSET dirty_bitmap");
        layout(KvmClearDirtyLog.class, "kvm_clear_dirty_log", "SLOT_OFFSET slot", "NUM_PAGES_OFFSET num_pages",
                "FIRST_PAGE_OFFSET first_page", "DIRTY_BITMAP_OFFSET dirty_bitmap");
        layout(KvmEnableCap.class, "kvm_enable_cap", "CAP_OFFSET cap", "FLAGS_OFFSET flags", "ARGS_OFFSET args",
                "ARGS_COUNT args.count");
        layout(KvmVcpuEvents.class, "kvm_vcpu_events", "EXCEPTION_INJECTED_OFFSET exception.injected",
                "EXCEPTION_NR_OFFSET exception.nr", "EXCEPTION_HAS_ERROR_CODE_OFFSET exception.has_error_code",
                "EXCEPTION_PENDING_OFFSET exception.pending", "EXCEPTION_ERROR_CODE_OFFSET exception.error_code",
                "INTERRUPT_INJECTED_OFFSET interrupt.injected", "INTERRUPT_NR_OFFSET interrupt.nr",
                "INTERRUPT_SOFT_OFFSET interrupt.soft", "INTERRUPT_SHADOW_OFFSET interrupt.shadow",
                "NMI_INJECTED_OFFSET nmi.injected", "NMI_PENDING_OFFSET nmi.pending", "NMI_MASKED_OFFSET nmi.masked",
                "SIPI_VECTOR_OFFSET sipi_vector", "FLAGS_OFFSET flags", "SMI_SMM_OFFSET smi.smm",
                "SMI_PENDING_OFFSET smi.pending", "SMI_SMM_INSIDE_NMI_OFFSET smi.smm_inside_nmi",
                "SMI_LATCHED_INIT_OFFSET smi.latched_init", "TRIPLE_FAULT_PENDING_OFFSET triple_fault.pending",
                "EXCEPTION_HAS_PAYLOAD_OFFSET exception_has_payload", "EXCEPTION_PAYLOAD_OFFSET exception_payload");
        layout(KvmMpState.class, "kvm_mp_state", "MP_STATE_OFFSET mp_state");
        layout(KvmDebugregs.class, "kvm_debugregs", "DB_OFFSET db", "DR6_OFFSET dr6", "DR7_OFFSET dr7",
                "FLAGS_OFFSET flags");
        layout(KvmLapicState.class, "kvm_lapic_state", "REGS_OFFSET regs");
        layout(KvmClockData.class, "kvm_clock_data", "CLOCK_OFFSET clock", "FLAGS_OFFSET flags",
                "REALTIME_OFFSET realtime", "HOST_TSC_OFFSET host_tsc");
        layout(KvmIrqLevel.class, "kvm_irq_level", "IRQ_OFFSET irq", "STATUS_OFFSET status",
                "LEVEL_OFFSET level");
        layout(KvmIrqfd.class, "kvm_irqfd", "FD_OFFSET fd", "GSI_OFFSET gsi", "FLAGS_OFFSET flags",
                "RESAMPLEFD_OFFSET resamplefd", "PAD_OFFSET pad");
        layout(KvmIoeventfd.class, "kvm_ioeventfd", "DATAMATCH_OFFSET datamatch", "ADDR_OFFSET addr",
                "LEN_OFFSET len", "FD_OFFSET fd", "FLAGS_OFFSET flags", "PAD_OFFSET pad");
        Map<String, String> irqchip = layout(KvmIrqchip.class, "kvm_irqchip", "CHIP_ID_OFFSET chip_id",
                "CHIP_OFFSET chip", "IOAPIC_IRR_OFFSET chip.ioapic.irr",
                "IOAPIC_REDIRTBL_OFFSET chip.ioapic.redirtbl", "PIC_IRR_OFFSET chip.pic.irr",
                "PIC_IMR_OFFSET chip.pic.imr");
        irqchip.put("CHIP_SIZE", "sizeof(kvm_irqchip.chip)");
        irqchip.put("IOAPIC_NUM_PINS", "KVM_IOAPIC_NUM_PINS");
        layout(KvmPitConfig.class, "kvm_pit_config", "FLAGS_OFFSET flags", "PAD_OFFSET pad");
        layout(KvmPitState2.class, "kvm_pit_state2", "CHANNELS_OFFSET channels", "FLAGS_OFFSET flags",
                "RESERVED_OFFSET reserved");
        Map<String, String> routing = layout(KvmIrqRouting.class, "kvm_irq_routing", "NR_OFFSET nr",
                "FLAGS_OFFSET flags", "ENTRIES_OFFSET entries");
        routing.put("ENTRY_SIZE", "sizeof(kvm_irq_routing_entry)");
        routing.put("ENTRY_GSI_OFFSET", "kvm_irq_routing_entry.gsi");
        routing.put("ENTRY_TYPE_OFFSET", "kvm_irq_routing_entry.type");
        routing.put("ENTRY_FLAGS_OFFSET", "kvm_irq_routing_entry.flags");
        routing.put("ENTRY_U_OFFSET", "kvm_irq_routing_entry.u");
        routing.put("ENTRY_IRQCHIP_IRQCHIP_OFFSET", "kvm_irq_routing_entry.u.irqchip.irqchip");
        routing.put("ENTRY_IRQCHIP_PIN_OFFSET", "kvm_irq_routing_entry.u.irqchip.pin");
        layout(KvmRun.class, "kvm_run", "REQUEST_INTERRUPT_WINDOW_OFFSET request_interrupt_window",
                "IMMEDIATE_EXIT_OFFSET immediate_exit", "EXIT_REASON_OFFSET exit_reason",
                "READY_FOR_INTERRUPT_INJECTION_OFFSET ready_for_interrupt_injection", "IF_FLAG_OFFSET if_flag",
                "FLAGS_OFFSET flags", "CR8_OFFSET cr8", "APIC_BASE_OFFSET apic_base",
                "HW_HARDWARE_EXIT_REASON_OFFSET hw.hardware_exit_reason",
                "FAIL_ENTRY_HARDWARE_ENTRY_FAILURE_REASON_OFFSET fail_entry.hardware_entry_failure_reason",
                "FAIL_ENTRY_CPU_OFFSET fail_entry.cpu", "EX_EXCEPTION_OFFSET ex.exception",
                "EX_ERROR_CODE_OFFSET ex.error_code", "IO_DIRECTION_OFFSET io.direction", "IO_SIZE_OFFSET io.size",
                "IO_PORT_OFFSET io.port", "IO_COUNT_OFFSET io.count", "IO_DATA_OFFSET_OFFSET io.data_offset",
                "MMIO_PHYS_ADDR_OFFSET mmio.phys_addr", "MMIO_DATA_OFFSET mmio.data", "MMIO_LEN_OFFSET mmio.len",
                "MMIO_IS_WRITE_OFFSET mmio.is_write", "INTERNAL_SUBERROR_OFFSET internal.suberror",
                "INTERNAL_NDATA_OFFSET internal.ndata", "INTERNAL_DATA_OFFSET internal.data",
                "SYSTEM_EVENT_TYPE_OFFSET system_event.type", "SYSTEM_EVENT_NDATA_OFFSET system_event.ndata",
                "SYSTEM_EVENT_DATA_OFFSET system_event.data", "EXIT_DATA_MAX internal.data.count");
    }

    private static Map<String, Long> probed;

    private static void sameNames(Class<?> cls, String names) {
        CProbe.sameNames(MAPPINGS, cls, names);
    }

    private static Map<String, String> layout(Class<?> cls, String struct, String... fieldMember) {
        return CProbe.layout(MAPPINGS, cls, struct, fieldMember);
    }

    @BeforeAll
    static void probe() {
        assumeTrue(CProbe.gccAvailable(), CProbe.NO_GCC);
        assumeTrue(CProbe.headerAvailable("linux/kvm.h"),
                "linux/kvm.h not found: the kernel's uAPI headers are needed (apt-get install linux-libc-dev)");
        probed = CProbe.runResource("/probes/kvm_uapi.c");
    }

    @Test
    void everyBindingsConstantMatchesTheHeaders() {
        List<String> problems = new ArrayList<>();
        MAPPINGS.forEach((cls, mapping) -> problems.addAll(CProbe.compareConstants(cls, mapping, probed)));
        ALSO.forEach((key, java) -> {
            Long c = probed.get(key);
            if (!java.equals(c)) {
                problems.add(key + ": Java has " + java + ", the headers " + c);
            }
        });
        assertNoProblems(problems);
    }

    @Test
    void kickSignalNumbersMatchTheHeaders() {
        Map<String, Long> signal = CProbe.runResource("/probes/vcpu_signal.c");
        assertNoProblems(CProbe.compareConstants(VcpuSignal.class, Map.of("SIGUSR1", "SIGUSR1", "SYS_GETTID",
                "SYS_gettid", "SYS_TGKILL", "SYS_tgkill"), signal));
        assertEquals(3, signal.size(), "vcpu_signal.c prints values the mapping does not check: " + signal.keySet());
    }

    @Test
    void everyBindingsClassIsMapped() throws Exception {
        Set<String> unmapped = new TreeSet<>();
        for (Class<?> cls : CProbe.classesBeside(KvmIoctls.class)) {
            if (!MAPPINGS.containsKey(cls) && CProbe.hasPublicConstants(cls)) {
                unmapped.add(cls.getSimpleName());
            }
        }
        assertTrue(unmapped.isEmpty(), "bindings classes with constants no probe checks: " + unmapped);
    }

    @Test
    void everyProbedValueIsChecked() {
        Set<String> checked = new HashSet<>(ALSO.keySet());
        MAPPINGS.values().forEach(m -> checked.addAll(m.values()));
        Set<String> unchecked = new TreeSet<>(probed.keySet());
        unchecked.removeAll(checked);
        assertTrue(unchecked.isEmpty(), "kvm_uapi.c prints values no mapping checks: " + unchecked);
    }

    /** Every top-level class of the bindings package, found next to KvmIoctls on the class path. */
    private static void assertNoProblems(List<String> problems) {
        assertTrue(problems.isEmpty(), () -> problems.size() + " mismatch(es) with <linux/kvm.h>:\n  "
                + String.join("\n  ", problems));
    }
}
