package dev.ferry.core.cpu.guest;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.memory.Gpa;

import java.util.OptionalLong;

/**
 * x86-64 four-level page tables in guest memory: the identity map ferry-guest runs on, and a
 * walker that translates through any tables (to check the map, or to find what RIP points at).
 * <pre>
 * PML4 at cr3           entry 0     = PDPT | P RW US A       (one PML4 entry covers 512 GiB)
 * PDPT at cr3 + 0x1000  entry i     = PD_i | P RW US A       for each mapped GiB i
 * PD_i at cr3 + 0x2000 + i * 0x1000
 *                       entry j     = (i * 512 + j) * 2 MiB | P RW US A D PS
 * </pre>
 * US (user) is set everywhere so that ring-3 code can use the whole map. CR4.SMEP/SMAP stay off,
 * so ring-0 code can use it too.
 * The accessed and dirty bits are set in advance so that the CPU's page walker never needs to
 * write them. The tables then stay exactly as the VMM wrote them, even after the guest has run.
 * Stateless.
 */
public final class PageTables {
    public static final long PRESENT = 1L;
    public static final long WRITABLE = 1L << 1;
    public static final long USER = 1L << 2;
    public static final long ACCESSED = 1L << 5;
    public static final long DIRTY = 1L << 6;
    /** In a PDPT or PD entry: this entry maps a 1 GiB or 2 MiB page. */
    public static final long PAGE_SIZE_BIT = 1L << 7;
    /** Flags of a PML4 or PDPT entry that points at the next table. */
    public static final long TABLE_FLAGS = PRESENT | WRITABLE | USER | ACCESSED;
    /** Flags of a PD entry that maps a 2 MiB page. */
    public static final long LARGE_PAGE_FLAGS = PRESENT | WRITABLE | USER | ACCESSED | DIRTY | PAGE_SIZE_BIT;
    /** Bits 12..51 of an entry: the next table's, or the page's, physical address. */
    public static final long ADDRESS_MASK = 0x000F_FFFF_FFFF_F000L;
    public static final long PAGE_2M = 1L << 21;
    private static final long GIB = 1L << 30;
    private static final int ENTRIES = 512;

    private PageTables() {
    }

    /**
     * Writes an identity map of {@code [0, bytes)} with 2 MiB pages at {@code pml4Gpa}: the
     * PML4, then the PDPT at {@code pml4Gpa + 4096}, then {@code ceil(bytes / 1 GiB)} PDs. All of
     * it must be RAM. The whole PML4 and PDPT pages are written, with their unused entries zero.
     *
     * @param bytes 1 GiB .. 512 GiB; rounded up to whole GiB
     * @return the CR3 value ({@code pml4Gpa}: 4 KiB aligned, no PCID, no PWT/PCD)
     */
    public static long identityMap2M(GuestMemory memory, long pml4Gpa, long bytes) {
        if (pml4Gpa % 4096 != 0 || pml4Gpa < 0) {
            throw new IllegalArgumentException("PML4 at gpa 0x" + Long.toHexString(pml4Gpa) + " is not 4 KiB aligned");
        }
        long gib = (bytes + GIB - 1) / GIB;
        if (gib < 1 || gib > ENTRIES) {
            throw new IllegalArgumentException("identity map of " + bytes + " bytes: one PDPT maps 1..512 GiB");
        }
        long pdpt = pml4Gpa + 4096;
        long pd0 = pml4Gpa + 2 * 4096;
        for (int e = 0; e < ENTRIES; e++) {
            memory.writeLong(Gpa.of(pml4Gpa + 8L * e), e == 0 ? pdpt | TABLE_FLAGS : 0);
            memory.writeLong(Gpa.of(pdpt + 8L * e), e < gib ? (pd0 + 4096L * e) | TABLE_FLAGS : 0);
        }
        for (long i = 0; i < gib; i++) {
            long pd = pd0 + 4096 * i;
            for (int j = 0; j < ENTRIES; j++) {
                memory.writeLong(Gpa.of(pd + 8L * j), (i * ENTRIES + j) * PAGE_2M | LARGE_PAGE_FLAGS);
            }
        }
        return pml4Gpa;
    }

    /**
     * Translates the virtual address {@code va} through the tables at {@code cr3}, with 4 KiB,
     * 2 MiB and 1 GiB pages as the hardware does (ignoring permissions). The result is empty
     * when {@code va} is not canonical or some level is not present.
     */
    public static OptionalLong translate(GuestMemory memory, long cr3, long va) {
        if (va >> 47 != 0 && va >> 47 != -1) {
            return OptionalLong.empty();
        }
        long table = cr3 & ADDRESS_MASK;
        for (int level = 3; level >= 0; level--) {
            int shift = 12 + 9 * level;
            long entry = memory.readLong(Gpa.of(table + 8 * (va >>> shift & 0x1FF)));
            if ((entry & PRESENT) == 0) {
                return OptionalLong.empty();
            }
            boolean large = level == 0 || (level <= 2 && (entry & PAGE_SIZE_BIT) != 0);
            if (large) {
                long pageMask = (1L << shift) - 1;
                return OptionalLong.of((entry & ADDRESS_MASK & ~pageMask) | (va & pageMask));
            }
            table = entry & ADDRESS_MASK;
        }
        throw new AssertionError("unreachable: level 0 always maps a page");
    }
}
