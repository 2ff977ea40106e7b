package dev.ferry.core.cpu.kvm;

import dev.ferry.core.cpu.kvm.bindings.KvmExit;
import dev.ferry.core.cpu.kvm.bindings.KvmRegs;
import dev.ferry.core.cpu.kvm.ioctls.Kvm;
import dev.ferry.core.cpu.kvm.ioctls.KvmVcpu;
import dev.ferry.core.cpu.kvm.ioctls.KvmVm;
import dev.ferry.core.memory.GuestMemory;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link KvmVcpu#kick()} gets a vCPU out of a guest that never exits on its own ({@code jmp $}),
 * the way a pause request must, and a kick that lands before KVM_RUN is not lost.
 */
class KvmKickTest {
    /** {@code 1: jmp 1b} — spins forever without an exit. */
    private static final byte[] SPIN = X86Guest.bytes(0xeb, 0xfe);

    @BeforeAll
    static void requireKvm() {
        KvmTesting.assumeKvm();
    }

    @Test
    void kickInterruptsAGuestThatNeverExits() throws Exception {
        ExecutorService vcpuThread = Executors.newSingleThreadExecutor();
        try (GuestMemory mem = GuestMemory.ofSize(X86Guest.RAM_SIZE); Kvm kvm = Kvm.open(); KvmVm vm = kvm.createVm();
             KvmVcpu vcpu = vm.createVcpu(0); KvmRegs regs = new KvmRegs()) {
            vm.setUserMemoryRegion(0, 0, mem.regions().get(0));
            X86Guest.enterLongMode(kvm, vcpu, mem, SPIN);
            AtomicBoolean pauseRequested = new AtomicBoolean();
            CountDownLatch entering = new CountDownLatch(1);
            Future<Integer> loop = vcpuThread.submit(() -> {
                vcpu.bindThread();
                int runs = 0;
                while (!pauseRequested.get()) {
                    entering.countDown();
                    int exit = vcpu.run();
                    runs++;
                    if (exit != KvmVcpu.RUN_INTERRUPTED) {
                        throw new AssertionError("unexpected " + KvmExit.name(exit) + "\n" + vcpu.dumpRegisters());
                    }
                }
                return runs;
            });
            assertTrue(entering.await(10, TimeUnit.SECONDS));
            Thread.sleep(20); // let it spin inside the guest
            assertFalse(loop.isDone(), "the guest spins until kicked");
            long t0 = System.nanoTime();
            pauseRequested.set(true);
            vcpu.kick();
            int runs = loop.get(10, TimeUnit.SECONDS);
            long t1 = System.nanoTime();
            assertFalse(vcpu.kvmRun().immediateExit(), "run() clears immediate_exit when it returns interrupted");
            vcpu.getRegs(regs);
            assertEquals(X86Guest.CODE, regs.rip(), "stopped on the jmp");
            System.out.printf("kick: vCPU out of KVM_RUN %d us after the kick (%d run call(s))%n", (t1 - t0) / 1000,
                    runs);
        } finally {
            vcpuThread.shutdownNow();
        }
    }

    @Test
    void kickBeforeRunMakesTheNextRunReturnAtOnce() {
        try (GuestMemory mem = GuestMemory.ofSize(X86Guest.RAM_SIZE); Kvm kvm = Kvm.open(); KvmVm vm = kvm.createVm();
             KvmVcpu vcpu = vm.createVcpu(0)) {
            vm.setUserMemoryRegion(0, 0, mem.regions().get(0));
            X86Guest.enterLongMode(kvm, vcpu, mem, SPIN);
            vcpu.kick(); // unbound: only immediate_exit
            assertEquals(KvmVcpu.RUN_INTERRUPTED, vcpu.run());
            vcpu.bindThread();
            vcpu.kick(); // bound to this very thread: the signal is handled before KVM_RUN
            assertEquals(KvmVcpu.RUN_INTERRUPTED, vcpu.run());
        }
    }
}
