package dev.ferry.migration.analyze;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.migration.stream.Qevm;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Decodes a device section's bytes by its vmdesc entry, the way QEMU's
 * {@code vmstate_save_state_v} described them while writing (migration/vmstate.c):
 * <pre>
 * struct      {"vmsd_name", "version", "fields": [field...], ["subsections": [struct...]]}
 * field       {"name", "type", "size", ["array_len": n | "index": i], ["struct": struct]}
 *               size        bytes of ONE element as written (for "struct": all its fields and subsections)
 *               array_len   n elements, all described by this one entry (QEMU "compressed" the array)
 *               index       one entry per element, i = 0, 1, ... (arrays QEMU could not compress)
 *               (entries that share a name are one array, in order: QEMU 9.1+ splits an array of
 *                pointers into compressed runs, single entries and "nullptr" entries around NULLs)
 * wire        fields in order, each element's bytes; then per listed subsection:
 *               0x05 | u8 len | name | be32 version | the subsection's fields and subsections
 * </pre>
 * Types: "uint8".."uint64" and their "equal" variants unsigned big-endian of {@code size} bytes;
 * "int8".."int64", "int32 le" (big-endian despite the name: "le" means less-or-equal), "int32
 * equal", "int64 equal", "timer" (be64 expiry, -1 when not armed) signed; "bool" one byte;
 * "float64" be64 IEEE bits; "struct" a nested struct; "vstruct" and "tmp" nested structs whose
 * fields QEMU wrote into the field object itself; "nullptr" (and 7.2's misnamed "uint64" of
 * size 1) the byte '0' standing for a NULL pointer; "capability" u8 len + name; "virtio" a
 * virtio device's state, {@code size} bytes decoded by {@link VirtioStateDecoder}; everything else
 * ("buffer", "unused_buffer", "bitmap", "pci config", "qtailq", ...) {@code size} raw bytes.
 *
 * Arrays of structs (QEMU's VMSTATE_STRUCT_ARRAY, VMSTATE_STRUCT_VARRAY_*; Ferry's
 * {@code structArray}/{@code structVarray}) have no length on the wire; the vmdesc carries it:
 * <pre>
 * {"name": "vqs", "array_len": 4, "type": "struct", "struct": {"vmsd_name": "vq", ...}, "size": 12}
 *     elements without subsections: one entry for all, "size" is one element's bytes
 * {"name": "vqs", "index": 0, "type": "struct", "struct": {... "subsections": [...]}, "size": 28}
 * {"name": "vqs", "index": 1, "type": "struct", "struct": {...}, "size": 12}    ...
 *     elements whose subsections may come and go: one entry per element, each with its own
 *     subsections and size; one element alone has neither "array_len" nor "index"
 * </pre>
 *
 * <p>Every nested struct must take exactly the size the vmdesc recorded for it, every listed
 * subsection must be where the vmdesc says, and the number of values is capped, so a vmdesc that
 * does not describe the stream fails with the field's path instead of decoding garbage. Caps
 * against a hostile vmdesc: {@link #MAX_ARRAY_LEN} elements per entry, a compressed array's
 * {@code array_len × size} must fit in the rest of the file before an element is decoded,
 * {@link #MAX_VALUES} values in all, and structs and subsections nest at most {@link #MAX_DEPTH}
 * deep. Not thread-safe; one per analysis.
 */
final class VmStateDecoder {
    /** Values decoded in one analysis at most; QEMU's pc machine has a few thousand. */
    static final int MAX_VALUES = 2_000_000;
    static final long MAX_ARRAY_LEN = 1 << 24;
    /** Nesting of structs and subsections; QEMU's devices nest a handful deep. */
    static final int MAX_DEPTH = 32;
    private static final int NULL_MARKER = '0';

    private final StreamInput in;
    private int budget = MAX_VALUES;
    /** The section being decoded. */
    private String idstr = "";

    VmStateDecoder(StreamInput in) {
        this.in = in;
    }

    /**
     * Decodes one section body (fields, then subsections) described by {@code desc}, of the
     * section named {@code idstr}; {@code label} names it in messages.
     */
    FieldValue.Struct decode(JsonNode desc, String idstr, String label) throws IOException, AnalysisException {
        this.idstr = idstr;
        charge(label);
        return struct(desc, label, 0);
    }

    private FieldValue.Struct struct(JsonNode desc, String path, int depth) throws IOException, AnalysisException {
        if (depth > MAX_DEPTH) {
            throw vmdesc(path + " nests structs and subsections more than " + MAX_DEPTH + " deep");
        }
        JsonNode fields = desc.get("fields");
        if (fields == null || !fields.isArray()) {
            throw vmdesc(path + " has no \"fields\" list");
        }
        List<Slot> slots = new ArrayList<>();
        Map<String, Slot> byName = new HashMap<>();
        for (JsonNode f : fields) {
            String name = text(f, "name", path);
            String type = text(f, "type", path + "." + name);
            String fpath = path + "." + name;
            Slot slot = byName.get(name);
            if (slot == null) {
                slot = new Slot(name, type, new ArrayList<>());
                byName.put(name, slot);
                slots.add(slot);
            }
            if (f.has("array_len")) {
                long n = integer(f, "array_len", fpath);
                if (n > MAX_ARRAY_LEN) {
                    throw vmdesc(fpath + " has array_len " + n + ", more than " + MAX_ARRAY_LEN);
                }
                if (type.equals("struct") && n > 0 && f.has("size")) {
                    // Each element must take the size of the one described (checkSize), so all of
                    // them must fit before the first is decoded. n <= 2^24: the product cannot
                    // overflow for sizes below 2^63 / 2^24; larger ones cannot fit anyway.
                    long size = size(f, fpath);
                    in.require(size > Long.MAX_VALUE / MAX_ARRAY_LEN ? -1 : n * size,
                            fpath + " (" + n + " elements of " + size + " bytes)");
                }
                for (int i = 0; i < n; i++) {
                    slot.values.add(element(f, type, fpath + "[" + slot.values.size() + "]", depth, desc));
                }
                slot.array = true;
            } else {
                if (f.has("index")) {
                    integer(f, "index", fpath); // checked, but the position is the order of the entries
                    slot.array = true;
                }
                slot.array |= !slot.values.isEmpty();
                slot.values.add(element(f, type, slot.array ? fpath + "[" + slot.values.size() + "]" : fpath,
                        depth, desc));
            }
        }
        List<FieldValue.Field> out = new ArrayList<>(slots.size());
        for (Slot s : slots) {
            FieldValue v = s.array ? new FieldValue.Array(List.copyOf(s.values)) : s.values.get(0);
            out.add(new FieldValue.Field(s.name, s.type, v));
        }
        return new FieldValue.Struct(List.copyOf(out), subsections(desc, path, depth));
    }

    private List<FieldValue.Subsection> subsections(JsonNode desc, String path, int depth)
            throws IOException, AnalysisException {
        JsonNode subs = desc.get("subsections");
        if (subs == null) {
            return List.of();
        }
        if (!subs.isArray()) {
            throw vmdesc(path + " has \"subsections\" that is not a list");
        }
        List<FieldValue.Subsection> out = new ArrayList<>();
        for (JsonNode s : subs) {
            String expected = s.path("vmsd_name").asText("?");
            long at = in.offset();
            int marker = in.u8("the marker of subsection " + expected + " of " + path);
            if (marker != Qevm.SUBSECTION) {
                throw AnalysisException.malformed(at, path + ": the vmdesc lists subsection '" + expected
                        + "' but offset " + at + " holds 0x" + hex2(marker) + ", not a subsection marker (0x05)");
            }
            String name = in.countedString(1, "the name of subsection " + expected + " of " + path);
            if (s.has("vmsd_name") && !expected.equals(name)) {
                throw AnalysisException.malformed(at, path + ": the stream has subsection '" + name + "' at offset " + at
                        + " where the vmdesc lists '" + expected + "'");
            }
            long version = in.be32("the version of subsection " + name);
            charge(path);
            out.add(new FieldValue.Subsection(name, version, struct(s, name, depth + 1)));
        }
        return List.copyOf(out);
    }

    /** One element of field {@code f} of the struct {@code owner} describes. */
    private FieldValue element(JsonNode f, String type, String path, int depth, JsonNode owner)
            throws IOException, AnalysisException {
        charge(path);
        long at = in.offset();
        switch (type) {
            case "struct" -> {
                JsonNode s = f.get("struct");
                if (s == null || !s.isObject()) {
                    throw vmdesc(path + " is a struct without a \"struct\" description");
                }
                if (!s.has("fields") && size(f, path) == 1) {
                    // A NULL element of an array of pointers: QEMU opened the struct's description,
                    // then wrote only the placeholder byte.
                    return nullMarker(path);
                }
                FieldValue.Struct v = struct(s, path, depth + 1);
                checkSize(f, at, path);
                return v;
            }
            case "vstruct", "tmp" -> {
                if (!f.has("fields")) {
                    return raw(f, path);
                }
                FieldValue.Struct v = struct(f, path, depth + 1);
                checkSize(f, at, path);
                return v;
            }
            case "nullptr" -> {
                return nullMarker(path);
            }
            case "virtio" -> {
                return virtio(f, path, owner.path("vmsd_name").asText(null));
            }
            case "capability" -> {
                return new FieldValue.Text(in.countedString(0, path));
            }
            case "bool" -> {
                return size(f, path) == 1 ? new FieldValue.Bool(in.u8(path) != 0) : raw(f, path);
            }
            case "float64" -> {
                return size(f, path) == 8 ? new FieldValue.Float64(Double.longBitsToDouble(in.be64(path))) : raw(f, path);
            }
            case "uint64" -> {
                if (size(f, path) == 1) {
                    return nullMarker(path); // QEMU 7.2 names its NULL placeholder "uint64"
                }
                return integer(f, path, false);
            }
            case "uint8", "uint16", "uint32", "uint8 equal", "uint16 equal", "uint32 equal", "uint64 equal",
                 "CPU_Double_U" -> {
                return integer(f, path, false);
            }
            case "int8", "int16", "int32", "int64", "int32 equal", "int64 equal", "int32 le", "timer" -> {
                return integer(f, path, true);
            }
            default -> {
                return raw(f, path);
            }
        }
    }

    private FieldValue integer(JsonNode f, String path, boolean signed) throws IOException, AnalysisException {
        int size = (int) Math.min(size(f, path), 16);
        long v;
        switch (size) {
            case 1 -> v = signed ? (byte) in.u8(path) : in.u8(path);
            case 2 -> v = signed ? (short) in.be16(path) : in.be16(path);
            case 4 -> v = signed ? (int) in.be32(path) : in.be32(path);
            case 8 -> v = in.be64(path);
            default -> {
                return raw(f, path);
            }
        }
        return signed ? new FieldValue.Signed(v, size) : new FieldValue.Unsigned(v, size);
    }

    private FieldValue raw(JsonNode f, String path) throws IOException, AnalysisException {
        long size = size(f, path);
        in.require(size, path + " (" + size + " bytes)");
        int keep = (int) Math.min(size, FieldValue.Bytes.MAX_PREFIX);
        byte[] prefix = in.bytes(keep, path);
        in.skip(size - keep, path);
        return new FieldValue.Bytes(size, prefix);
    }

    /**
     * A "virtio" field: QEMU's virtio_save output, {@code size} bytes, decoded by
     * {@link VirtioStateDecoder} when the section is on virtio-mmio (QEMU names such a section by
     * its bus path, {@code .../virtio-mmio@<base>/<vmsd>}, as Ferry does) and not implausibly
     * large; otherwise raw, with a note saying why.
     */
    private FieldValue virtio(JsonNode f, String path, String vmsd) throws IOException, AnalysisException {
        long size = size(f, path);
        long at = in.offset();
        in.require(size, path + " (" + size + " bytes)");
        String why = !idstr.contains("virtio-mmio@")
                ? "not decoded: section '" + idstr + "' is not on virtio-mmio (no 'virtio-mmio@' in its name), and only"
                + " virtio-mmio's layout of the virtio state is known"
                : size > VirtioStateDecoder.MAX_BYTES ? "not decoded: " + size + " bytes, more than the "
                + VirtioStateDecoder.MAX_BYTES + " a virtio state is decoded up to" : null;
        if (why != null) {
            return VirtioStateDecoder.undecoded(why, raw(f, path));
        }
        byte[] field = new byte[(int) size];
        in.read(field, 0, field.length, path);
        FieldValue.Struct v = VirtioStateDecoder.decode(field, vmsd, at);
        budget -= countValues(v);
        charge(path);
        return v;
    }

    /** The values {@code v} holds, for the cap on values. */
    private static int countValues(FieldValue v) {
        if (v instanceof FieldValue.Struct s) {
            int n = 1;
            for (FieldValue.Field f : s.fields()) {
                n += countValues(f.value());
            }
            for (FieldValue.Subsection sub : s.subsections()) {
                n += countValues(sub.state());
            }
            return n;
        }
        if (v instanceof FieldValue.Array a) {
            int n = 1;
            for (FieldValue e : a.elements()) {
                n += countValues(e);
            }
            return n;
        }
        return 1;
    }

    private FieldValue nullMarker(String path) throws IOException, AnalysisException {
        long at = in.offset();
        int b = in.u8(path);
        if (b != NULL_MARKER) {
            throw AnalysisException.malformed(at, path + ": expected the NULL-pointer placeholder '0' (0x30) at offset "
                    + at + ", found 0x" + hex2(b));
        }
        return new FieldValue.Null();
    }

    private void checkSize(JsonNode f, long at, String path) throws AnalysisException {
        if (!f.has("size")) {
            return;
        }
        long declared = size(f, path);
        long used = in.offset() - at;
        if (used != declared) {
            throw AnalysisException.malformed(at, path + " at offset " + at + ": the vmdesc says " + declared
                    + " bytes, its fields took " + used);
        }
    }

    private void charge(String path) throws AnalysisException {
        if (--budget < 0) {
            throw AnalysisException.malformed(in.offset(), "more than " + MAX_VALUES + " values in the device states"
                    + " (at " + path + "); the vmdesc is not plausible");
        }
    }

    private long size(JsonNode f, String path) throws AnalysisException {
        return integer(f, "size", path);
    }

    private long integer(JsonNode f, String key, String path) throws AnalysisException {
        JsonNode v = f.get(key);
        if (v == null || !v.isIntegralNumber() || !v.canConvertToLong() || v.longValue() < 0) {
            throw vmdesc(path + " has no non-negative integer \"" + key + "\"");
        }
        return v.longValue();
    }

    private String text(JsonNode f, String key, String path) throws AnalysisException {
        JsonNode v = f.get(key);
        if (v == null || !v.isTextual()) {
            throw vmdesc(path + " has a field without a string \"" + key + "\": "
                    + VmDescription.abbreviate(String.valueOf(f)));
        }
        return v.asText();
    }

    private AnalysisException vmdesc(String message) {
        return AnalysisException.malformed(in.offset(), "vmdesc: " + message);
    }

    /**
     * A field being decoded. Entries with the same name are one field: the elements of an array
     * described per element ("index"), or the pieces QEMU 9.1+ splits an array of pointers into
     * around its NULL elements (compressed runs and single entries, all under the array's name).
     */
    private static final class Slot {
        final String name;
        final String type;
        final List<FieldValue> values;
        boolean array;

        Slot(String name, String type, List<FieldValue> values) {
            this.name = name;
            this.type = type;
            this.values = values;
        }
    }

    static String hex2(int b) {
        return String.format("%02x", b);
    }
}
