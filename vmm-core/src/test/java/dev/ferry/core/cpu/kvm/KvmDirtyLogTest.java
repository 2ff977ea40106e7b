package dev.ferry.core.cpu.kvm;

import dev.ferry.core.cpu.kvm.bindings.KvmConstants;
import dev.ferry.core.cpu.kvm.bindings.KvmExit;
import dev.ferry.core.cpu.kvm.ioctls.Kvm;
import dev.ferry.core.cpu.kvm.ioctls.KvmVcpu;
import dev.ferry.core.cpu.kvm.ioctls.KvmVm;
import dev.ferry.core.memory.DirtyBitmap;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * KVM's slot dirty log against a guest whose writes we choose: KVM_GET_DIRTY_LOG straight into a
 * {@link DirtyBitmap}, with KVM's own get-and-clear and with manual protect + KVM_CLEAR_DIRTY_LOG.
 * The guest program ({@link X86Guest#LONG_MODE_WRITE_TABLE}) writes one u64 into each page listed
 * in its table, then OUT and HLT; the next KVM_RUN runs the table again.
 */
class KvmDirtyLogTest {
    private static final int SLOT = 0;
    /**
     * Pages that may show up besides the written ones: the GDT page (0), code (1), page tables
     * (2..4) and stack (7), should the host's MMU set accessed bits or the like. Reported, not
     * required; written pages must always be there.
     */
    private static final Set<Long> INCIDENTAL = Set.of(0L, 1L, 2L, 3L, 4L, 7L);

    @BeforeAll
    static void requireKvm() {
        KvmTesting.assumeKvm();
    }

    @Test
    void getDirtyLogReportsTheGuestsWritesOnceAndReprotects() {
        try (GuestMemory mem = GuestMemory.ofSize(X86Guest.RAM_SIZE); Kvm kvm = Kvm.open();
             KvmVm vm = kvm.createVm(); DirtyBitmap log = new DirtyBitmap(X86Guest.RAM_SIZE >>> 12)) {
            vm.setUserMemoryRegion(SLOT, KvmConstants.KVM_MEM_LOG_DIRTY_PAGES, mem.regions().get(0));
            try (KvmVcpu vcpu = vm.createVcpu(0)) {
                X86Guest.enterLongMode(kvm, vcpu, mem, X86Guest.LONG_MODE_WRITE_TABLE);
                vm.getDirtyLog(SLOT, log);
                assertEquals(Set.of(), pages(log), "the VMM's own writes (program, tables) never reach KVM's log");

                Set<Long> first = writeTable(mem, 0x10, 0x23, 0x1f0, 0x7a);
                runToHlt(vcpu);
                long t0 = System.nanoTime();
                vm.getDirtyLog(SLOT, log);
                long t1 = System.nanoTime();
                assertWritten(first, pages(log));

                vm.getDirtyLog(SLOT, log);
                assertEquals(Set.of(), pages(log), "a second KVM_GET_DIRTY_LOG without guest writes reports nothing");

                Set<Long> second = writeTable(mem, 0x23, 0x100, 0x1ff);
                runToHlt(vcpu);
                vm.getDirtyLog(SLOT, log);
                assertWritten(second, pages(log));
                System.out.printf("dirty log: first pass %s, KVM_GET_DIRTY_LOG of 512 pages took %d us%n", first,
                        (t1 - t0) / 1000);
            }
        }
    }

    @Test
    void manualProtectReportsUntilClearedAndClearRearms() {
        try (GuestMemory mem = GuestMemory.ofSize(X86Guest.RAM_SIZE); Kvm kvm = Kvm.open();
             KvmVm vm = kvm.createVm(); DirtyBitmap log = new DirtyBitmap(X86Guest.RAM_SIZE >>> 12);
             DirtyBitmap clear = new DirtyBitmap(X86Guest.RAM_SIZE >>> 12)) {
            assumeTrue(vm.manualDirtyLogProtectAvailable(),
                    "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 is not offered by this host's KVM");
            vm.enableManualDirtyLogProtect();
            vm.setUserMemoryRegion(SLOT, KvmConstants.KVM_MEM_LOG_DIRTY_PAGES, mem.regions().get(0));
            try (KvmVcpu vcpu = vm.createVcpu(0)) {
                X86Guest.enterLongMode(kvm, vcpu, mem, X86Guest.LONG_MODE_WRITE_TABLE);
                Set<Long> written = writeTable(mem, 0x10, 0x23, 0x1f0);
                runToHlt(vcpu);

                vm.getDirtyLog(SLOT, log);
                Set<Long> reported = pages(log);
                assertWritten(written, reported);
                vm.getDirtyLog(SLOT, log);
                assertEquals(reported, pages(log), "with manual protect, GET does not clear");

                clear.set(0x23);
                vm.clearDirtyLog(SLOT, clear);
                vm.getDirtyLog(SLOT, log);
                Set<Long> rest = new TreeSet<>(reported);
                rest.remove(0x23L);
                assertEquals(rest, pages(log), "CLEAR of page 0x23 only");

                vm.clearDirtyLog(SLOT, 0, 512, log.address()); // everything GET just reported
                vm.getDirtyLog(SLOT, log);
                assertEquals(Set.of(), pages(log), "after clearing all reported pages");

                Set<Long> again = writeTable(mem, 0x23, 0x1f0, 0x100);
                runToHlt(vcpu);
                vm.getDirtyLog(SLOT, log);
                assertWritten(again, pages(log));

                assertThrows(IllegalArgumentException.class, () -> vm.clearDirtyLog(SLOT, 1, 64, log.address()),
                        "first_page must be a multiple of 64");
                assertThrows(IllegalArgumentException.class, () -> vm.clearDirtyLog(SLOT, 0, 65, log.address()),
                        "num_pages must be a multiple of 64 unless it ends the slot");
                vm.clearDirtyLog(SLOT, 448, 64, log.address() + 7 * 8); // the slot's last 64 pages, word 7
            }
        }
    }

    @Test
    void badArgumentsAreRefusedBeforeKvmSeesThem() {
        try (GuestMemory mem = GuestMemory.ofSize(X86Guest.RAM_SIZE); Kvm kvm = Kvm.open();
             KvmVm vm = kvm.createVm(); DirtyBitmap small = new DirtyBitmap(64)) {
            vm.setUserMemoryRegion(SLOT, KvmConstants.KVM_MEM_LOG_DIRTY_PAGES, mem.regions().get(0));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> vm.getDirtyLog(SLOT, small));
            assertTrue(e.getMessage().contains("512 pages"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> vm.getDirtyLog(5, small), "no slot 5");
            assertThrows(IllegalStateException.class, () -> vm.clearDirtyLog(SLOT, 0, 512, small.address()),
                    "KVM_CLEAR_DIRTY_LOG before enabling manual protect");
        }
    }

    /** Writes the program's table: count, then one address inside each of {@code pages}. */
    private static Set<Long> writeTable(GuestMemory mem, long... pages) {
        mem.writeLong(Gpa.of(X86Guest.TABLE), pages.length);
        Set<Long> set = new TreeSet<>();
        for (int i = 0; i < pages.length; i++) {
            mem.writeLong(Gpa.of(X86Guest.TABLE + 8 + 8L * i), (pages[i] << 12) + 8 * i);
            set.add(pages[i]);
        }
        return set;
    }

    private static void runToHlt(KvmVcpu vcpu) {
        assertEquals(KvmExit.KVM_EXIT_IO, vcpu.run(), vcpu::dumpRegisters);
        assertEquals(KvmExit.KVM_EXIT_HLT, vcpu.run(), vcpu::dumpRegisters);
    }

    private static Set<Long> pages(DirtyBitmap b) {
        Set<Long> s = new TreeSet<>();
        for (long p = 0; p < b.pages(); p++) {
            if (b.get(p)) {
                s.add(p);
            }
        }
        return s;
    }

    private static void assertWritten(Set<Long> written, Set<Long> reported) {
        assertTrue(reported.containsAll(written), "written " + written + " but KVM reported " + reported);
        Set<Long> extra = new TreeSet<>(reported);
        extra.removeAll(written);
        assertTrue(INCIDENTAL.containsAll(extra), "KVM reported pages nobody wrote: " + extra);
        if (!extra.isEmpty()) {
            System.out.println("dirty log: incidental pages besides the written ones: " + extra);
        }
    }
}
