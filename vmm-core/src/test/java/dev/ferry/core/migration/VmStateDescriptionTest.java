package dev.ferry.core.migration;

import dev.ferry.core.testing.ByteArrayLoadStream;
import dev.ferry.core.testing.ByteArraySaveStream;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class VmStateDescriptionTest {
    /** QEMU's QEMU_VM_SECTION_FOOTER: what follows a device's state inside a section. */
    private static final int FOOTER = 0x7e;

    /** A device's state, one field per field type. */
    static final class Dev {
        int u8;
        int u16;
        int u32;
        int i32;
        boolean flag;
        long u64;
        long i64;
        byte[] mac = new byte[3];
        String label = "";
        int extra;
        boolean extraNeeded;
    }

    /** A variable-length field written by hand: be16 length, UTF-8 bytes. */
    private static final VmStateField<Dev> LABEL = new VmStateField<>() {
        @Override
        public String name() {
            return "label";
        }

        @Override
        public String type() {
            return "string";
        }

        @Override
        public int size(Dev d) {
            return 2 + d.label.getBytes(StandardCharsets.UTF_8).length;
        }

        @Override
        public int sinceVersion() {
            return 1;
        }

        @Override
        public void save(Dev d, SaveStream out) throws IOException {
            byte[] b = d.label.getBytes(StandardCharsets.UTF_8);
            out.putBe16(b.length);
            out.putBytes(b);
        }

        @Override
        public void load(Dev d, LoadStream in) throws IOException {
            byte[] b = new byte[in.getBe16()];
            in.getBytes(b, 0, b.length);
            d.label = new String(b, StandardCharsets.UTF_8);
        }
    };

    private static final VmStateDescription<Dev> EXTRA = VmStateDescription.<Dev>builder("dev/extra", 2)
            .u32("extra", d -> d.extra, (d, v) -> d.extra = v)
            .build();

    private static VmStateDescription.Builder<Dev> allTypes(String name, int version) {
        return VmStateDescription.<Dev>builder(name, version)
                .u8("u8", d -> d.u8, (d, v) -> d.u8 = v)
                .u16("u16", d -> d.u16, (d, v) -> d.u16 = v)
                .u32("u32", d -> d.u32, (d, v) -> d.u32 = v)
                .i32("i32", d -> d.i32, (d, v) -> d.i32 = v)
                .bool("flag", d -> d.flag, (d, v) -> d.flag = v)
                .u64("u64", d -> d.u64, (d, v) -> d.u64 = v)
                .i64("i64", d -> d.i64, (d, v) -> d.i64 = v)
                .buffer("mac", 3, d -> d.mac, (d, v) -> d.mac = v);
    }

    private static final VmStateDescription<Dev> DEV = allTypes("dev", 1)
            .field(LABEL)
            .subsection(EXTRA, d -> d.extraNeeded)
            .build();

    private static byte[] save(VmStateDescription<Dev> desc, Dev d) throws IOException {
        ByteArraySaveStream out = new ByteArraySaveStream();
        desc.save(d, out);
        return out.toByteArray();
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        for (byte[] p : parts) {
            b.writeBytes(p);
        }
        return b.toByteArray();
    }

    private static byte[] bytes(int... v) {
        byte[] b = new byte[v.length];
        for (int i = 0; i < v.length; i++) {
            b[i] = (byte) v[i];
        }
        return b;
    }

    private static Dev sample() {
        Dev d = new Dev();
        d.u8 = 0x11;
        d.u16 = 0x2233;
        d.u32 = 0x44556677;
        d.i32 = -2;
        d.flag = true;
        d.u64 = 0x0102030405060708L;
        d.i64 = -1;
        d.mac = bytes(9, 10, 11);
        d.label = "nic";
        d.extra = 0xdeadbeef;
        d.extraNeeded = true;
        return d;
    }

    /** The golden encoding of {@link #sample()}'s fields (no subsection). */
    private static final byte[] SAMPLE_FIELDS = bytes(
            0x11,                                     // u8
            0x22, 0x33,                               // u16, big-endian
            0x44, 0x55, 0x66, 0x77,                   // u32
            0xff, 0xff, 0xff, 0xfe,                   // i32 -2
            0x01,                                     // bool true
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // u64
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // i64 -1
            9, 10, 11,                                // buffer[3]
            0x00, 0x03, 'n', 'i', 'c');               // custom field: be16 length, bytes

    /** The golden encoding of the "dev/extra" subsection with extra = 0xdeadbeef. */
    private static final byte[] SAMPLE_EXTRA = bytes(
            0x05,                                     // QEMU_VM_SUBSECTION
            9, 'd', 'e', 'v', '/', 'e', 'x', 't', 'r', 'a', // u8 length, name
            0x00, 0x00, 0x00, 0x02,                   // be32 subsection version
            0xde, 0xad, 0xbe, 0xef);                  // its fields

    @Test
    void goldenBytes() throws IOException {
        assertArrayEquals(concat(SAMPLE_FIELDS, SAMPLE_EXTRA), save(DEV, sample()));
    }

    @Test
    void everyFieldTypeRoundTrips() throws Exception {
        Dev src = new Dev();
        src.u8 = 0xff;
        src.u16 = 0xffff;
        src.u32 = 0xffff_fffe;
        src.i32 = Integer.MIN_VALUE;
        src.flag = true;
        src.u64 = 0xffff_ffff_ffff_fffeL;
        src.i64 = Long.MIN_VALUE;
        src.mac = bytes(0xaa, 0, 0x55);
        src.label = "virtio-net-pci.0 ✓";
        src.extra = 42;
        src.extraNeeded = true;
        byte[] wire = save(DEV, src);

        Dev dst = new Dev();
        ByteArrayLoadStream in = new ByteArrayLoadStream(wire);
        DEV.load(dst, in, 1);
        assertEquals(0, in.remaining(), "everything saved is loaded");
        assertEquals(src.u8, dst.u8);
        assertEquals(src.u16, dst.u16);
        assertEquals(src.u32, dst.u32);
        assertEquals(src.i32, dst.i32);
        assertEquals(src.flag, dst.flag);
        assertEquals(src.u64, dst.u64);
        assertEquals(src.i64, dst.i64);
        assertArrayEquals(src.mac, dst.mac);
        assertEquals(src.label, dst.label);
        assertEquals(42, dst.extra);

        src.flag = false;
        DEV.load(dst, new ByteArrayLoadStream(save(DEV, src)), 1);
        assertFalse(dst.flag);
    }

    @Test
    void subsectionIsOmittedWhenNotNeededAndItsAbsenceIsAccepted() throws Exception {
        Dev src = sample();
        src.extraNeeded = false;
        byte[] wire = save(DEV, src);
        assertArrayEquals(SAMPLE_FIELDS, wire, "no subsection bytes at all");

        Dev dst = new Dev();
        dst.extra = 1234;
        DEV.load(dst, new ByteArrayLoadStream(wire), 1); // the state ends with its last field
        assertEquals(0x44556677, dst.u32);
        assertEquals("nic", dst.label);
        assertEquals(1234, dst.extra, "an absent subsection leaves the destination's value alone");

        // Inside a section the footer follows; the loader must leave it for the engine.
        ByteArrayLoadStream framed = new ByteArrayLoadStream(concat(wire, bytes(FOOTER)));
        DEV.load(new Dev(), framed, 1);
        assertArrayEquals(bytes(FOOTER), framed.rest());
    }

    @Test
    void presentSubsectionIsLoadedAndTheFooterLeftAlone() throws Exception {
        ByteArrayLoadStream in = new ByteArrayLoadStream(concat(SAMPLE_FIELDS, SAMPLE_EXTRA, bytes(FOOTER)));
        Dev dst = new Dev();
        DEV.load(dst, in, 1);
        assertEquals(0xdeadbeef, dst.extra);
        assertArrayEquals(bytes(FOOTER), in.rest());
    }

    @Test
    void unknownSubsectionIsRefusedByName() {
        byte[] bogus = concat(bytes(0x05, 9), "dev/bogus".getBytes(StandardCharsets.US_ASCII), bytes(0, 0, 0, 1, 0, 0, 0, 0));
        MigrationException e = assertThrows(MigrationException.class,
                () -> DEV.load(new Dev(), new ByteArrayLoadStream(concat(SAMPLE_FIELDS, bogus)), 1));
        assertTrue(e.getMessage().contains("'dev/bogus'"), e.getMessage());
        assertTrue(e.getMessage().startsWith("dev:"), "names the description too: " + e.getMessage());
    }

    @Test
    void subsectionFromANewerBuildIsRefused() {
        byte[] newer = SAMPLE_EXTRA.clone();
        newer[14] = 3; // be32 version 3; this build knows dev/extra up to 2
        MigrationException e = assertThrows(MigrationException.class,
                () -> DEV.load(new Dev(), new ByteArrayLoadStream(concat(SAMPLE_FIELDS, newer)), 1));
        assertTrue(e.getMessage().contains("dev/extra") && e.getMessage().contains("version 3"), e.getMessage());
    }

    @Test
    void streamVersionNewerThanKnownIsRefusedBeforeReading() {
        ByteArrayLoadStream in = new ByteArrayLoadStream(SAMPLE_FIELDS);
        MigrationException e = assertThrows(MigrationException.class, () -> DEV.load(new Dev(), in, 2));
        assertTrue(e.getMessage().contains("dev") && e.getMessage().contains("version 2")
                && e.getMessage().contains("up to 1"), e.getMessage());
        assertEquals(0, in.bytesRead());
    }

    @Test
    void streamVersionOlderThanMinimumIsRefused() {
        VmStateDescription<Dev> v3 = allTypes("dev", 3).minimumVersion(2).build();
        MigrationException e = assertThrows(MigrationException.class,
                () -> v3.load(new Dev(), new ByteArrayLoadStream(SAMPLE_FIELDS), 1));
        assertTrue(e.getMessage().contains("version 1") && e.getMessage().contains("oldest loadable version 2"),
                e.getMessage());
        assertThrows(MigrationException.class, () -> v3.load(new Dev(), new ByteArrayLoadStream(SAMPLE_FIELDS), 0));
    }

    @Test
    void fieldsAddedLaterAreSkippedWhenLoadingAnOlderVersion() throws Exception {
        VmStateDescription<Dev> v1 = VmStateDescription.<Dev>builder("dev", 1)
                .u32("u32", d -> d.u32, (d, v) -> d.u32 = v)
                .build();
        VmStateDescription<Dev> v2 = VmStateDescription.<Dev>builder("dev", 2).minimumVersion(1)
                .u32("u32", d -> d.u32, (d, v) -> d.u32 = v)
                .sinceVersion(2)
                .u64("u64", d -> d.u64, (d, v) -> d.u64 = v)
                .build();
        Dev src = sample();

        Dev dst = new Dev();
        dst.u64 = 99;
        ByteArrayLoadStream old = new ByteArrayLoadStream(concat(save(v1, src), bytes(FOOTER)));
        v2.load(dst, old, 1);
        assertEquals(src.u32, dst.u32);
        assertEquals(99, dst.u64, "a field the old stream does not carry keeps its value");
        assertArrayEquals(bytes(FOOTER), old.rest(), "and is not read from the stream");

        byte[] current = save(v2, src);
        assertEquals(12, current.length);
        ByteArrayLoadStream in = new ByteArrayLoadStream(current);
        v2.load(dst, in, 2);
        assertEquals(src.u64, dst.u64);
        assertEquals(0, in.remaining());
    }

    @Test
    void boolOtherThanZeroOrOneIsRefused() {
        byte[] wire = SAMPLE_FIELDS.clone();
        wire[11] = 2; // the bool
        MigrationException e = assertThrows(MigrationException.class,
                () -> DEV.load(new Dev(), new ByteArrayLoadStream(wire), 1));
        assertTrue(e.getMessage().contains("flag") && e.getMessage().contains("2"), e.getMessage());
        assertInstanceOf(IllegalArgumentException.class, e.getCause());
    }

    @Test
    void truncatedInputIsAnEofException() {
        byte[] full = concat(SAMPLE_FIELDS, SAMPLE_EXTRA);
        for (int cut = 0; cut < full.length; cut++) {
            ByteArrayLoadStream in = new ByteArrayLoadStream(Arrays.copyOf(full, cut));
            if (cut == SAMPLE_FIELDS.length) {
                // Ends exactly where an optional subsection would start: a complete state without
                // it (QEMU reads it the same way); the section footer check catches a real cut here.
                Dev d = new Dev();
                d.extra = 5;
                assertLoads(in, d);
                assertEquals(5, d.extra);
                continue;
            }
            int at = cut;
            assertThrows(EOFException.class, () -> DEV.load(new Dev(), in, 1), "cut after " + at + " bytes");
        }
    }

    private static void assertLoads(ByteArrayLoadStream in, Dev d) {
        try {
            DEV.load(d, in, 1);
        } catch (IOException | MigrationException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void describeListsFieldsAndNeededSubsections() {
        Dev d = sample();
        Map<String, Object> desc = DEV.describe(d);
        assertEquals(List.of("vmsd_name", "version", "fields", "subsections"), List.copyOf(desc.keySet()));
        assertEquals("dev", desc.get("vmsd_name"));
        assertEquals(1, desc.get("version"));
        assertEquals(List.of(
                field("u8", "uint8", 1), field("u16", "uint16", 2), field("u32", "uint32", 4),
                field("i32", "int32", 4), field("flag", "bool", 1), field("u64", "uint64", 8),
                field("i64", "int64", 8), field("mac", "buffer", 3), field("label", "string", 5)),
                desc.get("fields"));
        assertEquals(List.of(Map.of("vmsd_name", "dev/extra", "version", 2,
                "fields", List.of(field("extra", "uint32", 4)))), desc.get("subsections"));

        int described = ((List<?>) desc.get("fields")).stream()
                .mapToInt(f -> (Integer) ((Map<?, ?>) f).get("size")).sum();
        assertEquals(SAMPLE_FIELDS.length, described, "described sizes add up to the bytes on the wire");

        d.extraNeeded = false;
        assertFalse(DEV.describe(d).containsKey("subsections"), "a subsection not sent is not described");
    }

    private static Map<String, Object> field(String name, String type, int size) {
        return Map.of("name", name, "type", type, "size", size);
    }

    @Test
    void builderRefusesInconsistentDescriptions() {
        assertThrows(IllegalArgumentException.class, () -> VmStateDescription.<Dev>builder("d", 1)
                .u8("x", d -> d.u8, (d, v) -> d.u8 = v).u16("x", d -> d.u16, (d, v) -> d.u16 = v));
        assertThrows(IllegalArgumentException.class,
                () -> VmStateDescription.<Dev>builder("d", 2).minimumVersion(3).build());
        assertThrows(IllegalArgumentException.class,
                () -> VmStateDescription.<Dev>builder("d", 2).minimumVersion(0).build());
        assertThrows(IllegalArgumentException.class, () -> VmStateDescription.<Dev>builder("d", 1)
                .subsection(EXTRA, d -> true).subsection(EXTRA, d -> false));
        assertThrows(IllegalArgumentException.class, () -> VmStateDescription.<Dev>builder("x".repeat(256), 1));
        VmStateDescription.<Dev>builder("x".repeat(255), 1).build();
    }
}
