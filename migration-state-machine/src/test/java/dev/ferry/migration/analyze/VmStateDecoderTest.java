package dev.ferry.migration.analyze;

import dev.ferry.migration.testing.StreamBytes;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The vmdesc shapes QEMU writes (migration/vmstate.c) and Ferry's own devices do not: compressed
 * arrays ("array_len"), per-element arrays ("index"), nested structs with subsections, "tmp"
 * fields described in place, NULL pointers in both QEMU 7.2's and 10's spelling, nested
 * subsections, and the types whose names do not say their layout ("int32 le", "timer").
 */
@Timeout(20)
class VmStateDecoderTest {
    private static final String SEG = """
            {"vmsd_name": "seg", "version": 1, "fields": [{"name": "sel", "type": "uint16", "size": 2}],
             "subsections": [{"vmsd_name": "seg/x", "version": 1, "fields": [{"name": "x", "type": "uint8", "size": 1}]}]}""";

    private static String vmdesc(String pairsSize, String secondSubsection) {
        return """
                {"page_size": 4096, "devices": [{"name": "qdev", "instance_id": 2, "vmsd_name": "qdev", "version": 3,
                 "fields": [
                  {"name": "u8", "type": "uint8", "size": 1},
                  {"name": "i8", "type": "int8", "size": 1},
                  {"name": "u16e", "type": "uint16 equal", "size": 2},
                  {"name": "le", "type": "int32 le", "size": 4},
                  {"name": "t", "type": "timer", "size": 8},
                  {"name": "f", "type": "float64", "size": 8},
                  {"name": "b", "type": "bool", "size": 1},
                  {"name": "regs", "array_len": 3, "type": "uint32", "size": 4},
                  {"name": "segs", "index": 0, "type": "struct", "struct": %s, "size": 14},
                  {"name": "segs", "index": 1, "type": "struct", "struct": %s, "size": 14},
                  {"name": "pairs", "array_len": 2, "type": "struct", "struct": {"vmsd_name": "pair", "version": 1,
                    "fields": [{"name": "a", "type": "uint8", "size": 1}, {"name": "b", "type": "uint8", "size": 1}]},
                   "size": %s},
                  {"name": "tmp", "type": "tmp", "vmsd_name": "tmp", "version": 0,
                   "fields": [{"name": "m", "type": "uint64", "size": 8}, {"name": "e", "type": "uint16", "size": 2}],
                   "size": 10},
                  {"name": "ptrs", "index": 0, "type": "struct", "struct": {}, "size": 1},
                  {"name": "ptrs", "index": 1, "type": "nullptr", "size": 1},
                  {"name": "old", "type": "uint64", "size": 1},
                  {"name": "unused", "type": "unused_buffer", "size": 5},
                  {"name": "cfg", "type": "pci config", "size": 256},
                  {"name": "big", "type": "buffer", "size": 10000},
                  {"name": "q", "type": "qtailq", "size": 3},
                  {"name": "caps", "array_len": 2, "type": "capability", "size": 4}],
                 "subsections": [{"vmsd_name": "qdev/sub", "version": 2,
                   "fields": [{"name": "v", "type": "int64", "size": 8}],
                   "subsections": [{"vmsd_name": "%s", "version": 1,
                     "fields": [{"name": "w", "type": "uint32", "size": 4}]}]}]}]}
                """.formatted(SEG, SEG, pairsSize, secondSubsection);
    }

    /** The device's bytes exactly as the vmdesc above describes them. */
    private static StreamBytes deviceBytes(StreamBytes s) {
        byte[] cfg = new byte[256];
        for (int i = 0; i < cfg.length; i++) {
            cfg[i] = (byte) i;
        }
        return s.u8(0xfe).u8(0xfe).be16(0xbeef).be32(-5).be64(-1).be64(Double.doubleToLongBits(1.5)).u8(2)
                .be32(1).be32(2).be32(3)
                .be16(0xf000).u8(0x05).str("seg/x").be32(1).u8(7)
                .be16(0x0010).u8(0x05).str("seg/x").be32(1).u8(8)
                .u8(1).u8(2).u8(3).u8(4)
                .be64(0x8000000000000000L).be16(0x3fff)
                .u8('0').u8('0').u8('0')
                .bytes(new byte[5]).bytes(cfg).bytes(new byte[10000]).bytes(new byte[] {9, 9, 9})
                .str("abc").str("x-ignore-shared")
                .u8(0x05).str("qdev/sub").be32(2).be64(-42)
                .u8(0x05).str("qdev/sub/deeper").be32(1).be32(0xcafe);
    }

    private static byte[] stream(String vmdesc) {
        StreamBytes s = new StreamBytes().header().full(7, "qdev", 2, 3);
        return deviceBytes(s).footer(7).eof().vmdesc(vmdesc).toByteArray();
    }

    private static StreamAnalysis analyze(byte[] s) throws Exception {
        return StreamAnalyzer.analyze(new ByteArrayChannel(s), "qemu-shaped", StreamAnalyzer.Options.defaults());
    }

    @Test
    void decodesEveryShapeQemuWrites() throws Exception {
        StreamAnalysis a = analyze(stream(vmdesc("2", "qdev/sub/deeper")));
        DeviceState d = a.device("qdev", 2).orElseThrow();
        FieldValue.Struct s = d.state();
        assertEquals(new FieldValue.Unsigned(0xfe, 1), s.get("u8"));
        assertEquals(new FieldValue.Signed(-2, 1), s.get("i8"));
        assertEquals(new FieldValue.Unsigned(0xbeef, 2), s.get("u16e"));
        assertEquals(new FieldValue.Signed(-5, 4), s.get("le"));
        assertEquals(new FieldValue.Signed(-1, 8), s.get("t"));
        assertEquals(new FieldValue.Float64(1.5), s.get("f"));
        assertEquals(new FieldValue.Bool(true), s.get("b"));
        assertEquals(new FieldValue.Array(List.of(new FieldValue.Unsigned(1, 4), new FieldValue.Unsigned(2, 4),
                new FieldValue.Unsigned(3, 4))), s.get("regs"));

        List<FieldValue> segs = ((FieldValue.Array) s.get("segs")).elements();
        assertEquals(2, segs.size());
        FieldValue.Struct seg1 = (FieldValue.Struct) segs.get(1);
        assertEquals(new FieldValue.Unsigned(0x10, 2), seg1.get("sel"));
        assertEquals(new FieldValue.Unsigned(8, 1), seg1.subsection("seg/x").state().get("x"));

        List<FieldValue> pairs = ((FieldValue.Array) s.get("pairs")).elements();
        assertEquals(new FieldValue.Unsigned(4, 1), ((FieldValue.Struct) pairs.get(1)).get("b"));
        FieldValue.Struct tmp = (FieldValue.Struct) s.get("tmp");
        assertEquals(new FieldValue.Unsigned(0x8000000000000000L, 8), tmp.get("m"));
        assertEquals(new FieldValue.Array(List.of(new FieldValue.Null(), new FieldValue.Null())), s.get("ptrs"));
        assertEquals(new FieldValue.Null(), s.get("old"));
        assertEquals(5, ((FieldValue.Bytes) s.get("unused")).size());
        assertEquals((byte) 255, ((FieldValue.Bytes) s.get("cfg")).prefix()[255]);
        FieldValue.Bytes big = (FieldValue.Bytes) s.get("big");
        assertEquals(10000, big.size());
        assertEquals(FieldValue.Bytes.MAX_PREFIX, big.prefix().length);
        assertEquals(3, ((FieldValue.Bytes) s.get("q")).size());
        assertEquals(new FieldValue.Array(List.of(new FieldValue.Text("abc"), new FieldValue.Text("x-ignore-shared"))),
                s.get("caps"));

        FieldValue.Subsection sub = s.subsection("qdev/sub");
        assertEquals(2, sub.version());
        assertEquals(new FieldValue.Signed(-42, 8), sub.state().get("v"));
        assertEquals(new FieldValue.Unsigned(0xcafe, 4), sub.state().subsection("qdev/sub/deeper").state().get("w"));
        assertEquals("qdev", d.vmsdName());
        assertEquals(3, d.version());

        // JSON nests subsections under their names, as QEMU's analyze-migration.py does.
        assertEquals(0xcafe, AnalysisJson.state(a).get("devices").get(0).get("state").get("qdev/sub")
                .get("qdev/sub/deeper").get("w").asInt());
    }

    @Test
    void aStructThatDoesNotTakeItsDeclaredSizeIsReportedWithItsPath() {
        AnalysisException e = assertThrows(AnalysisException.class, () -> analyze(stream(vmdesc("3", "qdev/sub/deeper"))));
        assertTrue(e.getMessage().contains("qdev (instance 2).pairs[0] at offset "), e.getMessage());
        assertTrue(e.getMessage().endsWith("the vmdesc says 3 bytes, its fields took 2"), e.getMessage());
    }

    @Test
    void aSubsectionOtherThanTheListedOneIsReported() {
        AnalysisException e = assertThrows(AnalysisException.class, () -> analyze(stream(vmdesc("2", "qdev/sub/other"))));
        assertTrue(e.getMessage().contains("the stream has subsection 'qdev/sub/deeper'"), e.getMessage());
        assertTrue(e.getMessage().contains("where the vmdesc lists 'qdev/sub/other'"), e.getMessage());
    }

    @Test
    void listedSubsectionsMustBeThereAndUnlistedOnesAreNoticed() {
        String one = "{\"page_size\": 4096, \"devices\": [{\"name\": \"d\", \"instance_id\": 0, \"fields\": "
                + "[{\"name\": \"a\", \"type\": \"uint8\", \"size\": 1}]%s}]}";
        String sub = ", \"subsections\": [{\"vmsd_name\": \"d/s\", \"version\": 1, \"fields\": []}]";
        AnalysisException missing = assertThrows(AnalysisException.class, () -> analyze(new StreamBytes().header()
                .full(1, "d", 0, 1).u8(1).footer(1).eof().vmdesc(one.formatted(sub)).toByteArray()));
        assertTrue(missing.getMessage().contains("d: the vmdesc lists subsection 'd/s' but offset 24 holds 0x7e"),
                missing.getMessage());
        AnalysisException unlisted = assertThrows(AnalysisException.class, () -> analyze(new StreamBytes().header()
                .full(1, "d", 0, 1).u8(1).u8(0x05).str("d/s").be32(1).footer(1).eof().vmdesc(one.formatted(""))
                .toByteArray()));
        assertTrue(unlisted.getMessage().contains("a subsection the vmdesc does not list follows"), unlisted.getMessage());
    }

    @Test
    void implausibleDescriptionsFailWithoutAllocatingForThem() {
        String empty = "{\"name\": \"e\", \"type\": \"struct\", \"struct\": {\"fields\": []}, \"size\": 0";
        AnalysisException many = assertThrows(AnalysisException.class, () -> analyze(new StreamBytes().header()
                .full(1, "d", 0, 1).footer(1).eof().vmdesc("{\"page_size\": 4096, \"devices\": [{\"name\": \"d\", "
                        + "\"instance_id\": 0, \"fields\": [" + empty + ", \"array_len\": 16777216}]}]}").toByteArray()));
        assertTrue(many.getMessage().contains("values in the device states"), many.getMessage());

        AnalysisException huge = assertThrows(AnalysisException.class, () -> analyze(new StreamBytes().header()
                .full(1, "d", 0, 1).footer(1).eof().vmdesc("{\"page_size\": 4096, \"devices\": [{\"name\": \"d\", "
                        + "\"instance_id\": 0, \"fields\": [{\"name\": \"b\", \"type\": \"buffer\", "
                        + "\"size\": 1099511627776}]}]}").toByteArray()));
        assertEquals(AnalysisException.Kind.TRUNCATED, huge.kind(), huge.getMessage());
        assertTrue(huge.getMessage().contains("while reading d.b (1099511627776 bytes)"), huge.getMessage());

        AnalysisException noSize = assertThrows(AnalysisException.class, () -> analyze(new StreamBytes().header()
                .full(1, "d", 0, 1).footer(1).eof().vmdesc("{\"page_size\": 4096, \"devices\": [{\"name\": \"d\", "
                        + "\"instance_id\": 0, \"fields\": [{\"name\": \"b\", \"type\": \"uint32\"}]}]}").toByteArray()));
        assertTrue(noSize.getMessage().contains("vmdesc: d.b has no non-negative integer \"size\""), noSize.getMessage());
    }

    @Test
    void anArrayOfPointersSplitAroundItsNullElementIsOneArray() throws Exception {
        String elem = "\"type\": \"struct\", \"struct\": {\"vmsd_name\": \"e\", \"version\": 1, \"fields\": "
                + "[{\"name\": \"v\", \"type\": \"uint8\", \"size\": 1}]}, \"size\": 1";
        String desc = "{\"page_size\": 4096, \"devices\": [{\"name\": \"d\", \"instance_id\": 0, \"fields\": ["
                + "{\"name\": \"p\", \"array_len\": 2, " + elem + "}, {\"name\": \"p\", \"type\": \"nullptr\", \"size\": 1}, "
                + "{\"name\": \"p\", " + elem + "}, {\"name\": \"n\", \"type\": \"uint8\", \"size\": 1}]}]}";
        StreamAnalysis a = analyze(new StreamBytes().header().full(1, "d", 0, 1).u8(1).u8(2).u8('0').u8(4).u8(5)
                .footer(1).eof().vmdesc(desc).toByteArray());
        FieldValue.Struct s = a.device("d", 0).orElseThrow().state();
        List<FieldValue> p = ((FieldValue.Array) s.get("p")).elements();
        assertEquals(4, p.size());
        assertEquals(new FieldValue.Null(), p.get(2));
        assertEquals(new FieldValue.Unsigned(4, 1), ((FieldValue.Struct) p.get(3)).get("v"));
        assertEquals(new FieldValue.Unsigned(5, 1), s.get("n"));
        assertEquals(2, s.fields().size());
    }

    @Test
    void withoutVmdescTheFooterScanIgnoresFooterLookalikesInsideTheData() throws Exception {
        // The data holds 7e 00 00 00 01 followed by 0x99, which cannot start a section: not the footer.
        StreamAnalysis a = analyze(new StreamBytes().header().full(1, "d", 0, 1)
                .u8(0x7e).be32(1).u8(0x99).u8(0x7e).be32(1).eof().toByteArray());
        assertEquals(6, a.device("d", 0).orElseThrow().bytes());
        assertEquals(1, a.devices().size());
    }
}
