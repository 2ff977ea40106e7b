package dev.ferry.core.cpu.guest;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.GuestRegion;
import dev.ferry.core.memory.Gpa;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Where ferry-guest's pieces live in guest-physical memory, and the VMM's part of booting it.
 * The guest finds everything through fixed addresses (the same ones as in
 * {@code src/main/guest/ferry_guest.h}) and through an identity map, so a guest virtual address
 * equals its GPA:
 * <pre>
 * 0x000000 - 0x000fff  zero page            reserved, never written
 * 0x001000 - 0x001fff  boot parameters      VMM writes before the first run; guest reads ({@link GuestParams})
 * 0x002000 - 0x002fff  progress record      VMM zeroes at boot; then only the guest writes ({@link GuestProgress})
 * 0x003000 - 0x003fff  GDT                  null, kernel code64 0x08, kernel data 0x10, user code64 0x18
 *                                           (selector 0x1b), user data 0x20 (0x23), 64-bit TSS 0x28 (16 bytes)
 * 0x004000 - 0x004fff  TSS                  104 zero bytes (no I/O bitmap, no IST)
 * 0x008000 - 0x00ffff  stack                32 KiB; initial RSP 0x10000
 * 0x010000 - 0x051fff  page tables          PML4 0x10000, PDPT 0x11000, PD i at 0x12000 + i * 4 KiB
 *                                           (one per mapped GiB, at most 64); 2 MiB pages, U bit set
 *                                           ({@link PageTables})
 * 0x100000 - 0x1fffff  program image        header + code + data, zero-filled to its end ({@link GuestProgram})
 * 0x200000 -           working set          default base; anywhere from 2 MiB up, all RAM
 * </pre>
 * The first 2 MiB must be one RAM region. {@link #prepare} zeroes them, then writes the
 * parameters, GDT, TSS, page tables and image. It returns the CPU state the engine sets before
 * the first KVM_RUN ({@link GuestBootState}): long mode with paging, flat segments that match
 * the GDT, IOPL 3, no IDT.
 *
 * <p>The program runs in ring 3 by default ({@link GuestBootState.Ring#USER}). It needs no
 * privilege: IOPL 3 lets it OUT, and an OUT still exits to the VMM. Only its final halt differs:
 * in ring 3 it repeats its last status OUT instead of halting. Ring 3 is the default because on
 * a nested, page-table-based hypervisor ({@code kvm_pvm}, the /dev/kvm of Ferry's build
 * machines) ring-0 guest code is emulated one instruction at a time, while ring-3 code runs
 * natively. Measured there: about 100 steps (pages) per second in ring 0 against 1.7 million
 * (about 7 GB/s) in ring 3. On VMX/SVM hardware both rings run natively.
 *
 * <p>The guest executes no CPUID and needs no feature beyond long mode. The engine
 * should still pass KVM_GET_SUPPORTED_CPUID to KVM_SET_CPUID2, and must give the source and the
 * destination the same CPUID. A migrated vCPU resumes from its saved registers, not from this
 * state.
 *
 * <p>The VMM makes all of these writes before the guest runs, so neither KVM's dirty log nor the
 * write log needs to see them. A migration sends the whole of RAM in its first pass anyway.
 * Stateless.
 */
public final class GuestLayout {
    public static final long ZERO_PAGE_GPA = 0x0;
    public static final long BOOT_PARAMS_GPA = 0x1000;
    public static final long PROGRESS_GPA = 0x2000;
    public static final long GDT_GPA = 0x3000;
    public static final long TSS_GPA = 0x4000;
    public static final long STACK_BASE_GPA = 0x8000;
    /** The initial RSP: the stack grows down from here to {@link #STACK_BASE_GPA}. */
    public static final long STACK_TOP_GPA = 0x10000;
    /** CR3. */
    public static final long PML4_GPA = 0x10000;
    public static final long PDPT_GPA = 0x11000;
    /** Page directory i (mapping GiB i) is at {@code PD_GPA + i * 4096}. */
    public static final long PD_GPA = 0x12000;
    public static final int MAX_MAPPED_GIB = 64;
    /** Where byte 0 of the flat binary goes. */
    public static final long IMAGE_GPA = 0x100000;
    /** The image ends below this. */
    public static final long IMAGE_LIMIT_GPA = 0x200000;
    /** The lowest working-set base; the fixed layout lies below it. */
    public static final long WORKING_SET_MIN_GPA = IMAGE_LIMIT_GPA;

    /** The guest OUTs the low 32 bits of its counter here every pages-per-heartbeat steps. */
    public static final int HEARTBEAT_PORT = 0xF0;
    /** The guest OUTs a {@link GuestStatus} code here. */
    public static final int STATUS_PORT = 0xF1;

    public static final int KERNEL_CODE_SELECTOR = 0x08;
    public static final int KERNEL_DATA_SELECTOR = 0x10;
    /** GDT entry 3, RPL 3. */
    public static final int USER_CODE_SELECTOR = 0x1B;
    /** GDT entry 4, RPL 3. */
    public static final int USER_DATA_SELECTOR = 0x23;
    public static final int TSS_SELECTOR = 0x28;
    /** Null, kernel code and data, user code and data, and the two slots of the 64-bit TSS descriptor. */
    public static final int GDT_ENTRIES = 7;
    /** The TSS limit: a 104-byte 64-bit TSS without an I/O bitmap. */
    public static final int TSS_LIMIT = 0x67;

    /** PE | ET | NE | PG. */
    public static final long CR0 = 0x1L | 0x10L | 0x20L | 0x8000_0000L;
    /** PAE. */
    public static final long CR4 = 0x20L;
    /** LME | LMA. */
    public static final long EFER = 0x100L | 0x400L;
    /** IOPL 3 (so that OUT is allowed in ring 3) and the reserved bit 1. Interrupts stay off; the guest takes none. */
    public static final long RFLAGS = 0x3000L | 0x2L;

    private static final long GIB = 1L << 30;

    private GuestLayout() {
    }

    /** {@link #prepare(GuestMemory, GuestProgram, GuestParams, GuestBootState.Ring)} in ring 3. */
    public static GuestBootState prepare(GuestMemory memory, GuestProgram program, GuestParams params) {
        return prepare(memory, program, params, GuestBootState.Ring.USER);
    }

    /**
     * Sets up a fresh boot of {@code program} with {@code params}: zeroes the first 2 MiB,
     * writes the boot parameters, GDT and TSS, identity-maps all RAM (rounded up to a GiB, at
     * most {@value #MAX_MAPPED_GIB} GiB) and copies the image. The working set is not touched. On
     * a fresh memfd it is zero, and the verifier expects a page that no step wrote to be zero.
     *
     * @param ring the privilege the program runs with; {@link GuestBootState.Ring#USER} unless the
     *             host runs ring 0 natively and a real HLT is wanted after DONE
     * @return the vCPU state to set before the first KVM_RUN
     * @throws IllegalArgumentException when the first 2 MiB are not one RAM region, the working
     *                                  set is not RAM, or RAM needs more than 64 GiB of map
     *                                  to cover the working set
     */
    public static GuestBootState prepare(GuestMemory memory, GuestProgram program, GuestParams params,
                                         GuestBootState.Ring ring) {
        GuestRegion low;
        try {
            low = memory.regionFor(0, IMAGE_LIMIT_GPA);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("ferry-guest needs [0, 2 MiB) to be one RAM region for its boot "
                    + "structures and program; regions: " + memory.regions(), e);
        }
        requireRam(memory, params.workingSetBase(), params.workingSetEnd());
        long ramTop = 0;
        for (GuestRegion r : memory.regions()) {
            ramTop = Math.max(ramTop, r.gpaBase() + r.size());
        }
        long mapped = Math.min(roundUp(ramTop, GIB), MAX_MAPPED_GIB * GIB);
        if (params.workingSetEnd() > mapped) {
            throw new IllegalArgumentException("ferry-guest: working set ends at 0x"
                    + Long.toHexString(params.workingSetEnd()) + ", beyond the " + MAX_MAPPED_GIB
                    + " GiB the page tables can map (PDs must stay below the image)");
        }
        memory.fill(low.base(), IMAGE_LIMIT_GPA, (byte) 0);
        params.write(memory);
        writeGdt(memory);
        long cr3 = PageTables.identityMap2M(memory, PML4_GPA, mapped);
        program.copyInto(memory);
        return GuestBootState.longMode(ring, cr3, program.entryRip(), STACK_TOP_GPA);
    }

    /** Writes the GDT at {@link #GDT_GPA} from {@link GuestBootState}'s segments. The TSS page stays zero. */
    static void writeGdt(GuestMemory memory) {
        long[] gdt = gdtEntries();
        for (int i = 0; i < gdt.length; i++) {
            memory.writeLong(Gpa.of(GDT_GPA + 8L * i), gdt[i]);
        }
    }

    /** The GDT's seven longs: null, kernel code, kernel data, user code, user data, TSS low, TSS high. */
    static long[] gdtEntries() {
        GuestBootState.Segment tss = GuestBootState.Segment.TSS;
        return new long[] {0, GuestBootState.Segment.KERNEL_CODE.descriptor(),
            GuestBootState.Segment.KERNEL_DATA.descriptor(), GuestBootState.Segment.USER_CODE.descriptor(),
            GuestBootState.Segment.USER_DATA.descriptor(), tss.descriptor(), tss.base() >>> 32};
    }

    /** Throws unless every byte of {@code [from, to)} is RAM (possibly over several regions). */
    static void requireRam(GuestMemory memory, long from, long to) {
        List<GuestRegion> regions = new ArrayList<>(memory.regions());
        regions.sort(Comparator.comparingLong(GuestRegion::gpaBase));
        long covered = from;
        for (GuestRegion r : regions) {
            if (r.gpaBase() <= covered && covered < r.gpaBase() + r.size()) {
                covered = r.gpaBase() + r.size();
            }
            if (covered >= to) {
                return;
            }
        }
        throw new IllegalArgumentException("ferry-guest: working set [0x" + Long.toHexString(from) + ", 0x"
                + Long.toHexString(to) + ") is not all RAM: gpa 0x" + Long.toHexString(covered)
                + " is outside every region " + memory.regions() + "; shrink the working set or move its base");
    }

    private static long roundUp(long v, long unit) {
        return (v + unit - 1) / unit * unit;
    }
}
