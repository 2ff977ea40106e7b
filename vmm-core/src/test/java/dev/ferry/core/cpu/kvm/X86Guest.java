package dev.ferry.core.cpu.kvm;

import dev.ferry.core.cpu.kvm.bindings.KvmCpuid2;
import dev.ferry.core.cpu.kvm.bindings.KvmRegs;
import dev.ferry.core.cpu.kvm.bindings.KvmSegment;
import dev.ferry.core.cpu.kvm.bindings.KvmSregs;
import dev.ferry.core.cpu.kvm.ioctls.Kvm;
import dev.ferry.core.cpu.kvm.ioctls.KvmVcpu;
import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;

/**
 * Tiny hand-assembled guests and the vCPU setup they need, for the KVM tests. Guest-physical
 * layout in a 2 MiB RAM region:
 * <pre>
 *  0x0500 GDT: 0x00 null, 0x08 code64, 0x10 data, 0x18 TSS (16 bytes)
 *  0x1000 code
 *  0x2000 PML4   0x3000 PDPT   0x4000 PD (2 MiB pages: PD[0] = RAM, PD[1] = 2..4 MiB, no RAM = MMIO)
 *  0x5000 data the long-mode program writes   0x6000 the dirty program's table   0x8000 stack top
 * </pre>
 * Page-table entries are created with Accessed and Dirty already set, so the CPU's walker writes
 * nothing and the dirty log shows only the program's own stores.
 */
final class X86Guest {
    static final long RAM_SIZE = 2L << 20;
    static final long GDT = 0x500;
    static final long CODE = 0x1000;
    static final long PML4 = 0x2000;
    static final long PDPT = 0x3000;
    static final long PD = 0x4000;
    static final long DATA = 0x5000;
    static final long TABLE = 0x6000;
    static final long STACK_TOP = 0x8000;
    static final long MMIO_BASE = 0x200000;

    static final long CR0_PE = 1L;
    static final long CR0_MP = 1L << 1;
    static final long CR0_ET = 1L << 4;
    static final long CR0_NE = 1L << 5;
    static final long CR0_WP = 1L << 16;
    static final long CR0_PG = 1L << 31;
    static final long CR4_PAE = 1L << 5;
    static final long CR4_OSFXSR = 1L << 9;
    static final long CR4_OSXMMEXCPT = 1L << 10;
    static final long EFER_LME = 1L << 8;
    static final long EFER_LMA = 1L << 10;
    static final long RFLAGS_RESERVED = 1L << 1;

    /** {@code mov al, 0x42; out 0x10, al; hlt} (16-bit). */
    static final byte[] REAL_MODE_OUT_HLT = bytes(0xb0, 0x42, 0xe6, 0x10, 0xf4);

    /**
     * {@code movabs rax, 0x1122334455667788; mov [0x5000], rax; out 0x10, eax; hlt}: the OUT at
     * +0x12, the HLT at +0x14.
     */
    static final byte[] LONG_MODE_STORE_OUT_HLT = bytes(0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
            0x48, 0x89, 0x04, 0x25, 0x00, 0x50, 0x00, 0x00, 0xe7, 0x10, 0xf4);
    static final int LONG_MODE_OUT_AT = 0x12;

    /**
     * {@code movabs rax, 0x0102030405060708; mov [0x200010], rax; mov rbx, [0x200020];
     * mov rax, rbx; out 0x10, eax; hlt}: an MMIO write, an MMIO read, then the read value out.
     */
    static final byte[] LONG_MODE_MMIO = bytes(0x48, 0xb8, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
            0x48, 0x89, 0x04, 0x25, 0x10, 0x00, 0x20, 0x00, 0x48, 0x8b, 0x1c, 0x25, 0x20, 0x00, 0x20, 0x00,
            0x48, 0x89, 0xd8, 0xe7, 0x10, 0xf4);

    /**
     * Writes the remaining count to each address of the table at 0x6000 ({@code u64 count,
     * u64 addr[count]}), then {@code out 0x10, al; hlt; jmp start} — so each KVM_RUN after the HLT
     * exit runs the table again.
     * <pre>
     * start: mov esi, 0x6000; mov rcx, [rsi]; add rsi, 8
     * 1:     test rcx, rcx; jz 2f; mov rdi, [rsi]; mov [rdi], rcx; add rsi, 8; dec rcx; jmp 1b
     * 2:     out 0x10, al; hlt; jmp start
     * </pre>
     */
    static final byte[] LONG_MODE_WRITE_TABLE = bytes(0xbe, 0x00, 0x60, 0x00, 0x00, 0x48, 0x8b, 0x0e, 0x48, 0x83,
            0xc6, 0x08, 0x48, 0x85, 0xc9, 0x74, 0x0f, 0x48, 0x8b, 0x3e, 0x48, 0x89, 0x0f, 0x48, 0x83, 0xc6, 0x08,
            0x48, 0xff, 0xc9, 0xeb, 0xec, 0xe6, 0x10, 0xf4, 0xeb, 0xdb);

    private X86Guest() {
    }

    static byte[] bytes(int... v) {
        byte[] b = new byte[v.length];
        for (int i = 0; i < v.length; i++) {
            b[i] = (byte) v[i];
        }
        return b;
    }

    /** Real mode at {@code 0000:1000}: CS base and selector 0, RIP 0x1000, RFLAGS reset value. */
    static void enterRealMode(KvmVcpu vcpu, GuestMemory mem, byte[] program) {
        mem.write(Gpa.of(CODE), program, 0, program.length);
        try (KvmSregs sregs = new KvmSregs(); KvmRegs regs = new KvmRegs()) {
            vcpu.getSregs(sregs);
            sregs.cs().setBase(0);
            sregs.cs().setSelector(0);
            vcpu.setSregs(sregs);
            regs.setRip(CODE);
            regs.setRflags(RFLAGS_RESERVED);
            vcpu.setRegs(regs);
        }
    }

    /**
     * 64-bit long mode at RIP 0x1000: page tables and a GDT in guest memory, CPUID from
     * KVM_GET_SUPPORTED_CPUID, and the same segments set directly with KVM_SET_SREGS.
     */
    static void enterLongMode(Kvm kvm, KvmVcpu vcpu, GuestMemory mem, byte[] program) {
        writePageTablesAndGdt(mem);
        mem.write(Gpa.of(CODE), program, 0, program.length);
        try (KvmCpuid2 cpuid = kvm.supportedCpuid()) {
            vcpu.setCpuid2(cpuid);
        }
        try (KvmSregs sregs = new KvmSregs(); KvmRegs regs = new KvmRegs()) {
            vcpu.getSregs(sregs);
            setLongModeSregs(sregs);
            vcpu.setSregs(sregs);
            regs.setRip(CODE);
            regs.setRsp(STACK_TOP);
            regs.setRflags(RFLAGS_RESERVED);
            vcpu.setRegs(regs);
        }
    }

    static void writePageTablesAndGdt(GuestMemory mem) {
        long present = 1, writable = 2, accessed = 0x20, dirty = 0x40, large = 0x80;
        mem.writeLong(Gpa.of(PML4), PDPT | present | writable | accessed);
        mem.writeLong(Gpa.of(PDPT), PD | present | writable | accessed);
        mem.writeLong(Gpa.of(PD), 0 | present | writable | accessed | dirty | large);
        mem.writeLong(Gpa.of(PD + 8), MMIO_BASE | present | writable | accessed | dirty | large);
        mem.writeLong(Gpa.of(GDT), 0);
        mem.writeLong(Gpa.of(GDT + 0x08), 0x00af9b000000ffffL); // code: G, L, P, S, type 11
        mem.writeLong(Gpa.of(GDT + 0x10), 0x00cf93000000ffffL); // data: G, D/B, P, S, type 3
        mem.writeLong(Gpa.of(GDT + 0x18), 0x00008b0000000067L); // TSS: P, type 11 (busy), limit 0x67
        mem.writeLong(Gpa.of(GDT + 0x20), 0);
    }

    static void setLongModeSregs(KvmSregs sregs) {
        sregs.cs().set(0, 0xffffffffL, 0x08, 11, true, false, true, true);
        for (KvmSegment data : new KvmSegment[] {sregs.ds(), sregs.es(), sregs.fs(), sregs.gs(), sregs.ss()}) {
            data.set(0, 0xffffffffL, 0x10, 3, true, true, false, true);
        }
        sregs.tr().set(0, 0x67, 0x18, 11, false, false, false, false);
        sregs.ldt().set(0, 0, 0, 2, false, false, false, false);
        sregs.ldt().setUnusable(true);
        sregs.ldt().setPresent(false);
        sregs.gdt().setBase(GDT);
        sregs.gdt().setLimit(5 * 8 - 1);
        sregs.idt().setBase(0);
        sregs.idt().setLimit(0);
        sregs.setCr0(CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG);
        sregs.setCr3(PML4);
        sregs.setCr4(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT);
        sregs.setEfer(EFER_LME | EFER_LMA);
    }
}
