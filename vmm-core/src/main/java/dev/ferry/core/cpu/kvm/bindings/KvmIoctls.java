package dev.ferry.core.cpu.kvm.bindings;

import dev.ferry.core.sys.Ioctl;

/**
 * Every KVM ioctl Ferry issues, encoded once from {@code (KVMIO, nr, struct size)} exactly as
 * {@code linux/kvm.h} declares it; {@code KvmHeaderProbeTest} compares each number with the
 * host's header. Grouped by the fd they go to, in the header's order.
 *
 * <p>Struct sizes come from the flyweights' {@code SIZE}, which the same test checks against
 * {@code sizeof}; variable-length structs count their fixed header only, as in C.
 */
public final class KvmIoctls {
    /** The ioctl type byte of every KVM request. */
    public static final int KVMIO = 0xAE;

    // /dev/kvm (system ioctls)
    public static final long KVM_GET_API_VERSION = Ioctl.io(KVMIO, 0x00);
    public static final long KVM_CREATE_VM = Ioctl.io(KVMIO, 0x01);
    public static final long KVM_GET_MSR_INDEX_LIST = Ioctl.iowr(KVMIO, 0x02, KvmMsrList.SIZE);
    public static final long KVM_CHECK_EXTENSION = Ioctl.io(KVMIO, 0x03);
    public static final long KVM_GET_VCPU_MMAP_SIZE = Ioctl.io(KVMIO, 0x04);
    public static final long KVM_GET_SUPPORTED_CPUID = Ioctl.iowr(KVMIO, 0x05, KvmCpuid2.SIZE);

    // VM fd
    public static final long KVM_CREATE_VCPU = Ioctl.io(KVMIO, 0x41);
    public static final long KVM_GET_DIRTY_LOG = Ioctl.iow(KVMIO, 0x42, KvmDirtyLog.SIZE);
    public static final long KVM_SET_USER_MEMORY_REGION = Ioctl.iow(KVMIO, 0x46, KvmUserspaceMemoryRegion.SIZE);
    public static final long KVM_SET_TSS_ADDR = Ioctl.io(KVMIO, 0x47);
    public static final long KVM_SET_IDENTITY_MAP_ADDR = Ioctl.iow(KVMIO, 0x48, 8);
    public static final long KVM_CREATE_IRQCHIP = Ioctl.io(KVMIO, 0x60);
    public static final long KVM_IRQ_LINE = Ioctl.iow(KVMIO, 0x61, KvmIrqLevel.SIZE);
    public static final long KVM_GET_IRQCHIP = Ioctl.iowr(KVMIO, 0x62, KvmIrqchip.SIZE);
    /** {@code _IOR} although user space writes: the header has always declared it so. */
    public static final long KVM_SET_IRQCHIP = Ioctl.ior(KVMIO, 0x63, KvmIrqchip.SIZE);
    public static final long KVM_SET_GSI_ROUTING = Ioctl.iow(KVMIO, 0x6a, KvmIrqRouting.SIZE);
    public static final long KVM_IRQFD = Ioctl.iow(KVMIO, 0x76, KvmIrqfd.SIZE);
    public static final long KVM_CREATE_PIT2 = Ioctl.iow(KVMIO, 0x77, KvmPitConfig.SIZE);
    public static final long KVM_IOEVENTFD = Ioctl.iow(KVMIO, 0x79, KvmIoeventfd.SIZE);
    public static final long KVM_SET_CLOCK = Ioctl.iow(KVMIO, 0x7b, KvmClockData.SIZE);
    public static final long KVM_GET_CLOCK = Ioctl.ior(KVMIO, 0x7c, KvmClockData.SIZE);
    public static final long KVM_GET_PIT2 = Ioctl.ior(KVMIO, 0x9f, KvmPitState2.SIZE);
    public static final long KVM_SET_PIT2 = Ioctl.iow(KVMIO, 0xa0, KvmPitState2.SIZE);
    public static final long KVM_ENABLE_CAP = Ioctl.iow(KVMIO, 0xa3, KvmEnableCap.SIZE);
    public static final long KVM_CLEAR_DIRTY_LOG = Ioctl.iowr(KVMIO, 0xc0, KvmClearDirtyLog.SIZE);

    // vCPU fd
    public static final long KVM_RUN = Ioctl.io(KVMIO, 0x80);
    public static final long KVM_GET_REGS = Ioctl.ior(KVMIO, 0x81, KvmRegs.SIZE);
    public static final long KVM_SET_REGS = Ioctl.iow(KVMIO, 0x82, KvmRegs.SIZE);
    public static final long KVM_GET_SREGS = Ioctl.ior(KVMIO, 0x83, KvmSregs.SIZE);
    public static final long KVM_SET_SREGS = Ioctl.iow(KVMIO, 0x84, KvmSregs.SIZE);
    public static final long KVM_GET_MSRS = Ioctl.iowr(KVMIO, 0x88, KvmMsrs.SIZE);
    public static final long KVM_SET_MSRS = Ioctl.iow(KVMIO, 0x89, KvmMsrs.SIZE);
    public static final long KVM_GET_FPU = Ioctl.ior(KVMIO, 0x8c, KvmFpu.SIZE);
    public static final long KVM_SET_FPU = Ioctl.iow(KVMIO, 0x8d, KvmFpu.SIZE);
    public static final long KVM_GET_LAPIC = Ioctl.ior(KVMIO, 0x8e, KvmLapicState.SIZE);
    public static final long KVM_SET_LAPIC = Ioctl.iow(KVMIO, 0x8f, KvmLapicState.SIZE);
    public static final long KVM_SET_CPUID2 = Ioctl.iow(KVMIO, 0x90, KvmCpuid2.SIZE);
    public static final long KVM_GET_MP_STATE = Ioctl.ior(KVMIO, 0x98, KvmMpState.SIZE);
    public static final long KVM_SET_MP_STATE = Ioctl.iow(KVMIO, 0x99, KvmMpState.SIZE);
    public static final long KVM_GET_VCPU_EVENTS = Ioctl.ior(KVMIO, 0x9f, KvmVcpuEvents.SIZE);
    public static final long KVM_SET_VCPU_EVENTS = Ioctl.iow(KVMIO, 0xa0, KvmVcpuEvents.SIZE);
    public static final long KVM_GET_DEBUGREGS = Ioctl.ior(KVMIO, 0xa1, KvmDebugregs.SIZE);
    public static final long KVM_SET_DEBUGREGS = Ioctl.iow(KVMIO, 0xa2, KvmDebugregs.SIZE);
    public static final long KVM_GET_XSAVE = Ioctl.ior(KVMIO, 0xa4, KvmXsave.SIZE);
    public static final long KVM_SET_XSAVE = Ioctl.iow(KVMIO, 0xa5, KvmXsave.SIZE);
    public static final long KVM_GET_XCRS = Ioctl.ior(KVMIO, 0xa6, KvmXcrs.SIZE);
    public static final long KVM_SET_XCRS = Ioctl.iow(KVMIO, 0xa7, KvmXcrs.SIZE);

    private KvmIoctls() {
    }
}
