package dev.ferry.core.cpu.kvm;

import dev.ferry.core.cpu.kvm.bindings.KvmCaps;
import dev.ferry.core.cpu.kvm.bindings.KvmExit;
import dev.ferry.core.cpu.kvm.bindings.KvmRegs;
import dev.ferry.core.cpu.kvm.bindings.KvmRun;
import dev.ferry.core.cpu.kvm.ioctls.Kvm;
import dev.ferry.core.cpu.kvm.ioctls.KvmVcpu;
import dev.ferry.core.cpu.kvm.ioctls.KvmVm;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.sys.NativeMemory;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Runs real guest code under /dev/kvm: a real-mode OUT + HLT, a long-mode store + OUT + HLT,
 * MMIO exits both ways, and the completion of a pending OUT by an immediate-exit KVM_RUN.
 */
class KvmSmokeTest {
    @BeforeAll
    static void requireKvm() {
        KvmTesting.assumeKvm();
    }

    @Test
    void kvmReportsApiAndTheCapabilitiesFerryUses() {
        try (Kvm kvm = Kvm.open()) {
            assertEquals(12, kvm.apiVersion());
            assertTrue(kvm.vcpuMmapSize() >= KvmRun.SIZE, "vcpu mmap size " + kvm.vcpuMmapSize());
            for (int cap : new int[] {KvmCaps.KVM_CAP_USER_MEMORY, KvmCaps.KVM_CAP_XSAVE, KvmCaps.KVM_CAP_XCRS,
                    KvmCaps.KVM_CAP_VCPU_EVENTS, KvmCaps.KVM_CAP_DEBUGREGS, KvmCaps.KVM_CAP_MP_STATE,
                    KvmCaps.KVM_CAP_IMMEDIATE_EXIT}) {
                assertTrue(kvm.hasExtension(cap), KvmCaps.name(cap) + " missing");
            }
            System.out.printf("kvm: mmap size %d, MANUAL_DIRTY_LOG_PROTECT2=%d DIRTY_LOG_RING=%d IRQCHIP=%d "
                            + "ADJUST_CLOCK=%d XSAVE2=%d NR_MEMSLOTS=%d MAX_VCPUS=%d%n", kvm.vcpuMmapSize(),
                    kvm.checkExtension(KvmCaps.KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2),
                    kvm.checkExtension(KvmCaps.KVM_CAP_DIRTY_LOG_RING), kvm.checkExtension(KvmCaps.KVM_CAP_IRQCHIP),
                    kvm.checkExtension(KvmCaps.KVM_CAP_ADJUST_CLOCK), kvm.checkExtension(KvmCaps.KVM_CAP_XSAVE2),
                    kvm.checkExtension(KvmCaps.KVM_CAP_NR_MEMSLOTS), kvm.checkExtension(KvmCaps.KVM_CAP_MAX_VCPUS));
        }
    }

    @Test
    void realModeOutThenHlt() {
        try (GuestMemory mem = GuestMemory.ofSize(X86Guest.RAM_SIZE); Kvm kvm = Kvm.open();
             KvmVm vm = kvm.createVm()) {
            vm.setTssAddr(0xfffbd000L);
            vm.setUserMemoryRegion(0, 0, mem.regions().get(0));
            try (KvmVcpu vcpu = vm.createVcpu(0)) {
                X86Guest.enterRealMode(vcpu, mem, X86Guest.REAL_MODE_OUT_HLT);
                long t0 = System.nanoTime();
                int exit = vcpu.run();
                long t1 = System.nanoTime();
                assertEquals(KvmExit.KVM_EXIT_IO, exit, vcpu::dumpRegisters);
                KvmRun run = vcpu.kvmRun();
                assertEquals(KvmExit.KVM_EXIT_IO_OUT, run.ioDirection());
                assertEquals(0x10, run.ioPort());
                assertEquals(1, run.ioSize());
                assertEquals(1, run.ioCount());
                assertEquals(0x42, NativeMemory.getByte(run.address() + run.ioDataOffset()));
                assertEquals(0x42, run.ioData());
                int second = vcpu.run();
                long t2 = System.nanoTime();
                assertEquals(KvmExit.KVM_EXIT_HLT, second, vcpu::dumpRegisters);
                System.out.printf("real mode: %s after %d us, then %s after %d us%n", KvmExit.name(exit),
                        (t1 - t0) / 1000, KvmExit.name(second), (t2 - t1) / 1000);
            }
        }
    }

    @Test
    void longModeStoreOutThenHlt() {
        try (GuestMemory mem = GuestMemory.ofSize(X86Guest.RAM_SIZE); Kvm kvm = Kvm.open();
             KvmVm vm = kvm.createVm()) {
            vm.setUserMemoryRegion(0, 0, mem.regions().get(0));
            try (KvmVcpu vcpu = vm.createVcpu(0); KvmRegs regs = new KvmRegs()) {
                X86Guest.enterLongMode(kvm, vcpu, mem, X86Guest.LONG_MODE_STORE_OUT_HLT);
                long t0 = System.nanoTime();
                int exit = vcpu.run();
                long t1 = System.nanoTime();
                assertEquals(KvmExit.KVM_EXIT_IO, exit, vcpu::dumpRegisters);
                KvmRun run = vcpu.kvmRun();
                assertEquals(KvmExit.KVM_EXIT_IO_OUT, run.ioDirection());
                assertEquals(0x10, run.ioPort());
                assertEquals(4, run.ioSize());
                assertEquals(0x55667788, run.ioData());
                assertEquals(0x1122334455667788L, mem.readLong(Gpa.of(X86Guest.DATA)));

                int second = vcpu.run();
                long t2 = System.nanoTime();
                assertEquals(KvmExit.KVM_EXIT_HLT, second, vcpu::dumpRegisters);
                vcpu.getRegs(regs);
                assertEquals(X86Guest.CODE + X86Guest.LONG_MODE_STORE_OUT_HLT.length, regs.rip(), "RIP after HLT");
                String dump = vcpu.dumpRegisters();
                assertTrue(dump.contains("KVM_EXIT_HLT") && dump.contains("(64-bit)") && dump.contains("efer=500"),
                        dump);
                System.out.printf("long mode: %s after %d us, then %s after %d us%n%s%n", KvmExit.name(exit),
                        (t1 - t0) / 1000, KvmExit.name(second), (t2 - t1) / 1000, dump);
            }
        }
    }

    @Test
    void pendingOutCompletesOnImmediateExitRun() {
        try (GuestMemory mem = GuestMemory.ofSize(X86Guest.RAM_SIZE); Kvm kvm = Kvm.open();
             KvmVm vm = kvm.createVm()) {
            vm.setUserMemoryRegion(0, 0, mem.regions().get(0));
            try (KvmVcpu vcpu = vm.createVcpu(0); KvmRegs regs = new KvmRegs()) {
                X86Guest.enterLongMode(kvm, vcpu, mem, X86Guest.LONG_MODE_STORE_OUT_HLT);
                assertEquals(KvmExit.KVM_EXIT_IO, vcpu.run(), vcpu::dumpRegisters);
                vcpu.getRegs(regs);
                long ripAtExit = regs.rip();

                assertEquals(KvmVcpu.RUN_INTERRUPTED, vcpu.completePendingExit());
                assertFalse(vcpu.kvmRun().immediateExit());
                vcpu.getRegs(regs);
                long hlt = X86Guest.CODE + X86Guest.LONG_MODE_OUT_AT + 2;
                assertEquals(hlt, regs.rip(), "RIP after the immediate-exit run: the OUT is complete");
                System.out.printf("pending OUT: RIP 0x%x at the exit, 0x%x after the immediate-exit KVM_RUN%n",
                        ripAtExit, regs.rip());
                assertEquals(KvmExit.KVM_EXIT_HLT, vcpu.run(), vcpu::dumpRegisters);
            }
        }
    }

    @Test
    void mmioWriteAndReadExits() {
        try (GuestMemory mem = GuestMemory.ofSize(X86Guest.RAM_SIZE); Kvm kvm = Kvm.open();
             KvmVm vm = kvm.createVm()) {
            vm.setUserMemoryRegion(0, 0, mem.regions().get(0));
            try (KvmVcpu vcpu = vm.createVcpu(0)) {
                X86Guest.enterLongMode(kvm, vcpu, mem, X86Guest.LONG_MODE_MMIO);
                KvmRun run = vcpu.kvmRun();

                assertEquals(KvmExit.KVM_EXIT_MMIO, vcpu.run(), vcpu::dumpRegisters);
                assertTrue(run.mmioIsWrite());
                assertEquals(X86Guest.MMIO_BASE + 0x10, run.mmioPhysAddr());
                assertEquals(8, run.mmioLen());
                assertEquals(0x0102030405060708L, run.mmioData());

                assertEquals(KvmExit.KVM_EXIT_MMIO, vcpu.run(), vcpu::dumpRegisters);
                assertFalse(run.mmioIsWrite());
                assertEquals(X86Guest.MMIO_BASE + 0x20, run.mmioPhysAddr());
                assertEquals(8, run.mmioLen());
                run.setMmioData(0xcafebabe12345678L);

                assertEquals(KvmExit.KVM_EXIT_IO, vcpu.run(), vcpu::dumpRegisters);
                assertEquals(0x12345678, run.ioData(), "the MMIO read's value, through RBX and RAX");
                assertEquals(KvmExit.KVM_EXIT_HLT, vcpu.run(), vcpu::dumpRegisters);
            }
        }
    }
}
