package dev.ferry.core.cpu.kvm;

import dev.ferry.core.cpu.kvm.bindings.KvmRegs;
import dev.ferry.core.cpu.kvm.bindings.KvmSregs;
import dev.ferry.core.cpu.kvm.ioctls.KvmVcpu;
import dev.ferry.core.machine.BusDevice;
import dev.ferry.core.machine.IoBus;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The engine's run loop: exits reach the buses, a halted vCPU still pauses, a fatal exit is reported. */
@Timeout(60)
class KvmCpuEngineTest {
    @BeforeAll
    static void needKvm() {
        KvmTesting.assumeKvm();
    }

    static final class Recorder implements BusDevice {
        final List<String> log = new CopyOnWriteArrayList<>();
        final long answer;

        Recorder(long answer) {
            this.answer = answer;
        }

        @Override
        public long read(long offset, int size) {
            log.add("r " + offset + "/" + size);
            return answer;
        }

        @Override
        public void write(long offset, int size, long value) {
            log.add("w " + offset + "/" + size + "=0x" + Long.toHexString(value));
        }
    }

    private static void longMode(KvmCpuEngine engine, GuestMemory mem, byte[] program) {
        X86Guest.writePageTablesAndGdt(mem);
        mem.write(Gpa.of(X86Guest.CODE), program, 0, program.length);
        KvmVcpu v = engine.vcpu(0);
        try (KvmSregs sregs = new KvmSregs(); KvmRegs regs = new KvmRegs()) {
            v.getSregs(sregs);
            X86Guest.setLongModeSregs(sregs);
            v.setSregs(sregs);
            regs.setRip(X86Guest.CODE);
            regs.setRsp(X86Guest.STACK_TOP);
            regs.setRflags(X86Guest.RFLAGS_RESERVED);
            v.setRegs(regs);
        }
    }

    private static void awaitTrue(java.util.function.BooleanSupplier c, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (!c.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "timed out waiting for " + what);
            Thread.sleep(5);
        }
    }

    @Test
    void mmioAndPortExitsReachTheBusesAndAHaltedVcpuStillPauses() throws Exception {
        IoBus pio = new IoBus("pio");
        IoBus mmio = new IoBus("mmio");
        Recorder bar = new Recorder(0x1122334455667788L);
        Recorder port = new Recorder(0);
        mmio.register("bar0", X86Guest.MMIO_BASE, 0x1000, bar);
        pio.register("port10", 0x10, 1, port);
        try (GuestMemory mem = GuestMemory.ofSize(X86Guest.RAM_SIZE);
             KvmCpuEngine engine = new KvmCpuEngine(mem, 1, pio, mmio)) {
            longMode(engine, mem, X86Guest.LONG_MODE_MMIO);
            engine.resume();
            awaitTrue(() -> !port.log.isEmpty(), "the OUT");
            assertEquals(List.of("w 16/8=0x102030405060708", "r 32/8"), bar.log);
            assertEquals(List.of("w 0/4=0x55667788"), port.log, "the MMIO read's value came back to the guest");
            awaitTrue(() -> engine.exits() >= 4, "the HLT");
            engine.pause(); // returns although the vCPU is halted
            assertTrue(engine.failure() == null);
        }
    }

    @Test
    void aTripleFaultStopsTheVcpuWithARegisterDump() throws Exception {
        IoBus pio = new IoBus("pio");
        IoBus mmio = new IoBus("mmio");
        try (GuestMemory mem = GuestMemory.ofSize(X86Guest.RAM_SIZE);
             KvmCpuEngine engine = new KvmCpuEngine(mem, 1, pio, mmio)) {
            longMode(engine, mem, X86Guest.bytes(0x0f, 0x0b)); // ud2, and no IDT: a triple fault
            engine.resume();
            awaitTrue(() -> engine.failure() != null, "the failure");
            String m = engine.failure().getMessage();
            assertTrue(m.contains("KVM_EXIT_SHUTDOWN") && m.contains("rip=0000000000001000"), m);
            engine.pause(); // does not hang on a dead vCPU
            IllegalStateException e = assertThrows(IllegalStateException.class, engine::resume);
            assertTrue(e.getMessage().contains("cannot resume"), e.getMessage());
        }
    }
}
