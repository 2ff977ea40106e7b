package dev.ferry.core.migration;

import dev.ferry.core.testing.ByteArrayLoadStream;
import dev.ferry.core.testing.ByteArraySaveStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Arrays of structs (QEMU's VMSTATE_STRUCT_ARRAY and VMSTATE_STRUCT_VARRAY_UINT32) and the
 * pre-save and post-load hooks, on a device shaped like a virtio device: a fixed array of
 * interrupt vectors, a count of queues, and that many queues whose packed-ring state travels in a
 * subsection of the queue.
 */
@Timeout(20)
class VmStateStructArrayTest {
    /** QEMU's QEMU_VM_SECTION_FOOTER: what follows a device's state inside a section. */
    private static final int FOOTER = 0x7e;

    /** One queue: an element with a subsection and a post-load check. */
    static final class Queue {
        final List<String> log;
        final int index;
        int num;
        long desc;
        int lastAvail;
        boolean packed;
        int wrap;

        Queue(List<String> log, int index) {
            this.log = log;
            this.index = index;
        }
    }

    /** One interrupt vector: an element without subsections (QEMU describes such arrays compressed). */
    static final class Vector {
        int data;
        long addr;
    }

    static final class Dev {
        final List<String> log = new ArrayList<>();
        int status;
        final Vector[] vectors = {new Vector(), new Vector()};
        int numQueues;
        final List<Queue> queues = new ArrayList<>();
        int tail;
        int extra;
        boolean extraNeeded;
        int elementLookups;

        /** On the destination the queues are allocated as the load reaches them (QEMU's VMS_ALLOC). */
        Queue queue(int i) {
            elementLookups++;
            while (queues.size() <= i) {
                queues.add(new Queue(log, queues.size()));
            }
            return queues.get(i);
        }

        Queue addQueue(int num, long desc, int lastAvail) {
            Queue q = queue(numQueues++);
            q.num = num;
            q.desc = desc;
            q.lastAvail = lastAvail;
            return q;
        }
    }

    private static final VmStateDescription<Queue> PACKED = VmStateDescription.<Queue>builder("vq/packed", 1)
            .u8("wrap", q -> q.wrap, (q, v) -> q.wrap = v)
            .postLoad((q, v) -> q.log.add("post vq/packed " + q.index))
            .build();

    private static final VmStateDescription<Queue> QUEUE = VmStateDescription.<Queue>builder("vq", 1)
            .u16("num", q -> q.num, (q, v) -> q.num = v)
            .u64("desc", q -> q.desc, (q, v) -> q.desc = v)
            .u16("last_avail_idx", q -> q.lastAvail, (q, v) -> {
                q.log.add("field vq " + q.index);
                q.lastAvail = v;
            })
            .subsection(PACKED, q -> q.packed)
            .postLoad((q, v) -> {
                q.log.add("post vq " + q.index);
                if (q.lastAvail > q.num) {
                    throw new MigrationException(String.format("VQ %d size 0x%x < last_avail_idx 0x%x",
                            q.index, q.num, q.lastAvail));
                }
            })
            .build();

    private static final VmStateDescription<Vector> VECTOR = VmStateDescription.<Vector>builder("msix-vector", 1)
            .u32("data", v -> v.data, (v, x) -> v.data = x)
            .u64("addr", v -> v.addr, (v, x) -> v.addr = x)
            .build();

    private static final VmStateDescription<Dev> EXTRA = VmStateDescription.<Dev>builder("testdev/extra", 1)
            .u32("extra", d -> d.extra, (d, v) -> d.extra = v)
            .postLoad((d, v) -> d.log.add("post testdev/extra"))
            .build();

    private static final VmStateDescription<Dev> DEV = VmStateDescription.<Dev>builder("testdev", 1)
            .u8("status", d -> d.status, (d, v) -> d.status = v)
            .structArray("vectors", VECTOR, 2, (d, i) -> d.vectors[i])
            .u32("num_queues", d -> d.numQueues, (d, v) -> {
                d.log.add("field num_queues");
                d.numQueues = v;
            })
            .structVarray("vqs", QUEUE, d -> d.numQueues, 8, Dev::queue)
            .u8("tail", d -> d.tail, (d, v) -> {
                d.log.add("field tail");
                d.tail = v;
            })
            .subsection(EXTRA, d -> d.extraNeeded)
            .postLoad((d, v) -> {
                d.log.add("post testdev");
                if (d.status == 0xff) {
                    throw new IllegalArgumentException("status 0xff is the reset value");
                }
            })
            .build();

    private static Dev source() {
        Dev d = new Dev();
        d.status = 0x0f;
        d.vectors[0].data = 0x11;
        d.vectors[0].addr = 0xfee0_0000L;
        d.vectors[1].data = 0x22;
        d.vectors[1].addr = 0xfee0_1000L;
        d.addQueue(256, 0x1000, 3);
        Queue q1 = d.addQueue(128, 0x2000, 7);
        q1.packed = true;
        q1.wrap = 1;
        d.addQueue(64, 0x3000, 0);
        d.tail = 0x5a;
        d.extra = 0xcafe;
        d.extraNeeded = true;
        return d;
    }

    private static <T> byte[] save(VmStateDescription<T> desc, T obj) throws IOException {
        ByteArraySaveStream out = new ByteArraySaveStream();
        desc.save(obj, out);
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

    private static byte[] str(String s) {
        byte[] b = s.getBytes(StandardCharsets.US_ASCII);
        return concat(bytes(b.length), b);
    }

    @Test
    void goldenBytesAreTheElementsBackToBackWithTheirSubsections() throws IOException {
        byte[] expected = concat(
                bytes(0x0f),                                               // status
                bytes(0, 0, 0, 0x11, 0, 0, 0, 0, 0xfe, 0xe0, 0, 0),         // vectors[0]: data, addr
                bytes(0, 0, 0, 0x22, 0, 0, 0, 0, 0xfe, 0xe0, 0x10, 0),      // vectors[1]; no length before either
                bytes(0, 0, 0, 3),                                          // num_queues
                bytes(1, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 3),               // vqs[0]: num, desc, last_avail_idx
                bytes(0, 0x80, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 7),            // vqs[1] ...
                bytes(0x05), str("vq/packed"), bytes(0, 0, 0, 1), bytes(1), // ... and its subsection
                bytes(0, 0x40, 0, 0, 0, 0, 0, 0, 0x30, 0, 0, 0),            // vqs[2]
                bytes(0x5a),                                                // tail
                bytes(0x05), str("testdev/extra"), bytes(0, 0, 0, 1), bytes(0, 0, 0xca, 0xfe));
        assertArrayEquals(expected, save(DEV, source()));
    }

    @Test
    void fixedAndCountedArraysRoundTripWithSubsectionsInsideElements() throws Exception {
        Dev src = source();
        ByteArrayLoadStream in = new ByteArrayLoadStream(concat(save(DEV, src), bytes(FOOTER)));
        Dev dst = new Dev();
        DEV.load(dst, in, 1);
        assertArrayEquals(bytes(FOOTER), in.rest(), "the footer is left for the engine");

        assertEquals(0x22, dst.vectors[1].data);
        assertEquals(0xfee0_1000L, dst.vectors[1].addr);
        assertEquals(3, dst.queues.size(), "the count from num_queues allocated three queues");
        for (int i = 0; i < 3; i++) {
            Queue s = src.queues.get(i);
            Queue d = dst.queues.get(i);
            assertEquals(s.num, d.num);
            assertEquals(s.desc, d.desc);
            assertEquals(s.lastAvail, d.lastAvail);
        }
        assertEquals(1, dst.queues.get(1).wrap, "vqs[1]'s subsection was loaded into vqs[1]");
        assertEquals(0x5a, dst.tail);
        assertEquals(0xcafe, dst.extra);

        // The same queues in a fixed-size array (VMSTATE_STRUCT_ARRAY): the same bytes, no count.
        VmStateDescription<Dev> fixed = VmStateDescription.<Dev>builder("fixed", 1)
                .structArray("vqs", QUEUE, 3, Dev::queue)
                .u8("tail", d -> d.tail, (d, v) -> d.tail = v)
                .build();
        byte[] wire = save(fixed, src);
        assertEquals(3 * 12 + (1 + 1 + 9 + 4 + 1) + 1, wire.length);
        Dev fdst = new Dev();
        ByteArrayLoadStream fin = new ByteArrayLoadStream(concat(wire, bytes(FOOTER)));
        fixed.load(fdst, fin, 1);
        assertArrayEquals(bytes(FOOTER), fin.rest());
        assertEquals(List.of(256, 128, 64), fdst.queues.stream().map(q -> q.num).toList());
        assertEquals(1, fdst.queues.get(1).wrap);
        assertEquals(0x5a, fdst.tail);
    }

    @Test
    void postLoadsRunOnceEachInsideOutAndTheDevicesLast() throws Exception {
        Dev dst = new Dev();
        DEV.load(dst, new ByteArrayLoadStream(save(DEV, source())), 1);
        assertEquals(List.of(
                "field num_queues",
                "field vq 0", "post vq 0",
                "field vq 1", "post vq/packed 1", "post vq 1",   // the element's subsection ends first
                "field vq 2", "post vq 2",
                "field tail",
                "post testdev/extra",                            // the device's subsection, then the device
                "post testdev"), dst.log);
    }

    @Test
    void aFailingPostLoadNamesItsDescription() throws Exception {
        Dev bad = source();
        bad.status = 0xff;
        MigrationException e = assertThrows(MigrationException.class,
                () -> DEV.load(new Dev(), new ByteArrayLoadStream(save(DEV, bad)), 1));
        assertEquals("testdev: status 0xff is the reset value", e.getMessage());
        assertInstanceOf(IllegalArgumentException.class, e.getCause());

        Dev badQueue = source();
        badQueue.queues.get(2).lastAvail = 65;
        e = assertThrows(MigrationException.class,
                () -> DEV.load(new Dev(), new ByteArrayLoadStream(save(DEV, badQueue)), 1));
        assertEquals("testdev: vqs[2]: vq: VQ 2 size 0x40 < last_avail_idx 0x41", e.getMessage());

        VmStateDescription<Queue> alone = VmStateDescription.<Queue>builder("virtio-blk", 1)
                .u16("num", q -> q.num, (q, v) -> q.num = v)
                .postLoad((q, v) -> {
                    throw new MigrationException("virtio-blk: already named");
                })
                .build();
        e = assertThrows(MigrationException.class,
                () -> alone.load(new Queue(new ArrayList<>(), 0), new ByteArrayLoadStream(bytes(0, 1)), 1));
        assertEquals("virtio-blk: already named", e.getMessage(), "a message that names it is not named twice");
    }

    @Test
    void aPostLoadSeesTheStreamVersion() throws Exception {
        int[] seen = new int[1];
        VmStateDescription<Vector> v3 = VmStateDescription.<Vector>builder("v", 3).minimumVersion(1)
                .u32("data", v -> v.data, (v, x) -> v.data = x)
                .sinceVersion(3)
                .u64("addr", v -> v.addr, (v, x) -> v.addr = x)
                .postLoad((v, version) -> seen[0] = version)
                .build();
        v3.load(new Vector(), new ByteArrayLoadStream(bytes(0, 0, 0, 1)), 2);
        assertEquals(2, seen[0]);
    }

    @Test
    void preSaveRunsBeforeTheFieldsAndBeforeNeededIsAsked() throws Exception {
        List<String> log = new ArrayList<>();
        VmStateDescription<Queue> sub = VmStateDescription.<Queue>builder("q/packed", 1)
                .u8("wrap", q -> q.wrap, (q, v) -> q.wrap = v)
                .preSave(q -> log.add("pre q/packed"))
                .build();
        VmStateDescription<Queue> q = VmStateDescription.<Queue>builder("q", 1)
                .u16("last_avail_idx", x -> {
                    log.add("get last_avail_idx");
                    return x.lastAvail;
                }, (x, v) -> x.lastAvail = v)
                .subsection(sub, x -> x.packed)
                .preSave(x -> {
                    log.add("pre q");
                    x.lastAvail = 42; // the device thread's index, brought into the migrated state
                    x.packed = true;
                })
                .build();
        byte[] wire = save(q, new Queue(log, 0));
        assertEquals(List.of("pre q", "get last_avail_idx", "pre q/packed"), log);
        assertArrayEquals(concat(bytes(0, 42, 0x05), str("q/packed"), bytes(0, 0, 0, 1, 0)), wire);
    }

    @Test
    void aCountAboveTheMaximumIsRefusedBeforeAnyElementIsTouched() throws Exception {
        Dev src = source();
        byte[] wire = save(DEV, src);
        int countAt = 1 + 2 * 12; // status, two vectors
        for (long hostile : new long[] {9, 0x8000_0000L, 0xffff_ffffL}) {
            byte[] w = wire.clone();
            w[countAt] = (byte) (hostile >>> 24);
            w[countAt + 1] = (byte) (hostile >>> 16);
            w[countAt + 2] = (byte) (hostile >>> 8);
            w[countAt + 3] = (byte) hostile;
            Dev dst = new Dev();
            ByteArrayLoadStream in = new ByteArrayLoadStream(w);
            MigrationException e = assertThrows(MigrationException.class, () -> DEV.load(dst, in, 1));
            assertEquals("testdev: vqs: the stream says " + hostile + " elements, more than the 8 this build accepts",
                    e.getMessage());
            assertEquals(0, dst.elementLookups, "no element was allocated");
            assertEquals(countAt + 4, in.bytesRead(), "nothing after the count was read");
        }
        assertThrows(IllegalStateException.class, () -> {
            Dev tooMany = source();
            tooMany.numQueues = 9;
            save(DEV, tooMany);
        }, "the source refuses to send what no destination accepts");
    }

    @Test
    void everyTruncationFailsWithEofOrMigrationException() throws Exception {
        byte[] full = save(DEV, source());
        int lastSubsection = full.length - (1 + 1 + "testdev/extra".length() + 4 + 4);
        for (int cut = 0; cut < full.length; cut++) {
            ByteArrayLoadStream in = new ByteArrayLoadStream(Arrays.copyOf(full, cut));
            try {
                DEV.load(new Dev(), in, 1);
                // Only where the device's own optional subsection would start is a cut a complete
                // state (the section footer check catches it); nowhere inside the arrays.
                assertEquals(lastSubsection, cut, "a state cut after " + cut + " bytes loaded");
            } catch (EOFException | MigrationException expected) {
                // the cut is noticed
            }
        }
    }

    @Test
    void aNextElementThatBeginsLikeASubsectionHeaderIsReadAsTheElement() throws Exception {
        Dev src = new Dev();
        src.addQueue(16, 0, 1);
        // 05 09 'v' 'q' 00 ...: the marker, the length of "vq/packed" and its first two characters,
        // then neither its third nor the '/' of QEMU's "vq/..." naming rule: the loader must look
        // five bytes ahead and give them back. (Bytes that spell 05 len "vq/..." in full would be
        // taken as a subsection, by QEMU too: the format cannot tell them apart.)
        src.addQueue(0x0509, 0x7671_0070_0000_0000L, 0x0500);
        src.addQueue(0x0502, 0x7671_0000_0000_0000L, 0); // 05 02 'v' 'q' : a two-byte name, not ours
        src.tail = 0x05;                                 // and the field after the array is 0x05,
        src.extraNeeded = true;                          // followed by the device's subsection
        byte[] wire = save(DEV, src);
        ByteArrayLoadStream in = new ByteArrayLoadStream(concat(wire, bytes(FOOTER)));
        Dev dst = new Dev();
        DEV.load(dst, in, 1);
        assertArrayEquals(bytes(FOOTER), in.rest());
        assertEquals(3, dst.queues.size());
        assertEquals(0x0509, dst.queues.get(1).num);
        assertEquals(0x7671_0070_0000_0000L, dst.queues.get(1).desc);
        assertEquals(0x0502, dst.queues.get(2).num);
        assertEquals(0x05, dst.tail);
    }

    @Test
    void anUnknownSubsectionOfAnElementFailsTheLoad() throws Exception {
        Dev src = new Dev();
        src.addQueue(16, 0, 1);
        byte[] fields = save(DEV, src);
        int afterQueue = 1 + 24 + 4 + 12;
        for (String bogus : new String[] {"vq/bogus", "vq/bogus!"}) { // other length; same length as vq/packed
            byte[] wire = concat(Arrays.copyOf(fields, afterQueue), bytes(0x05), str(bogus), bytes(0, 0, 0, 1),
                    Arrays.copyOfRange(fields, afterQueue, fields.length), bytes(FOOTER));
            Dev dst = new Dev();
            MigrationException e = assertThrows(MigrationException.class,
                    () -> DEV.load(dst, new ByteArrayLoadStream(wire), 1));
            assertTrue(e.getMessage().startsWith("testdev: the stream does not match this description: "),
                    e.getMessage());
            assertFalse(dst.log.contains("post testdev"), "the device's post-load does not see a broken state");
        }
    }

    @Test
    void siblingSubsectionsAfterANestedOneAreLoaded() throws Exception {
        VmStateDescription<Dev> deeper = VmStateDescription.<Dev>builder("d/a/x", 1)
                .u8("tail", d -> d.tail, (d, v) -> d.tail = v).build();
        VmStateDescription<Dev> a = VmStateDescription.<Dev>builder("d/a", 1)
                .u8("status", d -> d.status, (d, v) -> d.status = v)
                .subsection(deeper, d -> true).build();
        VmStateDescription<Dev> b = VmStateDescription.<Dev>builder("d/b", 1)
                .u32("extra", d -> d.extra, (d, v) -> d.extra = v).build();
        VmStateDescription<Dev> d = VmStateDescription.<Dev>builder("d", 1)
                .u32("num_queues", x -> x.numQueues, (x, v) -> x.numQueues = v)
                .subsection(a, x -> true)
                .subsection(b, x -> true).build();
        Dev src = source();
        Dev dst = new Dev();
        ByteArrayLoadStream in = new ByteArrayLoadStream(concat(save(d, src), bytes(FOOTER)));
        d.load(dst, in, 1);
        assertEquals(0x0f, dst.status);
        assertEquals(0x5a, dst.tail);
        assertEquals(0xcafe, dst.extra, "d/b follows d/a's own subsection and belongs to d");
        assertArrayEquals(bytes(FOOTER), in.rest());
    }

    @Test
    void describeFollowsQemuForStructArrays() throws Exception {
        Dev src = source();
        byte[] wire = save(DEV, src);
        Map<String, Object> desc = DEV.describe(src);
        List<?> fields = (List<?>) desc.get("fields");
        assertEquals(List.of("status", "vectors", "num_queues", "vqs", "vqs", "vqs", "tail"),
                fields.stream().map(f -> ((Map<?, ?>) f).get("name")).toList());

        // Elements without subsections: one entry for all, "array_len" (vmsd_can_compress).
        Map<?, ?> vectors = (Map<?, ?>) fields.get(1);
        assertEquals(List.of("name", "array_len", "type", "struct", "size"), List.copyOf(vectors.keySet()));
        assertEquals(2, vectors.get("array_len"));
        assertEquals("struct", vectors.get("type"));
        assertEquals(12, vectors.get("size"), "one element's bytes");
        assertEquals(Map.of("vmsd_name", "msix-vector", "version", 1, "fields", List.of(
                Map.of("name", "data", "type", "uint32", "size", 4),
                Map.of("name", "addr", "type", "uint64", "size", 8))), vectors.get("struct"));

        // Elements with subsections: one entry each, "index", each with the subsections it sent.
        Map<?, ?> vq1 = (Map<?, ?>) fields.get(4);
        assertEquals(List.of("name", "index", "type", "struct", "size"), List.copyOf(vq1.keySet()));
        assertEquals(1, vq1.get("index"));
        assertEquals(12 + 1 + 1 + 9 + 4 + 1, vq1.get("size"), "fields, subsection header and its field");
        Map<?, ?> vq1Struct = (Map<?, ?>) vq1.get("struct");
        assertEquals(List.of(Map.of("vmsd_name", "vq/packed", "version", 1,
                "fields", List.of(Map.of("name", "wrap", "type", "uint8", "size", 1)))), vq1Struct.get("subsections"));
        assertFalse(((Map<?, ?>) ((Map<?, ?>) fields.get(3)).get("struct")).containsKey("subsections"));
        assertEquals(0, ((Map<?, ?>) fields.get(3)).get("index"));

        assertEquals(wire.length, VmStateDescription.describedSize(desc), "the vmdesc accounts for every byte");
    }

    @Test
    void describeWritesNoEntryForNoElementsAndNoIndexForOne() {
        Dev d = new Dev();
        List<?> none = (List<?>) DEV.describe(d).get("fields");
        assertEquals(List.of("status", "vectors", "num_queues", "tail"),
                none.stream().map(f -> ((Map<?, ?>) f).get("name")).toList());
        d.addQueue(8, 0, 0).packed = true;
        Map<?, ?> one = (Map<?, ?>) ((List<?>) DEV.describe(d).get("fields")).get(3);
        assertEquals(List.of("name", "type", "struct", "size"), List.copyOf(one.keySet()));
        assertNull(one.get("index"));
    }

    @Test
    void elementsOfDifferentSizesAreDescribedOneByOne() throws Exception {
        final class Blob {
            byte[] b;
        }
        VmStateDescription<Blob> blob = VmStateDescription.<Blob>builder("blob", 1)
                .vbuffer("b", 64, x -> x.b, (x, v) -> x.b = v).build();
        Blob[] blobs = {new Blob(), new Blob()};
        blobs[0].b = new byte[3];
        blobs[1].b = new byte[5];
        VmStateDescription<Blob[]> arr = VmStateDescription.<Blob[]>builder("blobs", 1)
                .structArray("all", blob, 2, (a, i) -> a[i]).build();
        List<?> fields = (List<?>) arr.describe(blobs).get("fields");
        assertEquals(2, fields.size(), "QEMU would write one compressed entry; it would describe blob 1 wrongly");
        assertEquals(List.of(7, 9), fields.stream().map(f -> ((Map<?, ?>) f).get("size")).toList());
        assertEquals(save(arr, blobs).length, VmStateDescription.describedSize(arr.describe(blobs)));

        blobs[1].b = new byte[3];
        fields = (List<?>) arr.describe(blobs).get("fields");
        assertEquals(1, fields.size(), "equal elements compress");
        assertEquals(2, ((Map<?, ?>) fields.get(0)).get("array_len"));
    }

    @Test
    void builderRefusesANegativeMaximumAndDuplicateNames() {
        assertThrows(IllegalArgumentException.class, () -> VmStateDescription.<Dev>builder("d", 1)
                .structVarray("vqs", QUEUE, d -> d.numQueues, -1, Dev::queue));
        assertThrows(IllegalArgumentException.class, () -> VmStateDescription.<Dev>builder("d", 1)
                .u8("vqs", d -> d.status, (d, v) -> d.status = v)
                .structVarray("vqs", QUEUE, d -> d.numQueues, 8, Dev::queue));
    }

    @Test
    void aLone0x05EndingTheStateAfterSuchAnArrayFailsInsteadOfLosingTheFooter() throws Exception {
        // The one case a one-byte peek cannot decide: vqs[0] may be followed by its subsection,
        // and the last byte of the state is 0x05. Telling takes the footer's first byte ahead;
        // the state ends without reading it, and the engine would miss its footer.
        Dev src = new Dev();
        src.addQueue(16, 0, 1);
        src.tail = 0x05;
        byte[] wire = concat(save(DEV, src), bytes(FOOTER, 0, 0, 0, 1));
        MigrationException e = assertThrows(MigrationException.class,
                () -> DEV.load(new Dev(), new ByteArrayLoadStream(wire), 1));
        assertEquals("testdev: the stream does not match this description: 1 byte taken ahead to tell a "
                + "subsection from the next field were not part of the state", e.getMessage());

        src.extraNeeded = true; // followed by the device's subsection instead: decided, loaded
        src.extra = 0xcafe;
        Dev dst = new Dev();
        DEV.load(dst, new ByteArrayLoadStream(concat(save(DEV, src), bytes(FOOTER))), 1);
        assertEquals(0x05, dst.tail);
        assertEquals(0xcafe, dst.extra);
    }
}
