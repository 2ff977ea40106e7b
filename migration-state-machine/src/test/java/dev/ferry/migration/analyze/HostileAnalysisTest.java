package dev.ferry.migration.analyze;

import dev.ferry.migration.testing.StreamBytes;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Crafted streams, one problem each: the analyzer must name the problem (and its offset where it
 * has one), never hang, never allocate by a length it read.
 */
@Timeout(20)
class HostileAnalysisTest {
    private static final int PAGE = 4096;
    private static final String NO_DEVICES = "{\"page_size\": 4096, \"devices\": []}";

    private static StreamAnalysis analyze(byte[] s) throws Exception {
        return StreamAnalyzer.analyze(new ByteArrayChannel(s), "hostile", StreamAnalyzer.Options.withPageRuns());
    }

    private static AnalysisException fails(AnalysisException.Kind kind, String fragment, StreamBytes s) {
        AnalysisException e = assertThrows(AnalysisException.class, () -> analyze(s.toByteArray()));
        assertEquals(kind, e.kind(), e.getMessage());
        assertTrue(e.getMessage().contains(fragment), () -> "expected '" + fragment + "' in: " + e.getMessage());
        return e;
    }

    /** Header, configuration, and a "ram" START listing one block of {@code pages} pages. */
    private static StreamBytes ram(int pages) {
        return new StreamBytes().header().configuration("pc-i440fx-7.2")
                .start(2, "ram", 0, 4).memSize((long) pages * PAGE).block("pc.ram", (long) pages * PAGE).ramEos().footer(2);
    }

    private static byte[] page() {
        return new byte[PAGE];
    }

    @Test
    void notAStream() {
        AnalysisException e = assertThrows(AnalysisException.class, () -> analyze(new byte[0]));
        assertEquals("not a migration stream: the file is empty", e.getMessage());
        e = assertThrows(AnalysisException.class,
                () -> analyze("\u007fELF\u0002\u0001\u0001\u0000".getBytes(StandardCharsets.ISO_8859_1)));
        assertEquals("not a migration stream: magic 0x7f454c46, expected QEVM", e.getMessage());
        assertEquals(AnalysisException.Kind.NOT_A_STREAM, e.kind());
    }

    @Test
    void versions() {
        fails(AnalysisException.Kind.UNSUPPORTED, "QEVM version 2 (obsolete) is not supported",
                new StreamBytes().be32(0x5145564d).be32(2).eof());
        fails(AnalysisException.Kind.UNSUPPORTED, "QEVM version 4 is not supported",
                new StreamBytes().be32(0x5145564d).be32(4).eof());
        fails(AnalysisException.Kind.UNSUPPORTED, "RAM section version 3",
                new StreamBytes().header().start(2, "ram", 0, 3));
    }

    @Test
    void framing() {
        int r = ram(1).size();
        fails(AnalysisException.Kind.MALFORMED, "unknown section type 0x42 at offset 8", new StreamBytes().header().u8(0x42));
        fails(AnalysisException.Kind.MALFORMED, "a section footer at offset 8 follows no section",
                new StreamBytes().header().footer(1));
        fails(AnalysisException.Kind.MALFORMED, "mismatched footer at offset 56: section id 3, expected 2 (ram)",
                new StreamBytes().header().start(2, "ram", 0, 4).memSize(PAGE).block("pc.ram", PAGE).ramEos().footer(3));
        fails(AnalysisException.Kind.MALFORMED, "missing footer of ram (section 2)",
                new StreamBytes().header().start(2, "ram", 0, 4).memSize(PAGE).block("pc.ram", PAGE).ramEos().eof());
        fails(AnalysisException.Kind.MALFORMED, "SECTION_PART at offset " + r + " for section id 9, which no START opened",
                ram(1).part(9));
        fails(AnalysisException.Kind.MALFORMED, "section id 2 at offset " + r + " (ram) is already used by ram",
                ram(1).start(2, "ram", 0, 4));
        fails(AnalysisException.Kind.MALFORMED, "CONFIGURATION at offset " + r + " does not follow the header",
                ram(1).configuration("pc"));
        fails(AnalysisException.Kind.MALFORMED, "VMDESCRIPTION at offset " + r + " before EOF", ram(1).vmdesc(NO_DEVICES));
        fails(AnalysisException.Kind.MALFORMED, "unknown command 0x63", ram(1).command(0x63, new byte[0]));
        fails(AnalysisException.Kind.TRUNCATED, "the postcopy package", ram(1).command(7, new byte[] {0x7f, 0, 0, 0}));
        fails(AnalysisException.Kind.MALFORMED, "EOF at offset " + r + ", but the vmdesc starts at offset " + (r + 3),
                ram(1).eof().u8(0x42).u8(0x42).vmdesc(NO_DEVICES));
    }

    @Test
    void commandsAreSkippedAndCounted() throws Exception {
        StreamAnalysis a = analyze(new StreamBytes().header().configuration("pc-q35-10.0")
                .command(1, new byte[0]).command(2, new byte[] {0, 0, 0, 1})
                .start(2, "ram", 0, 4).memSize(PAGE).block("pc.ram", PAGE).ramEos().footer(2)
                .command(11, new byte[0]).end(2).zeroPage(0, "pc.ram").ramEos().footer(2)
                .command(7, new byte[] {0, 0, 0, 3}).bytes(new byte[] {0x04, 0x7e, 0x00})
                .eof().vmdesc(NO_DEVICES).toByteArray());
        assertEquals(java.util.Map.of("OPEN_RETURN_PATH", 1, "PING", 1, "SWITCHOVER_START", 1, "PACKAGED", 1),
                a.commands());
        assertEquals(1, a.zeroPages());
        assertEquals(java.util.List.of("1 postcopy package(s) of 3 bytes in all were skipped: the device states "
                + "inside them are not analyzed"), a.notes());

        StreamAnalysis unended = analyze(ram(1).eof().vmdesc(NO_DEVICES).toByteArray());
        assertEquals(java.util.List.of("started but never ended: ram (section 2)"), unended.notes());
    }

    @Test
    void opaqueIterableSectionsAndUndescribedDevicesAreRefusedByName() {
        int r = ram(1).size();
        fails(AnalysisException.Kind.UNSUPPORTED, "iterable section dirty-bitmap cannot be parsed",
                ram(1).start(3, "dirty-bitmap", 0, 1).be64(0));
        fails(AnalysisException.Kind.MALFORMED, "SECTION_FULL apic (section 3, instance 0) at offset " + r + " has no entry "
                + "in the vmdesc", ram(1).full(3, "apic", 0, 3).u8(0).footer(3).eof().vmdesc(NO_DEVICES));
    }

    @Test
    void ramRecords() {
        int r = ram(2).size();
        fails(AnalysisException.Kind.UNSUPPORTED, "XBZRLE", ram(2).part(2).be64(0x40 | 0x20));
        fails(AnalysisException.Kind.UNSUPPORTED, "compressed page", ram(2).part(2).be64(0x100));
        fails(AnalysisException.Kind.UNSUPPORTED, "RDMA", ram(2).part(2).be64(0x80));
        fails(AnalysisException.Kind.MALFORMED, "has unknown flags 0x1", ram(2).part(2).be64(0x01));
        fails(AnalysisException.Kind.MALFORMED, "continues the previous block, but no block was named",
                ram(2).part(2).zeroPageContinue(0));
        fails(AnalysisException.Kind.MALFORMED, "names RAM block pc.bios, which MEM_SIZE did not list",
                ram(2).part(2).zeroPage(0, "pc.bios"));
        fails(AnalysisException.Kind.MALFORMED, "page 0x2000 at offset " + (r + 5) + " lies outside RAM block pc.ram",
                ram(2).part(2).page(2 * PAGE, "pc.ram", page()));
        fails(AnalysisException.Kind.MALFORMED, "lies outside RAM block",
                ram(2).part(2).be64(0xfffffffffffff000L | 0x02).str("pc.ram").u8(0));
        fails(AnalysisException.Kind.MALFORMED, "names RAM block pc.ram before any MEM_SIZE record",
                new StreamBytes().header().start(2, "ram", 0, 4).zeroPage(0, "pc.ram"));
        fails(AnalysisException.Kind.MALFORMED, "block b of 0x2000 bytes overruns the total 0x1000",
                new StreamBytes().header().start(2, "ram", 0, 4).memSize(PAGE).block("b", 2 * PAGE));
        fails(AnalysisException.Kind.MALFORMED, "lists block a twice",
                new StreamBytes().header().start(2, "ram", 0, 4).memSize(2 * PAGE).block("a", PAGE).block("a", PAGE));
        fails(AnalysisException.Kind.MALFORMED, "a second MEM_SIZE record", ram(1).part(2).memSize(PAGE));
        fails(AnalysisException.Kind.MALFORMED, "has length 0",
                new StreamBytes().header().start(2, "ram", 0, 4).memSize(PAGE).u8(0));
        fails(AnalysisException.Kind.TRUNCATED, "a RAM page of block pc.ram (4096 bytes)",
                ram(2).part(2).be64(0x08).str("pc.ram").bytes(new byte[100]));
    }

    @Test
    void hugeRamIsCountedWithoutPerPageStateAndWithoutAllocatingForIt() throws Exception {
        long huge = 1L << 50;
        StreamAnalysis a = analyze(new StreamBytes().header()
                .start(2, "ram", 0, 4).memSize(huge).block("pc.ram", huge).ramEos().footer(2)
                .end(2).zeroPage(huge - PAGE, "pc.ram").ramEos().footer(2).eof().vmdesc(NO_DEVICES).toByteArray());
        assertEquals(huge, a.ramTotalBytes());
        assertEquals(1, a.zeroPages());
        assertEquals(-1, a.distinctPages());
        assertTrue(a.notes().stream().anyMatch(n -> n.contains("not tracked")), a.notes().toString());

        long tib = 1L << 40; // the largest tracked size: the bitmaps are allocated only where pages were sent
        a = analyze(new StreamBytes().header()
                .start(2, "ram", 0, 4).memSize(tib).block("pc.ram", tib).ramEos().footer(2)
                .end(2).page(tib - PAGE, "pc.ram", page()).ramEos().footer(2).eof().vmdesc(NO_DEVICES).toByteArray());
        assertEquals(1, a.distinctPages());
        assertEquals(java.util.List.of(new PageRun(0, (tib / PAGE) - 1, PageRun.Kind.NOT_SENT),
                new PageRun((tib / PAGE) - 1, 1, PageRun.Kind.NORMAL)), a.ramBlocks().get(0).runs());
    }

    @Test
    void blockMigrationSectionsAreCrossedAndCounted() throws Exception {
        StreamAnalysis a = analyze(ram(1)
                .start(3, "block", 0, 1).be64(0x04).be64(0x02).footer(3)
                .part(3).be64((0L << 9) | 0x01).str("drive0").bytes(new byte[1 << 20])
                .be64((2048L << 9) | 0x01 | 0x08).str("drive0").be64((100L << 9) | 0x04).be64(0x02).footer(3)
                .end(3).be64(0x02).footer(3).eof().vmdesc(NO_DEVICES).toByteArray());
        assertEquals(java.util.List.of(new DiskSummary("drive0", 1, 1)), a.disks());
        assertEquals(SectionSummary.Kind.BLOCK, a.sections().get(1).kind());
        fails(AnalysisException.Kind.MALFORMED, "block: record at offset " + (ram(1).size() + 19) + " has unknown flags 0x10",
                ram(1).start(3, "block", 0, 1).be64(0x10));
    }

    @Test
    void vfioSectionsAreWalkedByTheirTags() throws Exception {
        long eos = 0xffffffffef100001L;
        long config = 0xffffffffef100002L;
        long setup = 0xffffffffef100003L;
        long data = 0xffffffffef100004L;
        long initSent = 0xffffffffef100005L;
        // QEMU's order: START(setup), PARTs (data, then INIT_DATA_SENT), END (stop-copy data), FULL (config)
        StreamAnalysis a = analyze(ram(1)
                .start(3, "0000:00:05.0/vfio", 0, 1).be64(setup).be64(eos).footer(3)
                .part(3).be64(data).be64(5).bytes(new byte[5]).be64(data).be64(3).bytes(new byte[3]).be64(initSent)
                .footer(3)
                .part(3).be64(eos).footer(3)
                .end(3).be64(data).be64(7).bytes(new byte[7]).be64(eos).footer(3)
                .full(3, "0000:00:05.0/vfio", 0, 1).be64(config).bytes(new byte[] {1, 2, 3, (byte) 0xff}).be64(eos)
                .footer(3)
                .eof().vmdesc(NO_DEVICES).toByteArray());
        assertEquals(java.util.List.of(new VfioDeviceSummary("0000:00:05.0/vfio", 0, 3, 15, 4, true)), a.vfioDevices());
        assertEquals(SectionSummary.Kind.VFIO, a.sections().get(1).kind());
        assertEquals(1, a.sections().get(1).fulls());

        long at = ram(1).size() + 1 + 4 + 1 + "0000:00:05.0/vfio".length() + 8;
        fails(AnalysisException.Kind.MALFORMED, "unknown VFIO tag 0xffffffffef100009 at offset " + at,
                ram(1).start(3, "0000:00:05.0/vfio", 0, 1).be64(0xffffffffef100009L));
        fails(AnalysisException.Kind.MALFORMED, "claims 18446744073709551615 bytes",
                ram(1).start(3, "0000:00:05.0/vfio", 0, 1).be64(data).be64(-1));
        fails(AnalysisException.Kind.TRUNCATED, "a VFIO data block of 0000:00:05.0/vfio (100 bytes)",
                ram(1).start(3, "0000:00:05.0/vfio", 0, 1).be64(data).be64(100).bytes(new byte[10]));
        fails(AnalysisException.Kind.TRUNCATED, "the VFIO config state",
                ram(1).start(3, "0000:00:05.0/vfio", 0, 1).be64(config).bytes(new byte[100]));
        // a FULL section may reuse the id only for the same VFIO device
        fails(AnalysisException.Kind.MALFORMED, "is already used by",
                ram(1).start(3, "0000:00:05.0/vfio", 0, 1).be64(eos).footer(3).full(3, "other/vfio", 0, 1));
    }

    @Test
    void configuration() throws Exception {
        byte[] uuid = new byte[16];
        uuid[15] = 1;
        StreamAnalysis a = analyze(new StreamBytes().header().configuration("pc-q35-10.0")
                .u8(0x05).str("configuration/capabilities").be32(1).be32(1).str("x-ignore-shared")
                .u8(0x05).str("configuration/uuid").be32(1).bytes(uuid)
                .start(2, "ram", 0, 4).memSize(PAGE).block("pc.ram", PAGE).be64(0xfff00000L) // mr->addr (x-ignore-shared)
                .ramEos().footer(2).eof().vmdesc(NO_DEVICES).toByteArray());
        assertEquals(new MachineConfiguration("pc-q35-10.0", java.util.List.of("x-ignore-shared"), -1,
                "00000000000000000000000000000001"), a.configuration());
        assertEquals(PAGE, a.ramTotalBytes());

        fails(AnalysisException.Kind.UNSUPPORTED, "mapped-ram", new StreamBytes().header().configuration("pc")
                .u8(0x05).str("configuration/capabilities").be32(1).be32(1).str("mapped-ram"));
        fails(AnalysisException.Kind.MALFORMED, "unknown configuration subsection configuration/other",
                new StreamBytes().header().configuration("pc").u8(0x05).str("configuration/other").be32(1));
        fails(AnalysisException.Kind.MALFORMED, "machine type of 100000 bytes",
                new StreamBytes().header().u8(0x07).be32(100000));
        fails(AnalysisException.Kind.UNSUPPORTED, "postcopy with RAM blocks of other page sizes",
                new StreamBytes().header().command(3, new StreamBytes().be64(0x201000).be64(PAGE).toByteArray()));
    }

    @Test
    void vmdescItself() {
        fails(AnalysisException.Kind.MALFORMED, "is not valid JSON", ram(1).eof().vmdesc("{\"page_size\": 4096, \"dev"));
        fails(AnalysisException.Kind.MALFORMED, "has no \"devices\" list", ram(1).eof().vmdesc("{\"page_size\": 4096}"));
        fails(AnalysisException.Kind.MALFORMED, "has page_size 1000", ram(1).eof().vmdesc("{\"page_size\": 1000, \"devices\": []}"));
        fails(AnalysisException.Kind.MALFORMED, "describes d instance 0 twice", ram(1).eof().vmdesc(
                "{\"page_size\": 4096, \"devices\": [{\"name\": \"d\", \"instance_id\": 0, \"fields\": []},"
                        + " {\"name\": \"d\", \"instance_id\": 0, \"fields\": []}]}"));
        fails(AnalysisException.Kind.MALFORMED, "is not valid JSON",
                ram(1).eof().vmdesc("{\"page_size\": 4096, \"devices\": " + "[".repeat(5000) + "]".repeat(5000) + "}"));
        fails(AnalysisException.Kind.TRUNCATED, "the vmdesc JSON (1000 bytes)", ram(1).eof().u8(0x06).be32(1000).bytes(
                "{\"page_size\": 4096}".getBytes(StandardCharsets.US_ASCII)));
        fails(AnalysisException.Kind.MALFORMED, "expected the VMDESCRIPTION marker 0x06", ram(1).eof().u8(0x01));
    }

    @Test
    void aVmdescWhoseLengthByteIsABraceIsStillFound() throws Exception {
        StringBuilder json = new StringBuilder("{\"page_size\": 4096, \"devices\": [], \"pad\": \"");
        while (json.length() < 0x7b - 2) {
            json.append('x');
        }
        json.append("\"}");
        // QEMU's analyze-migration.py takes the length byte 0x7b for the JSON's '{' and gives up here.
        StreamAnalysis a = analyze(ram(1).eof().u8(0x06).be32(0x7b).bytes(json.toString().getBytes(StandardCharsets.US_ASCII))
                .toByteArray());
        assertEquals(0x7b, a.vmdesc().length());
        assertEquals(a.eofOffset() + 1, a.vmdesc().offset());
    }
}
