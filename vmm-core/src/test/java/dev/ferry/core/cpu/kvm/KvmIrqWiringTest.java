package dev.ferry.core.cpu.kvm;

import dev.ferry.core.cpu.kvm.bindings.KvmCaps;
import dev.ferry.core.cpu.kvm.bindings.KvmConstants;
import dev.ferry.core.cpu.kvm.bindings.KvmIrqRouting;
import dev.ferry.core.cpu.kvm.bindings.KvmIrqchip;
import dev.ferry.core.cpu.kvm.bindings.KvmPitState2;
import dev.ferry.core.cpu.kvm.ioctls.Kvm;
import dev.ferry.core.cpu.kvm.ioctls.KvmVm;
import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.EventFd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeCallException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The interrupt-wiring ioctls against the real /dev/kvm, with no vCPU running so nothing consumes
 * a raised line: KVM_IRQ_LINE and KVM_IRQFD seen in the in-kernel IOAPIC and PIC through
 * KVM_GET_IRQCHIP, KVM_SET_IRQCHIP read back, KVM_IOEVENTFD's duplicate rule (EEXIST),
 * KVM_SET_GSI_ROUTING and the PIT.
 *
 * <p><b>Not yet run on a KVM host.</b> It was written on a machine without /dev/kvm, where it
 * skips (see {@link KvmTesting}); the ioctl numbers and struct layouts it relies on are checked
 * against the headers by {@code KvmHeaderProbeTest}, but the kernel behaviour each test expects
 * is read from KVM's source (virt/kvm/eventfd.c, arch/x86/kvm/ioapic.c, i8259.c), not observed.
 *
 * <p>Why the IOAPIC test uses a resampling irqfd: a plain irqfd pulses its GSI (assert, then
 * deassert at once), so a masked IOAPIC pin's IRR is back to 0 by the time anyone reads it. A
 * resampling irqfd holds the line asserted until the guest EOIs it, which with no vCPU is never.
 * The plain irqfd is observed on the PIC instead, whose edge latch keeps IRR set until a CPU
 * acknowledges the interrupt. irqfd injection runs on a kernel work queue, so those tests poll.
 */
class KvmIrqWiringTest {
    private static final int GSI = 5;
    private static final long DOORBELL = 0xd000_0000L;

    @BeforeAll
    static void requireKvm() {
        KvmTesting.assumeKvm();
    }

    @Test
    void irqLineRaisesAndLowersTheIoapicPin() {
        try (Kvm kvm = Kvm.open(); KvmVm vm = kvm.createVm(); KvmIrqchip ioapic = new KvmIrqchip()) {
            vm.createIrqchip();
            assertEquals(0, ioapicIrr(vm, ioapic) & 1 << GSI, "pin 5 idle after KVM_CREATE_IRQCHIP");
            vm.irqLine(GSI, true);
            assertEquals(1 << GSI, ioapicIrr(vm, ioapic) & 1 << GSI, "KVM_IRQ_LINE level 1 sets IRR bit 5");
            assertTrue(ioapic.ioapicMasked(GSI), "no guest has unmasked the pin, so it stays pending");
            vm.irqLine(GSI, false);
            assertEquals(0, ioapicIrr(vm, ioapic) & 1 << GSI, "level 0 clears it");
        }
    }

    @Test
    void resamplingIrqfdHoldsTheIoapicPinUntilDeassigned() throws Exception {
        try (Kvm kvm = Kvm.open(); KvmVm vm = kvm.createVm(); KvmIrqchip ioapic = new KvmIrqchip();
             EventFd trigger = new EventFd(Linux.EFD_NONBLOCK); EventFd resample = new EventFd(Linux.EFD_NONBLOCK)) {
            assumeTrue(vm.checkExtension(KvmCaps.KVM_CAP_IRQFD_RESAMPLE) > 0, "KVM_CAP_IRQFD_RESAMPLE missing");
            vm.createIrqchip();
            vm.irqfd(trigger.fd(), GSI, resample.fd());
            assertEquals(0, ioapicIrr(vm, ioapic) & 1 << GSI, "nothing raised before the eventfd is written");
            trigger.signal();
            awaitTrue(() -> (ioapicIrr(vm, ioapic) & 1 << GSI) != 0, "IOAPIC IRR bit 5 after signalling the irqfd");
            assertFalse(ioapic.ioapicRemoteIrr(GSI), "masked pin: never delivered, so no remote IRR");
            vm.irqfdDeassign(trigger.fd(), GSI);
            awaitTrue(() -> (ioapicIrr(vm, ioapic) & 1 << GSI) == 0, "the resampler lowers the line on deassign");
        }
    }

    @Test
    void plainIrqfdLatchesAnEdgeInThePicWithoutAnyExit() throws Exception {
        try (Kvm kvm = Kvm.open(); KvmVm vm = kvm.createVm();
             KvmIrqchip pic = KvmIrqchip.of(KvmConstants.KVM_IRQCHIP_PIC_MASTER);
             EventFd trigger = new EventFd(Linux.EFD_NONBLOCK)) {
            assumeTrue(vm.checkExtension(KvmCaps.KVM_CAP_IRQFD) > 0, "KVM_CAP_IRQFD missing");
            vm.createIrqchip();
            vm.irqfd(trigger.fd(), GSI, null);
            trigger.signal();
            awaitTrue(() -> {
                vm.getIrqchip(KvmConstants.KVM_IRQCHIP_PIC_MASTER, pic);
                return (pic.picIrr() & 1 << GSI) != 0;
            }, "PIC master IRR bit 5 after signalling the irqfd");
            vm.irqfdDeassign(trigger.fd(), GSI);
            vm.irqfd(trigger.fd(), GSI, null); // free again after the deassign (a live duplicate is EBUSY)
            NativeCallException dup = assertThrows(NativeCallException.class,
                    () -> vm.irqfd(trigger.fd(), GSI, null));
            assertEquals(Errno.EBUSY, dup.errno(), dup.getMessage());
            assertTrue(dup.getMessage().contains("KVM_IRQFD"), dup.getMessage());
            vm.irqfdDeassign(trigger.fd(), GSI);
        }
    }

    @Test
    void setIrqchipLoadsWhatGetIrqchipReadsBack() {
        try (Kvm kvm = Kvm.open(); KvmVm vm = kvm.createVm(); KvmIrqchip ioapic = new KvmIrqchip()) {
            vm.createIrqchip();
            vm.getIrqchip(KvmConstants.KVM_IRQCHIP_IOAPIC, ioapic);
            long entry = ioapic.ioapicRedirection(GSI) & ~0xffL | 0x35;
            ioapic.setIoapicRedirection(GSI, entry);
            vm.setIrqchip(ioapic);
            ioapic.clear();
            vm.getIrqchip(KvmConstants.KVM_IRQCHIP_IOAPIC, ioapic);
            assertEquals(entry, ioapic.ioapicRedirection(GSI));
        }
    }

    @Test
    void ioeventfdRefusesADuplicateRegistrationWithEexist() {
        try (Kvm kvm = Kvm.open(); KvmVm vm = kvm.createVm(); EventFd doorbell = new EventFd(Linux.EFD_NONBLOCK)) {
            assumeTrue(vm.checkExtension(KvmCaps.KVM_CAP_IOEVENTFD) > 0, "KVM_CAP_IOEVENTFD missing");
            vm.ioeventfd(DOORBELL, 4, null, doorbell.fd());
            NativeCallException dup = assertThrows(NativeCallException.class,
                    () -> vm.ioeventfd(DOORBELL, 4, null, doorbell.fd()));
            assertEquals(Errno.EEXIST, dup.errno(), dup.getMessage());
            assertTrue(dup.getMessage().contains("KVM_IOEVENTFD"), dup.getMessage());
            vm.ioeventfdDeassign(DOORBELL, 4, null, doorbell.fd());
            vm.ioeventfd(DOORBELL, 4, null, doorbell.fd()); // free again after the deassign

            vm.ioeventfd(DOORBELL + 0x100, 2, 1L, doorbell.fd());
            vm.ioeventfd(DOORBELL + 0x100, 2, 2L, doorbell.fd()); // another datamatch: no collision
            NativeCallException same = assertThrows(NativeCallException.class,
                    () -> vm.ioeventfd(DOORBELL + 0x100, 2, 1L, doorbell.fd()));
            assertEquals(Errno.EEXIST, same.errno(), same.getMessage());
            assertThrows(IllegalArgumentException.class, () -> vm.ioeventfd(DOORBELL, 3, null, doorbell.fd()));
            assertThrows(IllegalArgumentException.class, () -> vm.ioeventfd(DOORBELL, 0, 1L, doorbell.fd()));
        }
    }

    @Test
    void gsiRoutingReplacesTheDefaultTable() {
        try (Kvm kvm = Kvm.open(); KvmVm vm = kvm.createVm(); KvmIrqchip ioapic = new KvmIrqchip();
             KvmIrqRouting routing = new KvmIrqRouting(KvmIrqchip.IOAPIC_NUM_PINS)) {
            assumeTrue(vm.checkExtension(KvmCaps.KVM_CAP_IRQ_ROUTING) > 0, "KVM_CAP_IRQ_ROUTING missing");
            vm.createIrqchip();
            // GSI n → IOAPIC pin (23 - n): a table unlike the default, so the pin that moves proves it applied.
            for (int gsi = 0; gsi < KvmIrqchip.IOAPIC_NUM_PINS; gsi++) {
                routing.setIrqchip(gsi, gsi, KvmConstants.KVM_IRQCHIP_IOAPIC, KvmIrqchip.IOAPIC_NUM_PINS - 1 - gsi);
            }
            routing.setNr(KvmIrqchip.IOAPIC_NUM_PINS);
            vm.setGsiRouting(routing);
            vm.irqLine(GSI, true);
            int irr = ioapicIrr(vm, ioapic);
            assertEquals(1 << 18, irr & (1 << 18 | 1 << GSI), "GSI 5 now reaches pin 18, not pin 5");
            vm.irqLine(GSI, false);
        }
    }

    @Test
    void pit2StateReadsAndLoadsBack() {
        try (Kvm kvm = Kvm.open(); KvmVm vm = kvm.createVm(); KvmPitState2 pit = new KvmPitState2()) {
            assumeTrue(vm.checkExtension(KvmCaps.KVM_CAP_PIT2) > 0, "KVM_CAP_PIT2 missing");
            vm.createIrqchip();
            vm.createPit2();
            vm.getPit2(pit);
            pit.setFlags(0);
            vm.setPit2(pit);
            vm.getPit2(pit);
            assertEquals(0, pit.flags());
            NativeCallException again = assertThrows(NativeCallException.class, vm::createPit2, "one PIT per VM");
            assertEquals(Errno.EEXIST, again.errno(), again.getMessage());
        }
    }

    private static int ioapicIrr(KvmVm vm, KvmIrqchip ioapic) {
        vm.getIrqchip(KvmConstants.KVM_IRQCHIP_IOAPIC, ioapic);
        return ioapic.ioapicIrr();
    }

    /** Polls {@code condition} (irqfd work runs on a kernel work queue) for up to 5 s. */
    private static void awaitTrue(BooleanSupplier condition, String what) throws InterruptedException {
        for (int i = 0; i < 500; i++) {
            if (condition.getAsBoolean()) {
                return;
            }
            Thread.sleep(10);
        }
        throw new AssertionError(what + ": not seen within 5 s");
    }
}
