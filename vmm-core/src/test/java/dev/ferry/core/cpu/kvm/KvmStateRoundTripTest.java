package dev.ferry.core.cpu.kvm;

import dev.ferry.core.cpu.kvm.bindings.KvmClockData;
import dev.ferry.core.cpu.kvm.bindings.KvmCpuid2;
import dev.ferry.core.cpu.kvm.bindings.KvmDebugregs;
import dev.ferry.core.cpu.kvm.bindings.KvmExit;
import dev.ferry.core.cpu.kvm.bindings.KvmFpu;
import dev.ferry.core.cpu.kvm.bindings.KvmLapicState;
import dev.ferry.core.cpu.kvm.bindings.KvmMpState;
import dev.ferry.core.cpu.kvm.bindings.KvmMsrs;
import dev.ferry.core.cpu.kvm.bindings.KvmRegs;
import dev.ferry.core.cpu.kvm.bindings.KvmSregs;
import dev.ferry.core.cpu.kvm.bindings.KvmStruct;
import dev.ferry.core.cpu.kvm.bindings.KvmVcpuEvents;
import dev.ferry.core.cpu.kvm.bindings.KvmXcrs;
import dev.ferry.core.cpu.kvm.bindings.KvmXsave;
import dev.ferry.core.cpu.kvm.ioctls.Kvm;
import dev.ferry.core.cpu.kvm.ioctls.KvmVcpu;
import dev.ferry.core.cpu.kvm.ioctls.KvmVm;
import dev.ferry.core.cpu.kvm.ioctls.MsrProbe;
import dev.ferry.core.memory.GuestMemory;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Saves every piece of vCPU state from a vCPU that ran guest code, moves it through byte arrays
 * (as a migration stream would), restores it into a vCPU of a second VM in QEMU's order, and
 * reads it back. Both VMs have an in-kernel irqchip so the LAPIC travels too.
 *
 * <p>What KVM may legitimately change, and is therefore not compared bit for bit: the TSC MSR
 * (0x10), which keeps counting, and the VM clock, which must only not go backwards.
 */
class KvmStateRoundTripTest {
    private static final int MSR_IA32_TSC = 0x10;
    /**
     * MSRs the test sets to non-reset values on the source: SYSENTER_CS/ESP/EIP, STAR, LSTAR,
     * CSTAR, FMASK, KERNEL_GS_BASE, PAT.
     */
    private static final int[] SET_ON_SOURCE = {0x174, 0x175, 0x176, 0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084,
        0xc0000102, 0x277};
    private static final Set<Integer> MOVING = Set.of(MSR_IA32_TSC);

    @BeforeAll
    static void requireKvm() {
        KvmTesting.assumeKvm();
    }

    @Test
    void everyStatePieceSurvivesAMoveToAnotherVm() {
        try (Kvm kvm = Kvm.open(); GuestMemory memA = GuestMemory.ofSize(X86Guest.RAM_SIZE);
             GuestMemory memB = GuestMemory.ofSize(X86Guest.RAM_SIZE); KvmVm vmA = kvm.createVm();
             KvmVm vmB = kvm.createVm(); State a = new State(); State b = new State();
             KvmClockData clockA = new KvmClockData(); KvmClockData clockB = new KvmClockData()) {
            vmA.createIrqchip();
            vmB.createIrqchip();
            vmA.setUserMemoryRegion(0, 0, memA.regions().get(0));
            vmB.setUserMemoryRegion(0, 0, memB.regions().get(0));
            try (KvmVcpu src = vmA.createVcpu(0); KvmVcpu dst = vmB.createVcpu(0);
                 KvmCpuid2 cpuid = kvm.supportedCpuid()) {
                X86Guest.enterLongMode(kvm, src, memA, X86Guest.LONG_MODE_STORE_OUT_HLT);
                assertEquals(KvmExit.KVM_EXIT_IO, src.run(), src::dumpRegisters);
                assertEquals(KvmVcpu.RUN_INTERRUPTED, src.completePendingExit());
                dirtySomeState(src);

                MsrProbe msrs = src.probeMsrs(kvm.msrIndexList());
                System.out.println("MSRs: " + msrs.readable().length + " of " + kvm.msrIndexList().length
                        + " readable; unreadable: " + MsrProbe.hex(msrs.unreadable()));
                long t0 = System.nanoTime();
                Saved saved = a.save(src, msrs.readable());
                vmA.getClock(clockA);
                long t1 = System.nanoTime();

                dst.setCpuid2(cpuid);
                List<Integer> refused = b.restore(dst, saved);
                vmB.setClock(clockA);
                long t2 = System.nanoTime();
                System.out.printf("state: saved %d bytes in %d us (%d ioctls), restored in %d us; "
                        + "MSRs refused by KVM_SET_MSRS: %s%n", saved.bytes(), (t1 - t0) / 1000, saved.ioctls(),
                        (t2 - t1) / 1000, MsrProbe.hex(refused.stream().mapToInt(Integer::intValue).toArray()));
                assertEquals(List.of(), refused, "MSRs the destination refused");

                Saved back = b.save(dst, msrs.readable());
                assertArrayEquals(saved.regs, back.regs, "kvm_regs");
                assertArrayEquals(saved.sregs, back.sregs, "kvm_sregs");
                assertArrayEquals(saved.fpu, back.fpu, "kvm_fpu");
                assertArrayEquals(saved.xsave, back.xsave, "kvm_xsave");
                assertArrayEquals(saved.xcrs, back.xcrs, "kvm_xcrs");
                assertArrayEquals(saved.events, back.events, "kvm_vcpu_events");
                assertTrue(b.events.nmiMasked(), "NMI masked, set on the source");
                assertArrayEquals(saved.mpState, back.mpState, "kvm_mp_state");
                assertArrayEquals(saved.debugregs, back.debugregs, "kvm_debugregs");
                assertArrayEquals(saved.lapic, back.lapic, "kvm_lapic_state");
                compareMsrs(msrs.readable(), saved.msrValues, back.msrValues);
                assertEquals(0x0123456789abcdefL, b.fpu.xmmLow(3), "XMM3 set through XSAVE, seen through KVM_GET_FPU");
                assertEquals(0x7f80, b.xsave.mxcsr(), "MXCSR travels in the XSAVE image");
                System.out.printf("MXCSR: 0x%x in XSAVE, 0x%x through KVM_GET_FPU%n", b.xsave.mxcsr(), b.fpu.mxcsr());

                // KVM_SET_FPU on its own (hosts without XSAVE): everything but MXCSR, which x86 KVM's
                // KVM_GET_FPU / KVM_SET_FPU have never copied
                a.fpu.setXmm(5, 55, 66);
                a.fpu.setFcw(0x27f);
                dst.setFpu(a.fpu);
                dst.getFpu(b.fpu);
                assertEquals(55, b.fpu.xmmLow(5));
                assertEquals(0x27f, b.fpu.fcw());
                b.fpu.setMxcsr(a.fpu.mxcsr());
                assertArrayEquals(a.fpu.toBytes(), b.fpu.toBytes(), "kvm_fpu after KVM_SET_FPU, MXCSR aside");

                vmB.getClock(clockB);
                assertTrue(clockB.clock() >= clockA.clock(), "the VM clock went backwards: " + clockA.clock() + " → "
                        + clockB.clock());
                System.out.printf("clock: source %d ns, destination %d ns after restore (flags 0x%x)%n",
                        clockA.clock(), clockB.clock(), clockB.flags());
                assertEquals(X86Guest.CODE + X86Guest.LONG_MODE_OUT_AT + 2, b.regs.rip(), "resumes at the HLT");
            }
        }
    }

    /** Gives the source's state values a fresh vCPU would not have. */
    private static void dirtySomeState(KvmVcpu vcpu) {
        try (KvmMsrs msrs = KvmMsrs.of(SET_ON_SOURCE); KvmDebugregs dr = new KvmDebugregs();
             KvmXsave xsave = new KvmXsave(); KvmRegs regs = new KvmRegs();
             KvmVcpuEvents events = new KvmVcpuEvents()) {
            for (int i = 0; i < SET_ON_SOURCE.length; i++) {
                msrs.setData(i, SET_ON_SOURCE[i] == 0x277 ? 0x0007040600070406L : 0xffffffff81000000L + 0x10 * i);
            }
            msrs.setData(0, 0x10); // SYSENTER_CS is a selector
            assertEquals(SET_ON_SOURCE.length, vcpu.setMsrs(msrs));
            vcpu.getDebugregs(dr);
            for (int i = 0; i < 4; i++) {
                dr.setDb(i, 0x100000L * (i + 1));
            }
            vcpu.setDebugregs(dr);
            vcpu.getXsave(xsave);
            xsave.setXmm(3, 0x0123456789abcdefL, 0xfedcba9876543210L);
            xsave.setMxcsr(0x1f80 | 0x6000); // round toward zero
            xsave.setXstateBv(xsave.xstateBv() | 0x3); // x87 and SSE state present
            vcpu.setXsave(xsave);
            vcpu.getVcpuEvents(events);
            events.setNmiMasked(true);
            vcpu.setVcpuEvents(events);
            vcpu.getRegs(regs);
            regs.setR15(0x1515151515151515L);
            vcpu.setRegs(regs);
        }
    }

    private static void compareMsrs(int[] indices, long[] saved, long[] back) {
        List<String> diffs = new ArrayList<>();
        for (int i = 0; i < indices.length; i++) {
            if (saved[i] != back[i] && !MOVING.contains(indices[i])) {
                diffs.add(String.format("0x%x: 0x%x → 0x%x", indices[i], saved[i], back[i]));
            }
        }
        assertEquals(List.of(), diffs, "MSRs that did not read back equal");
        for (int m : SET_ON_SOURCE) {
            assertTrue(Arrays.stream(indices).anyMatch(x -> x == m), String.format("MSR 0x%x is not saved", m));
        }
    }

    /** One vCPU's state as a migration stream carries it. */
    record Saved(byte[] regs, byte[] sregs, byte[] fpu, byte[] xsave, byte[] xcrs, byte[] events, byte[] mpState,
                 byte[] debugregs, byte[] lapic, int[] msrIndices, long[] msrValues, int ioctls) {
        int bytes() {
            return regs.length + sregs.length + fpu.length + xsave.length + xcrs.length + events.length
                    + mpState.length + debugregs.length + lapic.length + 16 * msrValues.length;
        }
    }

    /** One set of flyweights, allocated once, that saves from and restores into a vCPU. */
    private static final class State implements AutoCloseable {
        final KvmRegs regs = new KvmRegs();
        final KvmSregs sregs = new KvmSregs();
        final KvmFpu fpu = new KvmFpu();
        final KvmXsave xsave = new KvmXsave();
        final KvmXcrs xcrs = new KvmXcrs();
        final KvmVcpuEvents events = new KvmVcpuEvents();
        final KvmMpState mpState = new KvmMpState();
        final KvmDebugregs debugregs = new KvmDebugregs();
        final KvmLapicState lapic = new KvmLapicState();
        final KvmMsrs msrs = new KvmMsrs(KvmVcpu.MAX_MSRS_PER_CALL);

        Saved save(KvmVcpu v, int[] msrIndices) {
            v.getRegs(regs);
            v.getSregs(sregs);
            v.getFpu(fpu);
            v.getXsave(xsave);
            v.getXcrs(xcrs);
            v.getVcpuEvents(events);
            v.getMpState(mpState);
            v.getDebugregs(debugregs);
            v.getLapic(lapic);
            long[] values = new long[msrIndices.length];
            int calls = 0;
            for (int at = 0; at < msrIndices.length; at += msrs.capacity(), calls++) {
                int n = Math.min(msrs.capacity(), msrIndices.length - at);
                for (int i = 0; i < n; i++) {
                    msrs.set(i, msrIndices[at + i], 0);
                }
                msrs.setNmsrs(n);
                assertEquals(n, v.getMsrs(msrs), "KVM_GET_MSRS of probed-readable MSRs");
                for (int i = 0; i < n; i++) {
                    values[at + i] = msrs.data(i);
                }
            }
            return new Saved(regs.toBytes(), sregs.toBytes(), fpu.toBytes(), xsave.toBytes(), xcrs.toBytes(),
                    events.toBytes(), mpState.toBytes(), debugregs.toBytes(), lapic.toBytes(), msrIndices.clone(),
                    values, 9 + calls);
        }

        /** Restores in QEMU's order (CPUID already set); returns the MSRs KVM_SET_MSRS refused. */
        List<Integer> restore(KvmVcpu v, Saved s) {
            regs.fromBytes(s.regs);
            v.setRegs(regs);
            xsave.fromBytes(s.xsave);
            v.setXsave(xsave);
            xcrs.fromBytes(s.xcrs);
            v.setXcrs(xcrs);
            sregs.fromBytes(s.sregs);
            v.setSregs(sregs);
            List<Integer> refused = new ArrayList<>();
            int[] indices = s.msrIndices;
            int at = 0;
            while (at < indices.length) {
                int n = Math.min(msrs.capacity(), indices.length - at);
                for (int i = 0; i < n; i++) {
                    msrs.set(i, indices[at + i], s.msrValues[at + i]);
                }
                msrs.setNmsrs(n);
                int written = v.setMsrs(msrs);
                at += written;
                if (written < n) {
                    refused.add(indices[at++]);
                }
            }
            events.fromBytes(s.events);
            v.setVcpuEvents(events);
            mpState.fromBytes(s.mpState);
            v.setMpState(mpState);
            lapic.fromBytes(s.lapic);
            v.setLapic(lapic);
            debugregs.fromBytes(s.debugregs);
            v.setDebugregs(debugregs);
            return refused;
        }

        @Override
        public void close() {
            for (KvmStruct k : new KvmStruct[] {regs, sregs, fpu, xsave, xcrs, events, mpState, debugregs, lapic,
                msrs}) {
                k.close();
            }
        }
    }
}
