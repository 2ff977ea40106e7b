package dev.ferry.migration.analyze;

import java.util.HexFormat;
import java.util.List;

/**
 * One decoded value of a device's state, as its vmdesc entry described it. A device section
 * decodes to a {@link Struct}: its fields in stream order, then its subsections. Immutable.
 */
public sealed interface FieldValue {

    /** An unsigned integer of {@code size} bytes (uint8..uint64, "uint32 equal", ...). */
    record Unsigned(long value, int size) implements FieldValue {
        @Override
        public String toString() {
            return String.format("0x%0" + (size * 2) + "x", value);
        }
    }

    /** A signed integer of {@code size} bytes (int8..int64, timers, "int32 equal", ...). */
    record Signed(long value, int size) implements FieldValue {
        @Override
        public String toString() {
            return Long.toString(value);
        }
    }

    /**
     * An unsigned integer of {@code size} bytes whose bits have names, such as a virtio device's
     * status and feature words: {@code names} are the set bits' names from bit 0 up ("bit N" for a
     * bit without a name). Printed as {@code 0x0f (ACKNOWLEDGE|DRIVER|DRIVER_OK|FEATURES_OK)}.
     */
    record Flags(long value, int size, List<String> names) implements FieldValue {
        public Flags {
            names = List.copyOf(names);
        }

        /** Whether the bit named {@code name} is set. */
        public boolean has(String name) {
            return names.contains(name);
        }

        @Override
        public String toString() {
            String hex = String.format("0x%0" + (size * 2) + "x", value);
            return names.isEmpty() ? hex : hex + " (" + String.join("|", names) + ")";
        }
    }

    /** A "bool": QEMU writes 0 or 1 and reads any non-zero byte as true. */
    record Bool(boolean value) implements FieldValue {
        @Override
        public String toString() {
            return Boolean.toString(value);
        }
    }

    /** A "float64" (an IEEE double sent as its be64 bits). */
    record Float64(double value) implements FieldValue {
        @Override
        public String toString() {
            return Double.toString(value);
        }
    }

    /** A string, such as a migration capability's name in QEMU 10's configuration. */
    record Text(String value) implements FieldValue {
        @Override
        public String toString() {
            return '"' + value + '"';
        }
    }

    /** The placeholder QEMU writes for a NULL pointer in an array of pointers (one byte '0'). */
    record Null() implements FieldValue {
        @Override
        public String toString() {
            return "null";
        }
    }

    /**
     * Raw bytes (buffers, bitmaps, PCI config space, types the analyzer does not interpret):
     * {@code size} bytes in the stream, of which the first {@code prefix.length} are kept (the
     * array is not copied; callers must not modify it). Equal by content.
     */
    record Bytes(long size, byte[] prefix) implements FieldValue {
        /** At most this many bytes of a raw field are kept. */
        public static final int MAX_PREFIX = 4096;

        public boolean complete() {
            return prefix.length == size;
        }

        /** Space-separated hex of up to {@code max} bytes, with "..." and the size when longer. */
        public String hex(int max) {
            int n = Math.min(max, prefix.length);
            StringBuilder sb = new StringBuilder();
            HexFormat h = HexFormat.of();
            for (int i = 0; i < n; i++) {
                if (i > 0) {
                    sb.append(' ');
                }
                sb.append(h.toHexDigits(prefix[i]));
            }
            if (n < size) {
                sb.append(n == 0 ? "" : " ").append("... (").append(size).append(" bytes)");
            }
            return sb.toString();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Bytes b && b.size == size && java.util.Arrays.equals(b.prefix, prefix);
        }

        @Override
        public int hashCode() {
            return Long.hashCode(size) * 31 + java.util.Arrays.hashCode(prefix);
        }

        @Override
        public String toString() {
            return hex(32);
        }
    }

    /** An array: the elements of one field described with "array_len" or with "index". */
    record Array(List<FieldValue> elements) implements FieldValue {
    }

    /** A structure: fields in stream order, then the subsections the stream carried. */
    record Struct(List<Field> fields, List<Subsection> subsections) implements FieldValue {
        /** The field named {@code name}, or null. */
        public FieldValue get(String name) {
            for (Field f : fields) {
                if (f.name().equals(name)) {
                    return f.value();
                }
            }
            return null;
        }

        /** The subsection named {@code name}, or null. */
        public Subsection subsection(String name) {
            for (Subsection s : subsections) {
                if (s.name().equals(name)) {
                    return s;
                }
            }
            return null;
        }
    }

    /** A named field with the vmdesc type it was decoded as. */
    record Field(String name, String type, FieldValue value) {
    }

    /** A subsection as the stream named it, with the version it carried. */
    record Subsection(String name, long version, Struct state) {
    }
}
