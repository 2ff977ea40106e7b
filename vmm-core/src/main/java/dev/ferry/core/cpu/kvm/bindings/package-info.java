/**
 * The KVM uAPI, bottom layer: numbers and struct layouts exactly as {@code <linux/kvm.h>} and
 * {@code <asm/kvm.h>} define them (x86-64), and nothing else — no fds, no policy. The KVM
 * counterpart of rust-vmm's {@code kvm-bindings}.
 *
 * <ul>
 *   <li>{@link dev.ferry.core.cpu.kvm.bindings.KvmIoctls} — every ioctl number, as a table in the
 *       header's order; {@link dev.ferry.core.cpu.kvm.bindings.KvmExit},
 *       {@link dev.ferry.core.cpu.kvm.bindings.KvmCaps},
 *       {@link dev.ferry.core.cpu.kvm.bindings.KvmConstants} — exit reasons, capabilities, flags.</li>
 *   <li>Flyweights over off-heap memory, one per struct, each with {@code SIZE}, its field offsets
 *       as constants, the byte layout drawn in its Javadoc, typed accessors and
 *       {@code toBytes()/fromBytes()} for migration: {@code KvmRegs}, {@code KvmSregs} (with
 *       {@code KvmSegment}, {@code KvmDtable} views), {@code KvmFpu}, {@code KvmXsave},
 *       {@code KvmXcrs}, {@code KvmMsrs}, {@code KvmMsrList}, {@code KvmCpuid2},
 *       {@code KvmUserspaceMemoryRegion}, {@code KvmDirtyLog}, {@code KvmClearDirtyLog},
 *       {@code KvmEnableCap}, {@code KvmVcpuEvents}, {@code KvmMpState}, {@code KvmDebugregs},
 *       {@code KvmLapicState}, {@code KvmClockData}, and {@code KvmRun}, a view of the vCPU's
 *       mapped {@code kvm_run} page.</li>
 * </ul>
 * {@code KvmHeaderProbeTest} compiles {@code probes/kvm_uapi.c} against the host's headers and
 * checks every constant, size and offset here; a new public constant needs its line in that probe
 * and in the test's mapping.
 */
package dev.ferry.core.cpu.kvm.bindings;
