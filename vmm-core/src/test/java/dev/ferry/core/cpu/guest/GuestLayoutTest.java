package dev.ferry.core.cpu.guest;

import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.OptionalLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The VMM's part of booting ferry-guest: page tables walked in Java, the GDT decoded back into
 * the segments the engine loads, and every structure written where {@link GuestLayout} says.
 */
class GuestLayoutTest {
    private static final long MIB = 1L << 20;
    private static final long GIB = 1L << 30;

    /** A program image that passes the header checks: 64-byte header, then a HLT. */
    private static GuestProgram fakeProgram() {
        byte[] image = new byte[80];
        long load = GuestLayout.IMAGE_GPA;
        ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN).putLong(GuestProgram.MAGIC).putInt(1).putInt(64)
                .putLong(load).putLong(load + 64).putLong(load + 96).putLong(GuestLayout.BOOT_PARAMS_GPA)
                .putInt(GuestLayout.HEARTBEAT_PORT).putInt(GuestLayout.STATUS_PORT).putLong(0);
        image[64] = (byte) 0xF4;
        return GuestProgram.parse(image);
    }

    @Test
    void identityMapTranslatesWith2MiBPages() {
        try (GuestMemory memory = GuestMemory.ofSize(4 * MIB)) {
            long cr3 = PageTables.identityMap2M(memory, GuestLayout.PML4_GPA, 3 * GIB);
            assertEquals(GuestLayout.PML4_GPA, cr3);
            for (long va : new long[] {0, 0x1000, 0x1FFFFF, 0x200000, 0x123456, GIB - 1, GIB, 2 * GIB + 0xABCDE,
                3 * GIB - 8}) {
                assertEquals(OptionalLong.of(va), PageTables.translate(memory, cr3, va),
                        "va 0x" + Long.toHexString(va));
            }
            assertEquals(OptionalLong.empty(), PageTables.translate(memory, cr3, 3 * GIB), "the 4th GiB is unmapped");
            assertEquals(OptionalLong.empty(), PageTables.translate(memory, cr3, 1L << 40));
            assertEquals(OptionalLong.empty(), PageTables.translate(memory, cr3, 1L << 50), "not canonical");

            assertEquals(GuestLayout.PDPT_GPA | 0x27, memory.readLong(Gpa.of(GuestLayout.PML4_GPA)), "P RW US A");
            for (int i = 1; i < 512; i++) {
                assertEquals(0, memory.readLong(Gpa.of(GuestLayout.PML4_GPA + 8L * i)), "PML4 entry " + i);
            }
            for (int i = 0; i < 512; i++) {
                long expected = i < 3 ? (GuestLayout.PD_GPA + 4096L * i) | PageTables.TABLE_FLAGS : 0;
                assertEquals(expected, memory.readLong(Gpa.of(GuestLayout.PDPT_GPA + 8L * i)), "PDPT entry " + i);
            }
            for (int pd = 0; pd < 3; pd++) {
                for (int j = 0; j < 512; j++) {
                    long e = memory.readLong(Gpa.of(GuestLayout.PD_GPA + 4096L * pd + 8L * j));
                    assertEquals((pd * 512L + j) * PageTables.PAGE_2M, e & PageTables.ADDRESS_MASK);
                    assertEquals(PageTables.PRESENT | PageTables.WRITABLE | PageTables.PAGE_SIZE_BIT,
                            e & (PageTables.PRESENT | PageTables.WRITABLE | PageTables.PAGE_SIZE_BIT), "P|RW|PS");
                    assertEquals(PageTables.LARGE_PAGE_FLAGS, e & ~PageTables.ADDRESS_MASK,
                            "flags: P RW US A D PS, no NX");
                    assertEquals(0xE7, e & 0xFFF);
                }
            }
        }
    }

    @Test
    void walkerFollows4KiBAnd1GiBPagesToo() {
        try (GuestMemory memory = GuestMemory.ofSize(4 * MIB)) {
            long pml4 = 0x20000;
            long pdpt = 0x21000;
            long pd = 0x22000;
            long pt = 0x23000;
            memory.writeLong(Gpa.of(pml4 + 8 * 1), pdpt | 3); // va 512 GiB..
            memory.writeLong(Gpa.of(pdpt), 0x40000000L | 0x83); // 1 GiB page -> 1 GiB
            memory.writeLong(Gpa.of(pdpt + 8), pd | 3);
            memory.writeLong(Gpa.of(pd + 8 * 2), pt | 3);
            memory.writeLong(Gpa.of(pt + 8 * 5), 0x7000 | 3);
            long base = 1L << 39;
            assertEquals(OptionalLong.of(0x40000000L + 0x12345), PageTables.translate(memory, pml4, base + 0x12345));
            long pt0 = base + GIB + 2 * PageTables.PAGE_2M; // covered by the PT
            assertEquals(OptionalLong.of(0x7abc), PageTables.translate(memory, pml4, pt0 + 5 * 4096 + 0xabc));
            assertEquals(OptionalLong.empty(), PageTables.translate(memory, pml4, pt0 + 6 * 4096));
            assertEquals(OptionalLong.empty(), PageTables.translate(memory, pml4, 0));
        }
    }

    @Test
    void prepareWritesEveryStructureWhereTheLayoutSays() {
        GuestParams params = new GuestParams(0xFEED, 0x400000, 512, 8, 0);
        try (GuestMemory memory = GuestMemory.builder().region("pc.ram", 0, 6 * MIB).region("high", 6 * MIB, 2 * GIB)
                .build()) {
            memory.fill(Gpa.of(0), 2 * MIB, (byte) 0x77); // prepare must clear what an earlier life left
            GuestProgram program = fakeProgram();
            GuestBootState boot = GuestLayout.prepare(memory, program, params);

            assertEquals(GuestBootState.Ring.USER, boot.ring());
            assertEquals(program.entryRip(), boot.rip());
            assertEquals(0x10000, boot.rsp());
            assertEquals(0x3002, boot.rflags(), "IOPL 3, IF clear");
            assertEquals(0x80000031L, boot.cr0());
            assertEquals(0x20, boot.cr4());
            assertEquals(0x500, boot.efer());
            assertEquals(GuestLayout.PML4_GPA, boot.cr3());
            assertEquals(GuestLayout.GDT_GPA, boot.gdtBase());
            assertEquals(55, boot.gdtLimit());
            assertEquals(0, boot.idtLimit());

            // zero page, progress record, stack: zero
            for (long gpa : new long[] {0, 0xFF8, GuestLayout.PROGRESS_GPA, GuestLayout.PROGRESS_GPA + 4088,
                GuestLayout.TSS_GPA, GuestLayout.TSS_GPA + 0x60, GuestLayout.STACK_BASE_GPA,
                GuestLayout.STACK_TOP_GPA - 8}) {
                assertEquals(0, memory.readLong(Gpa.of(gpa)), "gpa 0x" + Long.toHexString(gpa));
            }
            assertEquals(params, GuestParams.read(memory));
            assertEquals(GuestProgress.initial(params), GuestProgress.read(memory));
            // the map covers all RAM (2 GiB + 6 MiB, so 3 GiB) through the PDs at 0x12000..0x14fff
            assertEquals(OptionalLong.of(2 * GIB + 0x1234), PageTables.translate(memory, boot.cr3(), 2 * GIB + 0x1234));
            assertEquals(GuestLayout.PD_GPA + 2 * 4096 | PageTables.TABLE_FLAGS,
                    memory.readLong(Gpa.of(GuestLayout.PDPT_GPA + 16)));
            assertEquals(0, memory.readLong(Gpa.of(GuestLayout.PDPT_GPA + 24)));
            assertEquals(OptionalLong.of(boot.rip()), PageTables.translate(memory, boot.cr3(), boot.rip()));
            // the image, zero-filled to its end
            assertEquals(GuestProgram.MAGIC, memory.readLong(Gpa.of(GuestLayout.IMAGE_GPA)));
            assertEquals((byte) 0xF4, memory.readByte(Gpa.of(boot.rip())));
            assertEquals(0, memory.readLong(Gpa.of(GuestLayout.IMAGE_GPA + 88)));
            assertEquals(0, memory.readLong(Gpa.of(GuestLayout.IMAGE_LIMIT_GPA - 8)));

            // the GDT holds exactly the segments the engine loads
            long[] gdt = new long[GuestLayout.GDT_ENTRIES];
            for (int i = 0; i < gdt.length; i++) {
                gdt[i] = memory.readLong(Gpa.of(GuestLayout.GDT_GPA + 8L * i));
            }
            assertEquals(0, gdt[0]);
            assertDescribes(gdt[GuestLayout.USER_CODE_SELECTOR / 8], 0, boot.cs());
            assertDescribes(gdt[GuestLayout.USER_DATA_SELECTOR / 8], 0, boot.data());
            assertEquals(3, boot.cs().dpl());
            assertEquals(3, boot.cs().selector() & 3, "RPL 3");
            assertDescribes(gdt[GuestLayout.KERNEL_CODE_SELECTOR / 8], 0, GuestBootState.Segment.KERNEL_CODE);
            assertDescribes(gdt[GuestLayout.KERNEL_DATA_SELECTOR / 8], 0, GuestBootState.Segment.KERNEL_DATA);
            assertDescribes(gdt[GuestLayout.TSS_SELECTOR / 8], gdt[GuestLayout.TSS_SELECTOR / 8 + 1], boot.tr());
            assertEquals(0x00AF9B000000FFFFL, gdt[1], "the textbook flat 64-bit kernel code descriptor");
            assertEquals(0x00CF93000000FFFFL, gdt[2], "the textbook flat kernel data descriptor");
            assertEquals(0x00AFFB000000FFFFL, gdt[3], "the textbook flat 64-bit user code descriptor");
            assertEquals(0x00CFF3000000FFFFL, gdt[4], "the textbook flat user data descriptor");

            GuestBootState kernel = GuestLayout.prepare(memory, program, params, GuestBootState.Ring.KERNEL);
            assertEquals(GuestBootState.Segment.KERNEL_CODE, kernel.cs());
            assertEquals(GuestBootState.Segment.KERNEL_DATA, kernel.data());
            assertEquals(0, kernel.cs().selector() & 3);
            assertEquals(boot.cr3(), kernel.cr3());
            assertEquals(GuestLayout.TSS_GPA, boot.tr().base());
            assertEquals(0xB, boot.tr().type());
            assertTrue(boot.ldt().unusable());
        }
    }

    @Test
    void prepareRefusesMemoryTheGuestCannotUse() {
        GuestProgram program = fakeProgram();
        try (GuestMemory memory = GuestMemory.ofSize(4 * MIB)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> GuestLayout.prepare(memory, program, new GuestParams(1, 0x200000, 513, 1, 0)));
            assertTrue(e.getMessage().contains("is not all RAM"), e.getMessage());
            GuestLayout.prepare(memory, program, new GuestParams(1, 0x200000, 512, 1, 0));
        }
        try (GuestMemory split = GuestMemory.builder().region("a", 0, MIB).region("b", MIB, 3 * MIB).build()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> GuestLayout.prepare(split, program, new GuestParams(1, 0x200000, 1, 1, 0)));
            assertTrue(e.getMessage().contains("one RAM region"), e.getMessage());
        }
        try (GuestMemory gap = GuestMemory.builder().region("low", 0, 4 * MIB).region("high", 8 * MIB, 4 * MIB)
                .build()) {
            assertThrows(IllegalArgumentException.class,
                    () -> GuestLayout.prepare(gap, program, new GuestParams(1, 0x200000, 2048, 1, 0)));
            GuestLayout.prepare(gap, program, new GuestParams(1, 8 * MIB, 1024, 1, 0));
        }
    }

    @Test
    void statusCodesRoundTrip() {
        for (GuestStatus s : GuestStatus.values()) {
            assertEquals(s, GuestStatus.of(s.code()));
            assertEquals(s.name().startsWith("FAULT"), s.isFault());
            assertEquals(s.isFault() || s == GuestStatus.DONE, s.isFinal());
        }
        assertThrows(IllegalArgumentException.class, () -> GuestStatus.of(0x42));
    }

    /** Decodes a GDT descriptor the way the CPU loads it into a segment register's hidden part. */
    private static void assertDescribes(long low, long high, GuestBootState.Segment s) {
        long base = (low >>> 16 & 0xFF_FFFFL) | (low >>> 56 & 0xFF) << 24;
        long rawLimit = (low & 0xFFFF) | (low >>> 48 & 0xF) << 16;
        int access = (int) (low >>> 40 & 0xFF);
        int flags = (int) (low >>> 52 & 0xF);
        boolean system = (access & 0x10) == 0;
        if (system) {
            base |= (high & 0xFFFF_FFFFL) << 32;
        }
        boolean g = (flags & 8) != 0;
        long limit = g ? rawLimit << 12 | 0xFFF : rawLimit;
        assertEquals(s.base(), base, "base");
        assertEquals(Integer.toUnsignedLong(s.limit()), limit, "limit");
        assertEquals(s.type(), access & 0xF, "type");
        assertEquals(s.s(), !system, "S");
        assertEquals(s.dpl(), access >>> 5 & 3, "DPL");
        assertEquals(s.present(), (access & 0x80) != 0, "P");
        assertEquals(s.avl(), (flags & 1) != 0, "AVL");
        assertEquals(s.l(), (flags & 2) != 0, "L");
        assertEquals(s.db(), (flags & 4) != 0, "DB");
        assertEquals(s.g(), g, "G");
        assertEquals(s.dpl(), s.s() ? s.selector() & 3 : 0, "RPL = DPL");
    }
}
