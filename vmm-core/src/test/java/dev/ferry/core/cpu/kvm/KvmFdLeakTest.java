package dev.ferry.core.cpu.kvm;

import dev.ferry.core.cpu.kvm.bindings.KvmExit;
import dev.ferry.core.cpu.kvm.bindings.KvmRegs;
import dev.ferry.core.cpu.kvm.ioctls.Kvm;
import dev.ferry.core.cpu.kvm.ioctls.KvmVcpu;
import dev.ferry.core.cpu.kvm.ioctls.KvmVm;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.testing.FdLeakCheck;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Every /dev/kvm, VM and vCPU fd (and kvm_run mapping) is closed exactly once. */
class KvmFdLeakTest {
    @BeforeAll
    static void requireKvm() {
        KvmTesting.assumeKvm();
    }

    @Test
    void creatingAndClosingVmsAndVcpusTenTimesLeavesNoFd() {
        cycle();
        FdLeakCheck check = FdLeakCheck.start();
        int before = FdLeakCheck.openFdCount();
        for (int i = 0; i < 10; i++) {
            cycle();
        }
        Kvm.available();
        assertEquals(before, FdLeakCheck.openFdCount(), "open fds before and after 10 VM lifecycles");
        check.assertNoLeaks();
    }

    @Test
    void closingTwiceIsHarmlessAndUseAfterCloseIsAnErrorNotACrash() {
        Kvm kvm = Kvm.open();
        KvmVm vm = kvm.createVm();
        KvmVcpu vcpu = vm.createVcpu(0);
        vcpu.close();
        vcpu.close();
        vm.close();
        vm.close();
        kvm.close();
        kvm.close();
        try (KvmRegs regs = new KvmRegs()) {
            assertThrows(IllegalStateException.class, () -> vcpu.getRegs(regs));
            assertThrows(IllegalStateException.class, vcpu::run);
            assertThrows(IllegalStateException.class, () -> vcpu.kvmRun().exitReason());
            assertThrows(IllegalStateException.class, () -> vm.createVcpu(1));
            assertThrows(IllegalStateException.class, () -> vm.setIdentityMapAddr(0xfeffc000L));
            assertThrows(IllegalStateException.class, () -> kvm.checkExtension(0));
        }
    }

    /** /dev/kvm, a VM with a slot and an irqchip, two vCPUs, one of them running guest code; all closed. */
    private static void cycle() {
        try (GuestMemory mem = GuestMemory.ofSize(X86Guest.RAM_SIZE); Kvm kvm = Kvm.open();
             KvmVm vm = kvm.createVm()) {
            vm.setUserMemoryRegion(0, 0, mem.regions().get(0));
            try (KvmVcpu a = vm.createVcpu(0); KvmVcpu b = vm.createVcpu(1)) {
                X86Guest.enterLongMode(kvm, a, mem, X86Guest.LONG_MODE_STORE_OUT_HLT);
                assertEquals(KvmExit.KVM_EXIT_IO, a.run(), a::dumpRegisters);
                b.dumpRegisters();
            }
        }
    }
}
