package dev.ferry.core.cpu.kvm.ioctls;

import dev.ferry.core.cpu.kvm.bindings.KvmCpuid2;
import dev.ferry.core.cpu.kvm.bindings.KvmDebugregs;
import dev.ferry.core.cpu.kvm.bindings.KvmFpu;
import dev.ferry.core.cpu.kvm.bindings.KvmIoctls;
import dev.ferry.core.cpu.kvm.bindings.KvmLapicState;
import dev.ferry.core.cpu.kvm.bindings.KvmMpState;
import dev.ferry.core.cpu.kvm.bindings.KvmMsrs;
import dev.ferry.core.cpu.kvm.bindings.KvmRegs;
import dev.ferry.core.cpu.kvm.bindings.KvmRun;
import dev.ferry.core.cpu.kvm.bindings.KvmSregs;
import dev.ferry.core.cpu.kvm.bindings.KvmVcpuEvents;
import dev.ferry.core.cpu.kvm.bindings.KvmXcrs;
import dev.ferry.core.cpu.kvm.bindings.KvmXsave;
import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.Sys;

import java.util.Arrays;

/**
 * A KVM vCPU fd and its mapped {@code kvm_run} page: KVM_RUN and the get/set pair of every piece
 * of vCPU state a migration carries. Every state method fills or reads a flyweight the caller
 * owns and reuses, so nothing allocates per call.
 *
 * <p>Threads: KVM serializes vCPU ioctls; call them from the vCPU's own thread (KVM_RUN, and
 * state save/restore while the vCPU is stopped). Only {@link #kick()} is for other threads; stop
 * kicking before {@link #close()}, which unmaps {@code kvm_run}. Owns its fd and mapping.
 */
public final class KvmVcpu implements AutoCloseable {
    /**
     * What {@link #run()} returns when KVM_RUN came back without an exit (EINTR: a signal or
     * {@code immediate_exit}; EAGAIN: an AP woke up but is not runnable yet). Never an exit reason.
     */
    public static final int RUN_INTERRUPTED = -1;
    /** Most entries one KVM_GET_MSRS / KVM_SET_MSRS takes (the kernel refuses MAX_IO_MSRS = 256). */
    public static final int MAX_MSRS_PER_CALL = 255;

    private final int id;
    private final Fd fd;
    private final Mapping runMapping;
    private final KvmRun run;
    private final KvmRegs dumpRegs = new KvmRegs();
    private final KvmSregs dumpSregs = new KvmSregs();
    /** The bound vCPU thread's kernel tid, 0 while unbound; read by kickers on other threads. */
    private volatile long threadId;
    private volatile long processId;

    KvmVcpu(Fd fd, int id, int mmapSize) {
        this.fd = fd;
        this.id = id;
        Mapping m = null;
        try {
            m = Mapping.shared(fd, 0, mmapSize);
            this.run = new KvmRun(m.address(), mmapSize);
        } catch (RuntimeException e) {
            if (m != null) {
                m.close();
            }
            fd.close();
            dumpRegs.close();
            dumpSregs.close();
            throw e;
        }
        this.runMapping = m;
    }

    /** The vCPU id given to KVM_CREATE_VCPU (its initial APIC ID). */
    public int id() {
        return id;
    }

    /** The shared {@code kvm_run} page: exit details after {@link #run()}, immediate_exit before. */
    public KvmRun kvmRun() {
        return run;
    }

    /**
     * Makes the calling thread this vCPU's thread, the one {@link #kick()} signals. Call it on
     * the vCPU thread before its first {@link #run()}; installs the SIGUSR1 handler once.
     */
    public void bindThread() {
        VcpuSignal.install();
        processId = VcpuSignal.pid();
        threadId = VcpuSignal.currentTid();
    }

    /**
     * From any thread: makes the vCPU leave KVM_RUN soon, or not enter it — sets
     * {@code immediate_exit}, then sends SIGUSR1 to the bound thread (if any), so
     * {@link #run()} returns {@link #RUN_INTERRUPTED}. A kick carries no meaning of its own: set
     * your request flag first, then kick; the vCPU thread checks the flag after
     * {@code RUN_INTERRUPTED}. A kick that finds the thread outside KVM_RUN costs at most one
     * spurious {@code RUN_INTERRUPTED}.
     */
    public void kick() {
        run.setImmediateExit(true);
        long tid = threadId;
        if (tid != 0) {
            VcpuSignal.send(processId, tid);
        }
    }

    /**
     * KVM_RUN: enters the guest until it needs the VMM. Returns the exit reason
     * ({@code KvmExit.KVM_EXIT_*}, details in {@link #kvmRun()}) or {@link #RUN_INTERRUPTED} when
     * KVM returned EINTR/EAGAIN (a {@link #kick()}, a signal), so the caller checks for a pause
     * request and calls again. {@code immediate_exit} is cleared on the way out of an interrupted
     * call, so the next call enters the guest.
     *
     * <p>An exit that needs an answer (port IN, MMIO read) is completed by the <em>next</em>
     * KVM_RUN: write the IN / read data into {@code kvm_run} first. Whether RIP is already past
     * an OUT at the exit depends on the host (VMX/SVM: not yet; this nested host: already), so
     * before saving state call {@link #completePendingExit()}, after which it always is.
     *
     * @throws NativeCallException for any other errno, naming KVM_RUN and the vCPU
     */
    public int run() {
        int r = Sys.libc().ioctl(fd.get(), KvmIoctls.KVM_RUN, 0);
        if (r >= 0) {
            return run.exitReason();
        }
        int errno = Sys.errno();
        if (errno == Errno.EINTR || errno == Errno.EAGAIN) {
            run.setImmediateExit(false);
            return RUN_INTERRUPTED;
        }
        throw new NativeCallException("KVM_RUN", errno, "vcpu " + id);
    }

    /**
     * Finishes the instruction of the last exit (port I/O, MMIO) without running guest code:
     * KVM_RUN with {@code immediate_exit} set, which completes pending I/O and returns EINTR.
     * Call on the vCPU thread after the last exit was handled and before saving state, so RIP
     * and the registers are those after the instruction. Returns {@link #run()}'s value (an exit
     * reason only if KVM had something else to report).
     */
    public int completePendingExit() {
        run.setImmediateExit(true);
        try {
            return run();
        } finally {
            run.setImmediateExit(false);
        }
    }

    public void getRegs(KvmRegs out) {
        ioctl(KvmIoctls.KVM_GET_REGS, out.address(), "KVM_GET_REGS");
    }

    public void setRegs(KvmRegs in) {
        ioctl(KvmIoctls.KVM_SET_REGS, in.address(), "KVM_SET_REGS");
    }

    public void getSregs(KvmSregs out) {
        ioctl(KvmIoctls.KVM_GET_SREGS, out.address(), "KVM_GET_SREGS");
    }

    public void setSregs(KvmSregs in) {
        ioctl(KvmIoctls.KVM_SET_SREGS, in.address(), "KVM_SET_SREGS");
    }

    public void getFpu(KvmFpu out) {
        ioctl(KvmIoctls.KVM_GET_FPU, out.address(), "KVM_GET_FPU");
    }

    public void setFpu(KvmFpu in) {
        ioctl(KvmIoctls.KVM_SET_FPU, in.address(), "KVM_SET_FPU");
    }

    /** KVM_GET_XSAVE (KVM_CAP_XSAVE): the x87/SSE/AVX state as a 4096-byte XSAVE image. */
    public void getXsave(KvmXsave out) {
        ioctl(KvmIoctls.KVM_GET_XSAVE, out.address(), "KVM_GET_XSAVE");
    }

    /** KVM_SET_XSAVE; set CPUID first, since the features it enables bound what KVM accepts. */
    public void setXsave(KvmXsave in) {
        ioctl(KvmIoctls.KVM_SET_XSAVE, in.address(), "KVM_SET_XSAVE");
    }

    public void getXcrs(KvmXcrs out) {
        ioctl(KvmIoctls.KVM_GET_XCRS, out.address(), "KVM_GET_XCRS");
    }

    public void setXcrs(KvmXcrs in) {
        ioctl(KvmIoctls.KVM_SET_XCRS, in.address(), "KVM_SET_XCRS");
    }

    /**
     * KVM_GET_MSRS for the first {@code nmsrs} entries. Returns how many were read: KVM stops at
     * the first MSR it cannot read, so entry {@code n} (if {@code n < nmsrs}) is the culprit.
     */
    public int getMsrs(KvmMsrs msrs) {
        checkMsrCount(msrs);
        return ioctl(KvmIoctls.KVM_GET_MSRS, msrs.address(), "KVM_GET_MSRS");
    }

    /** KVM_SET_MSRS: returns how many were written; entry {@code n} (if short) was refused. */
    public int setMsrs(KvmMsrs msrs) {
        checkMsrCount(msrs);
        return ioctl(KvmIoctls.KVM_SET_MSRS, msrs.address(), "KVM_SET_MSRS");
    }

    /**
     * Reads each MSR of {@code candidates} and sorts them into readable and unreadable ones. A
     * setup-time call (it allocates): batches of {@link #MAX_MSRS_PER_CALL}, skipping past
     * each MSR KVM refuses.
     */
    public MsrProbe probeMsrs(int[] candidates) {
        int[] readable = new int[candidates.length];
        int[] unreadable = new int[candidates.length];
        int nr = 0;
        int nu = 0;
        try (KvmMsrs msrs = new KvmMsrs(Math.min(Math.max(candidates.length, 1), MAX_MSRS_PER_CALL))) {
            int at = 0;
            while (at < candidates.length) {
                int batch = Math.min(candidates.length - at, msrs.capacity());
                for (int i = 0; i < batch; i++) {
                    msrs.set(i, candidates[at + i], 0);
                }
                msrs.setNmsrs(batch);
                int read = getMsrs(msrs);
                System.arraycopy(candidates, at, readable, nr, read);
                nr += read;
                at += read;
                if (read < batch) {
                    unreadable[nu++] = candidates[at++];
                }
            }
        }
        return new MsrProbe(Arrays.copyOf(readable, nr), Arrays.copyOf(unreadable, nu));
    }

    /** KVM_SET_CPUID2: the CPUID the guest sees; set before state that depends on it (XSAVE, MSRs). */
    public void setCpuid2(KvmCpuid2 cpuid) {
        ioctl(KvmIoctls.KVM_SET_CPUID2, cpuid.address(), "KVM_SET_CPUID2");
    }

    public void getVcpuEvents(KvmVcpuEvents out) {
        ioctl(KvmIoctls.KVM_GET_VCPU_EVENTS, out.address(), "KVM_GET_VCPU_EVENTS");
    }

    public void setVcpuEvents(KvmVcpuEvents in) {
        ioctl(KvmIoctls.KVM_SET_VCPU_EVENTS, in.address(), "KVM_SET_VCPU_EVENTS");
    }

    public void getMpState(KvmMpState out) {
        ioctl(KvmIoctls.KVM_GET_MP_STATE, out.address(), "KVM_GET_MP_STATE");
    }

    public void setMpState(KvmMpState in) {
        ioctl(KvmIoctls.KVM_SET_MP_STATE, in.address(), "KVM_SET_MP_STATE");
    }

    public void getDebugregs(KvmDebugregs out) {
        ioctl(KvmIoctls.KVM_GET_DEBUGREGS, out.address(), "KVM_GET_DEBUGREGS");
    }

    public void setDebugregs(KvmDebugregs in) {
        ioctl(KvmIoctls.KVM_SET_DEBUGREGS, in.address(), "KVM_SET_DEBUGREGS");
    }

    /** KVM_GET_LAPIC: needs the VM's in-kernel irqchip (ENXIO otherwise). */
    public void getLapic(KvmLapicState out) {
        ioctl(KvmIoctls.KVM_GET_LAPIC, out.address(), "KVM_GET_LAPIC");
    }

    public void setLapic(KvmLapicState in) {
        ioctl(KvmIoctls.KVM_SET_LAPIC, in.address(), "KVM_SET_LAPIC");
    }

    /**
     * The registers an error report needs — last exit, RIP, RSP, RFLAGS, the GPRs, CR0/2/3/4,
     * EFER, CS and SS — read now with KVM_GET_REGS/SREGS. Never throws: a failed read is
     * reported in the text. Call on the vCPU thread while it is out of KVM_RUN.
     */
    public synchronized String dumpRegisters() {
        StringBuilder sb = new StringBuilder("vcpu ").append(id).append(": ");
        try {
            sb.append(run.describeExit());
        } catch (RuntimeException e) {
            sb.append("exit unknown (").append(e.getMessage()).append(')');
        }
        try {
            getRegs(dumpRegs);
            KvmRegs r = dumpRegs;
            sb.append(String.format("%n  rip=%016x rsp=%016x rflags=%08x", r.rip(), r.rsp(), r.rflags()));
            sb.append(String.format("%n  rax=%016x rbx=%016x rcx=%016x rdx=%016x", r.rax(), r.rbx(), r.rcx(), r.rdx()));
            sb.append(String.format("%n  rsi=%016x rdi=%016x rbp=%016x", r.rsi(), r.rdi(), r.rbp()));
        } catch (RuntimeException e) {
            sb.append("\n  registers unavailable: ").append(e.getMessage());
        }
        try {
            getSregs(dumpSregs);
            KvmSregs s = dumpSregs;
            sb.append(String.format("%n  cr0=%08x cr2=%x cr3=%x cr4=%x efer=%x", s.cr0(), s.cr2(), s.cr3(), s.cr4(),
                    s.efer()));
            sb.append(String.format("%n  cs=%04x base=%x%s ss=%04x base=%x", s.cs().selector(), s.cs().base(),
                    s.cs().l() ? " (64-bit)" : s.cs().db() ? " (32-bit)" : " (16-bit)", s.ss().selector(),
                    s.ss().base()));
        } catch (RuntimeException e) {
            sb.append("\n  system registers unavailable: ").append(e.getMessage());
        }
        return sb.toString();
    }

    private int ioctl(long request, long arg, String name) {
        return Sys.ioctl(fd, request, arg, name);
    }

    private static void checkMsrCount(KvmMsrs msrs) {
        if (msrs.nmsrs() > MAX_MSRS_PER_CALL) {
            throw new IllegalArgumentException("KVM takes at most " + MAX_MSRS_PER_CALL + " MSRs per call, not "
                    + msrs.nmsrs());
        }
    }

    /** Unmaps {@code kvm_run} and closes the vCPU fd. Idempotent. */
    @Override
    public synchronized void close() {
        try {
            run.close();
            runMapping.close();
        } finally {
            fd.close();
            dumpRegs.close();
            dumpSregs.close();
        }
    }

    @Override
    public String toString() {
        return fd.toString();
    }
}
