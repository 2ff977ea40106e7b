package dev.ferry.migration.analyze;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.migration.testing.StreamBytes;
import dev.ferry.migration.testing.VirtioBlob;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The "virtio" field decoded from bytes written by hand ({@link VirtioBlob}), literal by literal
 * from the layout QEMU's virtio_save writes for a virtio-mmio device: every part,
 * the device part known (virtio-blk's parked requests) and unknown, and hostile blobs — every
 * truncation, bad counts and markers, random corruption — which end in a note and raw bytes,
 * never in an exception. Through the analyzer, text and JSON show it.
 */
@Timeout(20)
class VirtioStateDecoderTest {
    private static final String IDSTR = VirtioBlob.IDSTR;
    private static final long FEATURES = VirtioBlob.FEATURES;
    private static final int DEVICE_PART = VirtioBlob.DEVICE_PART;

    private static byte[] blob(boolean devicePart, boolean mmioStateHeader) {
        return VirtioBlob.build(devicePart, mmioStateHeader, new ArrayList<>());
    }

    private static FieldValue.Struct decode(byte[] b, String vmsd) {
        return VirtioStateDecoder.decode(b, vmsd);
    }

    private static FieldValue.Struct struct(FieldValue v) {
        return (FieldValue.Struct) v;
    }

    private static List<FieldValue> array(FieldValue v) {
        return ((FieldValue.Array) v).elements();
    }

    private static String note(FieldValue.Struct s) {
        FieldValue n = s.get("note");
        return n == null ? null : ((FieldValue.Text) n).value();
    }

    @Test
    void everyPartOfAVirtioBlkStateIsNamed() {
        FieldValue.Struct v = decode(blob(true, true), "virtio-blk");
        assertNull(note(v), () -> note(v));
        assertEquals(new FieldValue.Unsigned(1, 4), v.get("host_features_sel"));
        assertEquals(new FieldValue.Unsigned(0, 4), v.get("guest_page_shift"));
        assertEquals(new FieldValue.Flags(15, 1, List.of("ACKNOWLEDGE", "DRIVER", "DRIVER_OK", "FEATURES_OK")),
                v.get("status"));
        assertEquals(new FieldValue.Flags(1, 1, List.of("QUEUE")), v.get("isr"));
        assertEquals(new FieldValue.Unsigned(1, 2), v.get("queue_sel"));
        assertEquals(new FieldValue.Flags(0x20000244, 4, List.of("SEG_MAX", "BLK_SIZE", "FLUSH", "EVENT_IDX")),
                v.get("guest_features"));
        assertEquals("00 00 00 00 00 02 00 00", ((FieldValue.Bytes) v.get("config")).hex(32));

        List<FieldValue> queues = array(v.get("queues"));
        assertEquals(2, queues.size());
        assertEquals(new FieldValue.Unsigned(256, 4), struct(queues.get(0)).get("num"));
        assertEquals(new FieldValue.Unsigned(4096, 4), struct(queues.get(0)).get("align"));
        assertEquals(new FieldValue.Unsigned(0x10000, 8), struct(queues.get(0)).get("desc"));
        assertEquals(new FieldValue.Unsigned(7, 2), struct(queues.get(0)).get("last_avail_idx"));
        assertEquals(new FieldValue.Unsigned(128, 4), struct(queues.get(1)).get("num"));

        FieldValue.Struct parked = struct(array(struct(v.get("device")).get("parked_requests")).get(0));
        assertEquals(new FieldValue.Unsigned(0, 4), parked.get("queue"));
        assertEquals(new FieldValue.Unsigned(5, 2), parked.get("head"));
        assertEquals(new FieldValue.Unsigned(0x3000, 8), struct(array(parked.get("readable")).get(0)).get("gpa"));
        assertEquals(new FieldValue.Unsigned(1, 4), struct(array(parked.get("writable")).get(0)).get("len"));

        assertEquals(List.of("virtio/64bit_features", "virtio/virtqueues", "virtio/ringsize", "virtio/broken",
                "virtio/extra_state", "virtio/started"), v.subsections().stream().map(FieldValue.Subsection::name).toList());
        FieldValue.Flags f64 = (FieldValue.Flags) v.subsection("virtio/64bit_features").state().get("guest_features");
        assertEquals(FEATURES, f64.value());
        assertTrue(f64.has("VERSION_1") && f64.has("FLUSH"), f64.toString());

        List<FieldValue> vq = array(v.subsection("virtio/virtqueues").state().get("vq"));
        assertEquals(2, vq.size(), "only the queues in use, not 1024");
        assertEquals(new FieldValue.Unsigned(1, 2), struct(vq.get(1)).get("index"));
        assertEquals(new FieldValue.Unsigned(0x22000, 8), struct(vq.get(1)).get("used"));
        assertEquals(2, array(v.subsection("virtio/ringsize").state().get("vq")).size());
        assertEquals(new FieldValue.Bool(true), v.subsection("virtio/broken").state().get("broken"));
        assertEquals(new FieldValue.Bool(true), v.subsection("virtio/started").state().get("started"));

        FieldValue.Struct mmio = v.subsection("virtio/extra_state").state().subsection("virtio_mmio/state").state();
        assertEquals(FEATURES, ((FieldValue.Flags) mmio.get("guest_features")).value());
        List<FieldValue> vqs = array(mmio.get("vqs"));
        assertEquals(2, vqs.size());
        FieldValue.Struct q1 = struct(vqs.get(1));
        assertEquals(new FieldValue.Unsigned(128, 2), q1.get("num"));
        assertEquals(new FieldValue.Bool(true), q1.get("enabled"));
        assertEquals(new FieldValue.Unsigned(0x22000, 8), q1.get("used"));
    }

    @Test
    void anUnknownDevicesPartStopsDecodingAndTheRestIsRaw() {
        byte[] b = blob(false, true);
        FieldValue.Struct v = decode(b, "virtio-net");
        assertEquals(2, array(v.get("queues")).size(), "everything before the device part is decoded");
        assertNull(v.get("device"));
        assertTrue(v.subsections().isEmpty());
        String note = note(v);
        assertTrue(note.startsWith("the device part of 'virtio-net' has a layout only that device knows; decoding "
                + "stopped at byte " + DEVICE_PART + " of " + b.length), note);
        FieldValue.Bytes rest = (FieldValue.Bytes) v.get("undecoded");
        assertEquals(b.length - DEVICE_PART, rest.size());
        assertEquals(0x05, rest.prefix()[0], "the rest starts with the first subsection");
        assertTrue(note(decode(b, null)).contains("vmsd has no name"), note(decode(b, null)));
    }

    @Test
    void everyTruncationEndsInANoteAndRawBytes() {
        List<Integer> ends = new ArrayList<>();
        byte[] b = VirtioBlob.build(true, true, ends);
        for (int len = 0; len < b.length; len++) {
            FieldValue.Struct v = decode(Arrays.copyOf(b, len), "virtio-blk");
            String note = note(v);
            int n = len;
            if (ends.contains(len)) {
                // every subsection is optional: a blob that ends between them is whole
                assertNull(note, note);
                assertEquals(ends.indexOf(len), v.subsections().size());
                continue;
            }
            assertTrue(note != null && note.contains("of " + len), () -> n + ": " + note);
            FieldValue.Bytes rest = (FieldValue.Bytes) v.get("undecoded");
            assertTrue(rest.size() <= len && rest.size() < b.length, () -> n + ": " + rest.size());
        }
    }

    /** Bytes to poke into the hand-built blob, and what the note must say. */
    private static void assertStops(byte[] b, String expected) {
        FieldValue.Struct v = decode(b, "virtio-blk");
        String note = note(v);
        assertTrue(note != null && note.contains(expected), () -> "expected '" + expected + "' in: " + note);
    }

    private static byte[] poke(byte[] b, int at, int... bytes) {
        byte[] c = b.clone();
        for (int i = 0; i < bytes.length; i++) {
            c[at + i] = (byte) bytes[i];
        }
        return c;
    }

    @Test
    void hostileCountsAndMarkersStopWithTheirReason() {
        byte[] b = blob(true, true);
        assertStops(poke(b, 20, 0x7f, 0xff, 0xff, 0xff), "the field ends inside the config space: 2147483647 bytes needed");
        assertStops(poke(b, 32, 0xff, 0xff, 0xff, 0xff), "4294967295 queues; QEMU's virtio has at most 1024");
        assertStops(Arrays.copyOf(poke(b, 32, 0, 0, 0x03, 0xe8), 200),
                "the field ends inside 1000 queues of 18 bytes: 18000 bytes needed, 164 left");
        assertStops(poke(b, DEVICE_PART, 7), "virtio-blk parked-request marker 0x07");
        assertStops(poke(b, DEVICE_PART + 7, 0xff, 0xff, 0xff, 0xff), "segments of the parked request at head 5");
        int sub = DEVICE_PART + 36;
        assertStops(poke(b, sub, 0x06), "0x06 where a subsection (0x05) or the field's end belongs");
        assertStops(poke(b, sub + 2 + "virtio/".length(), 'X'), "unknown subsection 'virtio/X4bit_features'");
        assertStops(poke(b, sub + 2 + "virtio/64bit_features".length() + 3, 2),
                "subsection virtio/64bit_features version 2; QEMU's is version 1");
        assertStops(poke(b, sub + 2, 0x01), "unknown subsection '?irtio/64bit_features'");
        assertStops(Arrays.copyOf(b, sub + 10), "the field ends inside the name of a subsection: 21 bytes needed, 8 left");
        byte[] trailing = Arrays.copyOf(b, b.length + 1);
        trailing[b.length] = 0x42;
        assertStops(trailing, "0x42 where a subsection (0x05) or the field's end belongs");
        // virtio/extra_state without virtio-mmio's own subsection header inside (not QEMU's layout)
        assertStops(blob(true, false), "0x20 where virtio-mmio's subsection virtio_mmio/state (0x05) belongs");
    }

    @Test
    void randomCorruptionNeverThrows() {
        byte[] b = blob(true, true);
        SplittableRandom r = new SplittableRandom(7);
        for (int round = 0; round < 3000; round++) {
            byte[] c = b.clone();
            int flips = 1 + r.nextInt(8);
            for (int i = 0; i < flips; i++) {
                // mostly the header, queues and device part, where counts live
                int at = r.nextInt(r.nextBoolean() ? 120 : c.length);
                c[at] = (byte) r.nextInt(256);
            }
            FieldValue.Struct v = decode(c, "virtio-blk");
            assertTrue(v.get("note") == null || v.get("undecoded") instanceof FieldValue.Bytes);
        }
    }

    private static String vmdesc(String idstr, int size) {
        return """
                {"page_size": 4096, "devices": [{"name": "%s", "instance_id": 0, "vmsd_name": "virtio-blk",
                 "version": 2, "fields": [{"name": "virtio", "type": "virtio", "size": %d}]}]}
                """.formatted(idstr, size);
    }

    private static byte[] stream(String idstr, byte[] field) {
        return new StreamBytes().header().full(3, idstr, 0, 2).bytes(field).footer(3).eof()
                .vmdesc(vmdesc(idstr, field.length)).toByteArray();
    }

    private static StreamAnalysis analyze(byte[] stream) throws Exception {
        return StreamAnalyzer.analyze(new ByteArrayChannel(stream), "virtio", StreamAnalyzer.Options.defaults());
    }

    @Test
    void theAnalyzerShowsTheFieldInTextAndJson() throws Exception {
        StreamAnalysis a = analyze(stream(IDSTR, blob(true, true)));
        FieldValue.Struct v = struct(a.device(IDSTR, 0).orElseThrow().state().get("virtio"));
        assertEquals(15, ((FieldValue.Flags) v.get("status")).value());

        StringWriter text = new StringWriter();
        AnalysisReport.state(a, new PrintWriter(text));
        String t = text.toString();
        assertTrue(t.contains("\n    virtio:\n      host_features_sel = 0x00000001\n"), t);
        assertTrue(t.contains("      status = 0x0f (ACKNOWLEDGE|DRIVER|DRIVER_OK|FEATURES_OK)\n"), t);
        assertTrue(t.contains("      subsection virtio/64bit_features (version 1):\n        guest_features = "
                + "0x0000000120000244 (SEG_MAX|BLK_SIZE|FLUSH|EVENT_IDX|VERSION_1)\n"), t);
        assertTrue(t.contains("        subsection virtio_mmio/state (version 1):\n"), t);
        assertTrue(t.lines().count() < 200, "1024-entry arrays are not printed whole:\n" + t);

        JsonNode j = AnalysisJson.state(a).get("devices").get(0).get("state").get("virtio");
        assertEquals(15, j.get("status").get("value").asInt());
        assertEquals("FEATURES_OK", j.get("status").get("flags").get(3).asText());
        assertEquals(7, j.get("queues").get(0).get("last_avail_idx").asInt());
        assertEquals(5, j.get("device").get("parked_requests").get(0).get("head").asInt());
        assertEquals("VERSION_1", j.get("virtio/64bit_features").get("guest_features").get("flags").get(4).asText());
        assertEquals(1, j.get("virtio/extra_state").get("virtio_mmio/state").get("vqs").get(1).get("index").asInt());
    }

    @Test
    void aStoppedDecodeIsANoteNotAFailedAnalysis() throws Exception {
        byte[] field = poke(blob(true, true), 32, 0xff, 0xff, 0xff, 0xff);
        StreamAnalysis a = analyze(stream(IDSTR, field));
        FieldValue.Struct v = struct(a.device(IDSTR, 0).orElseThrow().state().get("virtio"));
        assertTrue(note(v).contains("(file offset "), note(v));
        StringWriter text = new StringWriter();
        AnalysisReport.state(a, new PrintWriter(text));
        assertTrue(text.toString().contains("      note = \"4294967295 queues; QEMU's virtio has at most 1024; "
                + "decoding stopped at byte 32 of " + field.length), text.toString());
        JsonNode j = AnalysisJson.state(a).get("devices").get(0).get("state").get("virtio");
        assertEquals(field.length - 32, j.get("undecoded").get("size").asInt());
    }

    @Test
    void aVirtioFieldOffVirtioMmioIsLeftRawWithTheReason() throws Exception {
        String pci = "0000:00:04.0/virtio-blk";
        byte[] field = blob(true, true);
        FieldValue.Struct v = struct(analyze(stream(pci, field)).device(pci, 0).orElseThrow().state().get("virtio"));
        assertTrue(note(v).contains("is not on virtio-mmio"), note(v));
        assertEquals(field.length, ((FieldValue.Bytes) v.get("undecoded")).size());
        assertEquals(2, v.fields().size());
    }
}
