/**
 * The KVM uAPI, safe-wrapper layer: one owned fd per object, each ioctl once, errors as
 * {@link dev.ferry.core.sys.NativeCallException}s that name the ioctl. The counterpart of
 * rust-vmm's {@code kvm-ioctls}; the CPU engine is built on it and never issues an ioctl itself.
 *
 * <ul>
 *   <li>{@link dev.ferry.core.cpu.kvm.ioctls.Kvm} — {@code /dev/kvm}: API version, capabilities,
 *       supported CPUID, MSR index list, VM creation; {@code Kvm.available()} says why KVM cannot
 *       be used here.</li>
 *   <li>{@link dev.ferry.core.cpu.kvm.ioctls.KvmVm} — memory slots, dirty log (get, manual
 *       protect, clear), clock, TSS / identity-map addresses, irqchip, vCPU creation.</li>
 *   <li>{@link dev.ferry.core.cpu.kvm.ioctls.KvmVcpu} — KVM_RUN over the mapped {@code kvm_run},
 *       kick (immediate_exit + {@link dev.ferry.core.cpu.kvm.ioctls.VcpuSignal}), completion of a
 *       pending exit, get/set of every piece of vCPU state, MSR probing
 *       ({@link dev.ferry.core.cpu.kvm.ioctls.MsrProbe}), a register dump for error reports.</li>
 * </ul>
 * State travels in caller-owned flyweights from {@code bindings}, so a vCPU loop allocates
 * nothing per KVM_RUN or per state ioctl.
 */
package dev.ferry.core.cpu.kvm.ioctls;
