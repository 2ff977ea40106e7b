package dev.ferry.core.cpu.kvm;

import dev.ferry.core.cpu.kvm.bindings.KvmDebugregs;
import dev.ferry.core.cpu.kvm.bindings.KvmMpState;
import dev.ferry.core.cpu.kvm.bindings.KvmMsrs;
import dev.ferry.core.cpu.kvm.bindings.KvmRegs;
import dev.ferry.core.cpu.kvm.bindings.KvmSregs;
import dev.ferry.core.cpu.kvm.bindings.KvmVcpuEvents;
import dev.ferry.core.cpu.kvm.bindings.KvmXcrs;
import dev.ferry.core.cpu.kvm.bindings.KvmXsave;
import dev.ferry.core.cpu.kvm.ioctls.KvmVcpu;
import dev.ferry.core.migration.VmStateDescription;

import java.nio.ByteBuffer;

/**
 * One KVM vCPU's architectural state as migration carries it — the list of
 * {@code shared/reference/kvm.md}: registers, special registers, XSAVE (which holds the x87/SSE/AVX
 * state; KVM_GET_FPU drops MXCSR here) and XCRs, every MSR the host lists, vCPU events (pending
 * exception/interrupt/NMI), MP state and debug registers. Section {@code "cpu"}, instance = vCPU
 * index, as in QEMU. No in-kernel irqchip is used, so there is no LAPIC page to carry.
 *
 * <p>{@link #capture} runs after every vCPU stopped; {@link #restore} before the first KVM_RUN on
 * the destination. Both on the thread that changes the run state.
 */
public final class KvmVcpuState {
    /** MSR entries on the wire: be32 index, be64 value. */
    private static final int MSR_ENTRY = 12;
    private static final int MAX_MSRS = 1024;

    public static final VmStateDescription<KvmVcpuState> VMSTATE = VmStateDescription.<KvmVcpuState>builder("cpu", 1)
            .u32("index", s -> s.index, (s, v) -> {
                if (v != s.index) {
                    throw new IllegalArgumentException("state of vCPU " + v + " loaded into vCPU " + s.index);
                }
            })
            .buffer("regs", KvmRegs.SIZE, s -> s.regs, (s, v) -> s.regs = v)
            .buffer("sregs", KvmSregs.SIZE, s -> s.sregs, (s, v) -> s.sregs = v)
            .vbuffer("xsave", 1 << 16, s -> s.xsave, (s, v) -> s.xsave = v)
            .buffer("xcrs", KvmXcrs.SIZE, s -> s.xcrs, (s, v) -> s.xcrs = v)
            .vbuffer("msrs", MAX_MSRS * MSR_ENTRY, s -> s.msrs, (s, v) -> {
                if (v.length % MSR_ENTRY != 0) {
                    throw new IllegalArgumentException("MSR list of " + v.length + " bytes");
                }
                s.msrs = v;
            })
            .buffer("vcpu_events", KvmVcpuEvents.SIZE, s -> s.events, (s, v) -> s.events = v)
            .buffer("mp_state", KvmMpState.SIZE, s -> s.mpState, (s, v) -> s.mpState = v)
            .buffer("debugregs", KvmDebugregs.SIZE, s -> s.debugregs, (s, v) -> {
                s.debugregs = v;
                s.loaded = true; // the last field: the whole state arrived
            })
            .build();

    private final int index;
    private byte[] regs = new byte[KvmRegs.SIZE];
    private byte[] sregs = new byte[KvmSregs.SIZE];
    private byte[] xsave = new byte[KvmXsave.SIZE];
    private byte[] xcrs = new byte[KvmXcrs.SIZE];
    private byte[] msrs = new byte[0];
    private byte[] events = new byte[KvmVcpuEvents.SIZE];
    private byte[] mpState = new byte[KvmMpState.SIZE];
    private byte[] debugregs = new byte[KvmDebugregs.SIZE];
    private volatile boolean loaded;

    public KvmVcpuState(int index) {
        this.index = index;
    }

    public int index() {
        return index;
    }

    /** True once a migration stream filled this state and it has not been restored yet. */
    public boolean loaded() {
        return loaded;
    }

    /** The saved RIP, for checks and reports. */
    public long rip() {
        try (KvmRegs r = new KvmRegs()) {
            r.fromBytes(regs);
            return r.rip();
        }
    }

    public byte[] regsBytes() {
        return regs.clone();
    }

    public byte[] sregsBytes() {
        return sregs.clone();
    }

    /** Reads the stopped vCPU's state; {@code msrIndices} are the MSRs to carry. */
    public void capture(KvmVcpu v, int[] msrIndices) {
        v.completePendingExit();
        try (KvmRegs r = new KvmRegs(); KvmSregs s = new KvmSregs(); KvmXsave x = new KvmXsave();
             KvmXcrs c = new KvmXcrs(); KvmVcpuEvents e = new KvmVcpuEvents(); KvmMpState m = new KvmMpState();
             KvmDebugregs d = new KvmDebugregs(); KvmMsrs msr = new KvmMsrs(KvmVcpu.MAX_MSRS_PER_CALL)) {
            v.getRegs(r);
            v.getSregs(s);
            v.getXsave(x);
            v.getXcrs(c);
            v.getVcpuEvents(e);
            v.getMpState(m);
            v.getDebugregs(d);
            regs = r.toBytes();
            sregs = s.toBytes();
            xsave = x.toBytes();
            xcrs = c.toBytes();
            events = e.toBytes();
            mpState = m.toBytes();
            debugregs = d.toBytes();
            ByteBuffer out = ByteBuffer.allocate(msrIndices.length * MSR_ENTRY);
            for (int at = 0; at < msrIndices.length; at += msr.capacity()) {
                int n = Math.min(msr.capacity(), msrIndices.length - at);
                for (int i = 0; i < n; i++) {
                    msr.set(i, msrIndices[at + i], 0);
                }
                msr.setNmsrs(n);
                int read = v.getMsrs(msr);
                for (int i = 0; i < read; i++) {
                    out.putInt(msr.index(i)).putLong(msr.data(i));
                }
            }
            msrs = java.util.Arrays.copyOf(out.array(), out.position());
        }
    }

    /** Writes the state into the vCPU in QEMU's order (regs, xsave, xcrs, sregs, MSRs, events, MP state, debugregs). */
    public void restore(KvmVcpu v) {
        try (KvmRegs r = new KvmRegs(); KvmSregs s = new KvmSregs(); KvmXsave x = new KvmXsave();
             KvmXcrs c = new KvmXcrs(); KvmVcpuEvents e = new KvmVcpuEvents(); KvmMpState m = new KvmMpState();
             KvmDebugregs d = new KvmDebugregs(); KvmMsrs msr = new KvmMsrs(KvmVcpu.MAX_MSRS_PER_CALL)) {
            r.fromBytes(regs);
            v.setRegs(r);
            byte[] xs = java.util.Arrays.copyOf(xsave, KvmXsave.SIZE);
            x.fromBytes(xs);
            v.setXsave(x);
            c.fromBytes(xcrs);
            v.setXcrs(c);
            s.fromBytes(sregs);
            v.setSregs(s);
            ByteBuffer in = ByteBuffer.wrap(msrs);
            int total = msrs.length / MSR_ENTRY;
            for (int at = 0; at < total; ) {
                int n = Math.min(msr.capacity(), total - at);
                for (int i = 0; i < n; i++) {
                    msr.set(i, in.getInt(), in.getLong());
                }
                msr.setNmsrs(n);
                int written = v.setMsrs(msr);
                if (written != n) {
                    throw new IllegalStateException("vCPU " + index + ": KVM_SET_MSRS refused MSR 0x"
                            + Integer.toHexString(msr.index(written)) + " of the migrated state");
                }
                at += n;
            }
            e.fromBytes(events);
            v.setVcpuEvents(e);
            m.fromBytes(mpState);
            v.setMpState(m);
            d.fromBytes(debugregs);
            v.setDebugregs(d);
        }
        loaded = false;
    }
}
