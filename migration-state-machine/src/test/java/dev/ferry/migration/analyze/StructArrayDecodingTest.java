package dev.ferry.migration.analyze;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.core.migration.VmStateDescription;
import dev.ferry.core.testing.ByteArraySaveStream;
import dev.ferry.migration.testing.StreamBytes;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A device section saved by Ferry's {@link VmStateDescription} with arrays of structs, decoded by
 * the analyzer from the vmdesc {@code describe()} wrote: a compressed array ("array_len"), an array
 * whose elements carry subsections (one entry per element, "index"), and the caps against a vmdesc
 * that claims more than the stream holds or nests without end.
 */
@Timeout(20)
class StructArrayDecodingTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    static final class Queue {
        int num;
        long desc;
        boolean packed;
        int wrap;
    }

    static final class Vector {
        int data;
    }

    static final class Dev {
        final Vector[] vectors = {new Vector(), new Vector(), new Vector()};
        int numQueues;
        final List<Queue> queues = new ArrayList<>();
        int tail;

        Queue queue(int i) {
            while (queues.size() <= i) {
                queues.add(new Queue());
            }
            return queues.get(i);
        }
    }

    private static final VmStateDescription<Queue> PACKED = VmStateDescription.<Queue>builder("vq/packed", 1)
            .u8("wrap", q -> q.wrap, (q, v) -> q.wrap = v).build();
    private static final VmStateDescription<Queue> QUEUE = VmStateDescription.<Queue>builder("vq", 2)
            .u16("num", q -> q.num, (q, v) -> q.num = v)
            .u64("desc", q -> q.desc, (q, v) -> q.desc = v)
            .subsection(PACKED, q -> q.packed)
            .build();
    private static final VmStateDescription<Vector> VECTOR = VmStateDescription.<Vector>builder("vector", 1)
            .u32("data", v -> v.data, (v, x) -> v.data = x).build();
    private static final VmStateDescription<Dev> DEV = VmStateDescription.<Dev>builder("virtio-test", 3)
            .structArray("vectors", VECTOR, 3, (d, i) -> d.vectors[i])
            .u32("num_queues", d -> d.numQueues, (d, v) -> d.numQueues = v)
            .structVarray("vqs", QUEUE, d -> d.numQueues, 16, Dev::queue)
            .u8("tail", d -> d.tail, (d, v) -> d.tail = v)
            .build();

    private static Dev device(int queues) {
        Dev d = new Dev();
        for (int i = 0; i < 3; i++) {
            d.vectors[i].data = 0x100 + i;
        }
        for (int i = 0; i < queues; i++) {
            Queue q = d.queue(i);
            q.num = 256 >> i;
            q.desc = 0x1000L * (i + 1);
            q.packed = i % 2 == 1;
            q.wrap = i;
        }
        d.numQueues = queues;
        d.tail = 0x5a;
        return d;
    }

    /** A stream holding {@code d} as Ferry's source writes it: FULL section, footer, EOF, vmdesc. */
    private static byte[] stream(Dev d, java.util.function.Consumer<ObjectNode> editDescription) throws Exception {
        ByteArraySaveStream data = new ByteArraySaveStream();
        DEV.save(d, data);
        Map<String, Object> device = new LinkedHashMap<>();
        device.put("name", "virtio-test");
        device.put("instance_id", 0);
        device.putAll(DEV.describe(d));
        ObjectNode vmdesc = JSON.createObjectNode();
        vmdesc.put("page_size", 4096);
        vmdesc.putArray("devices").add(JSON.valueToTree(device));
        editDescription.accept((ObjectNode) vmdesc.get("devices").get(0));
        return new StreamBytes().header().full(3, "virtio-test", 0, DEV.version()).bytes(data.toByteArray()).footer(3)
                .eof().vmdesc(JSON.writeValueAsString(vmdesc)).toByteArray();
    }

    private static StreamAnalysis analyze(byte[] s) throws Exception {
        return StreamAnalyzer.analyze(new ByteArrayChannel(s), "ferry", StreamAnalyzer.Options.defaults());
    }

    private static FieldValue.Struct state(byte[] s) throws Exception {
        return analyze(s).device("virtio-test", 0).orElseThrow().state();
    }

    @Test
    void decodesCompressedAndPerElementStructArrays() throws Exception {
        FieldValue.Struct s = state(stream(device(3), d -> { }));

        List<FieldValue> vectors = ((FieldValue.Array) s.get("vectors")).elements();
        assertEquals(3, vectors.size(), "array_len 3 unfolded");
        assertEquals(new FieldValue.Unsigned(0x102, 4), ((FieldValue.Struct) vectors.get(2)).get("data"));

        assertEquals(new FieldValue.Unsigned(3, 4), s.get("num_queues"));
        List<FieldValue> vqs = ((FieldValue.Array) s.get("vqs")).elements();
        assertEquals(3, vqs.size(), "three entries with index 0, 1, 2 are one array");
        FieldValue.Struct vq1 = (FieldValue.Struct) vqs.get(1);
        assertEquals(new FieldValue.Unsigned(128, 2), vq1.get("num"));
        assertEquals(new FieldValue.Unsigned(0x2000, 8), vq1.get("desc"));
        assertEquals(new FieldValue.Unsigned(1, 1), vq1.subsection("vq/packed").state().get("wrap"));
        assertNull(((FieldValue.Struct) vqs.get(2)).subsection("vq/packed"), "vqs[2] sent none");
        assertEquals(new FieldValue.Unsigned(0x5a, 1), s.get("tail"), "the field after the array is in its place");

        // JSON as analyze-migration.py prints it: the array as a list, the subsection under its name.
        ObjectNode j = AnalysisJson.state(analyze(stream(device(3), d -> { })));
        assertEquals(1, j.get("devices").get(0).get("state").get("vqs").get(1).get("vq/packed").get("wrap").asInt());
    }

    @Test
    void aSingleElementIsAStructAndNoElementsNoField() throws Exception {
        FieldValue.Struct one = state(stream(device(1), d -> { }));
        FieldValue.Struct vq0 = assertInstanceOf(FieldValue.Struct.class, one.get("vqs"));
        assertEquals(new FieldValue.Unsigned(256, 2), vq0.get("num"));

        FieldValue.Struct none = state(stream(device(0), d -> { }));
        assertNull(none.get("vqs"));
        assertEquals(new FieldValue.Unsigned(0x5a, 1), none.get("tail"));
    }

    @Test
    void aCompressedArrayLongerThanTheRestOfTheFileFailsBeforeItsFirstElement() {
        AnalysisException e = assertThrows(AnalysisException.class, () -> analyze(stream(device(2), d ->
                ((ObjectNode) d.get("fields").get(0)).put("array_len", 1 << 24))));
        assertEquals(AnalysisException.Kind.TRUNCATED, e.kind(), e.getMessage());
        assertTrue(e.getMessage().contains("virtio-test.vectors (16777216 elements of 4 bytes)"), e.getMessage());
    }

    @Test
    void aVmdescThatMisplacesAnElementsSubsectionNamesTheElement() {
        // The vmdesc says vqs[0] sent its subsection; the stream has it after vqs[1].
        AnalysisException e = assertThrows(AnalysisException.class, () -> analyze(stream(device(2), d -> {
            ObjectNode vq0 = (ObjectNode) d.get("fields").get(2).get("struct");
            vq0.set("subsections", d.get("fields").get(3).get("struct").get("subsections"));
        })));
        assertTrue(e.getMessage().contains("virtio-test.vqs[0]: the vmdesc lists subsection 'vq/packed'"),
                e.getMessage());
    }

    @Test
    void nestingBeyondTheCapIsRefusedWithItsPath() throws Exception {
        ObjectNode inner = JSON.createObjectNode();
        inner.put("vmsd_name", "n").putArray("fields");
        for (int i = 0; i < VmStateDecoder.MAX_DEPTH + 1; i++) {
            ObjectNode outer = JSON.createObjectNode();
            outer.put("vmsd_name", "n");
            ObjectNode f = outer.putArray("fields").addObject();
            f.put("name", "s").put("type", "struct").set("struct", inner);
            f.put("size", 0);
            inner = outer;
        }
        ObjectNode device = inner.put("name", "d").put("instance_id", 0);
        ObjectNode vmdesc = JSON.createObjectNode().put("page_size", 4096);
        vmdesc.putArray("devices").add(device);
        AnalysisException e = assertThrows(AnalysisException.class, () -> analyze(new StreamBytes().header()
                .full(1, "d", 0, 1).footer(1).eof().vmdesc(JSON.writeValueAsString(vmdesc)).toByteArray()));
        assertTrue(e.getMessage().contains("vmdesc: d" + ".s".repeat(VmStateDecoder.MAX_DEPTH + 1)
                + " nests structs and subsections more than " + VmStateDecoder.MAX_DEPTH + " deep"), e.getMessage());
    }
}
