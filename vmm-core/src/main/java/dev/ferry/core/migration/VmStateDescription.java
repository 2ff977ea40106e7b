package dev.ferry.core.migration;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.BiConsumer;
import java.util.function.Function;
import java.util.function.ObjIntConsumer;
import java.util.function.ObjLongConsumer;
import java.util.function.Predicate;
import java.util.function.ToIntFunction;
import java.util.function.ToLongFunction;

/**
 * Declarative, versioned device state (QEMU's {@code VMStateDescription}): an ordered field list,
 * a version and the oldest version still loadable, and subsections that are sent only when their
 * {@code needed} predicate holds. Subsections on the wire:
 * <pre>
 * u8 0x05 | u8 len | name bytes | be32 version | fields... | (nested subsections)
 * </pre>
 * The destination refuses a stream version newer than {@link #version()} or older than
 * {@link #minimumVersion()}, and a subsection it does not know.
 *
 * @param <T> the object holding the state
 */
public final class VmStateDescription<T> {
    public static final int SUBSECTION = 0x05;

    private final String name;
    private final int version;
    private final int minimumVersion;
    private final List<VmStateField<T>> fields;
    private final List<Subsection<T>> subsections;

    private record Subsection<T>(VmStateDescription<T> description, Predicate<T> needed) {
    }

    private VmStateDescription(Builder<T> b) {
        this.name = b.name;
        this.version = b.version;
        this.minimumVersion = b.minimumVersion;
        this.fields = List.copyOf(b.fields);
        this.subsections = List.copyOf(b.subsections);
    }

    public static <T> Builder<T> builder(String name, int version) {
        return new Builder<>(name, version);
    }

    public String name() {
        return name;
    }

    public int version() {
        return version;
    }

    public int minimumVersion() {
        return minimumVersion;
    }

    public void save(T obj, SaveStream out) throws IOException {
        for (VmStateField<T> f : fields) {
            f.save(obj, out);
        }
        for (Subsection<T> s : subsections) {
            if (s.needed().test(obj)) {
                byte[] n = s.description().name.getBytes(java.nio.charset.StandardCharsets.UTF_8);
                out.putU8(SUBSECTION);
                out.putU8(n.length);
                out.putBytes(n);
                out.putBe32(s.description().version);
                s.description().save(obj, out);
            }
        }
    }

    public void load(T obj, LoadStream in, int streamVersion) throws IOException, MigrationException {
        if (streamVersion > version) {
            throw new MigrationException(name + ": stream has version " + streamVersion + ", this build knows up to "
                    + version);
        }
        if (streamVersion < minimumVersion) {
            throw new MigrationException(name + ": stream has version " + streamVersion
                    + ", older than the oldest loadable version " + minimumVersion);
        }
        for (VmStateField<T> f : fields) {
            if (f.sinceVersion() <= streamVersion) {
                f.load(obj, in);
            }
        }
        while (!subsections.isEmpty() && subsectionFollows(in)) {
            in.getU8();
            int len = in.getU8();
            byte[] n = new byte[len];
            in.getBytes(n, 0, len);
            String subName = new String(n, java.nio.charset.StandardCharsets.UTF_8);
            Subsection<T> sub = subsections.stream().filter(s -> s.description().name.equals(subName)).findFirst()
                    .orElseThrow(() -> new MigrationException(name + ": unknown subsection '" + subName + "'"));
            sub.description().load(obj, in, in.getBe32());
        }
    }

    /**
     * True when the next byte starts a subsection. The end of the input is not an error here: a
     * description whose subsections were all not needed ends with its last field (QEMU's
     * {@code qemu_peek_byte} reads 0 at the end too); a truncated subsection still fails below.
     */
    private static boolean subsectionFollows(LoadStream in) throws IOException {
        try {
            return in.peekU8() == SUBSECTION;
        } catch (java.io.EOFException e) {
            return false;
        }
    }

    /**
     * This state as the stream's vmdesc JSON describes it (field names, types, sizes, and the
     * subsections {@code obj} would send), as plain maps and lists.
     */
    public Map<String, Object> describe(T obj) {
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("vmsd_name", name);
        d.put("version", version);
        List<Object> fs = new ArrayList<>();
        for (VmStateField<T> f : fields) {
            if (f instanceof VBufferField<T> vb) {
                Map<String, Object> len = new LinkedHashMap<>();
                len.put("name", vb.name() + "_len");
                len.put("type", "uint32");
                len.put("size", 4);
                fs.add(len);
            }
            Map<String, Object> fd = new LinkedHashMap<>();
            fd.put("name", f.name());
            fd.put("type", f.type());
            fd.put("size", f.size(obj));
            fs.add(fd);
        }
        d.put("fields", fs);
        List<Object> subs = new ArrayList<>();
        for (Subsection<T> s : subsections) {
            if (s.needed().test(obj)) {
                subs.add(s.description().describe(obj));
            }
        }
        if (!subs.isEmpty()) {
            d.put("subsections", subs);
        }
        return d;
    }

    public static final class Builder<T> {
        private final String name;
        private final int version;
        private int minimumVersion;
        private final List<VmStateField<T>> fields = new ArrayList<>();
        private final List<Subsection<T>> subsections = new ArrayList<>();
        private int since = 1;

        private Builder(String name, int version) {
            this.name = Objects.requireNonNull(name);
            if (name.getBytes(java.nio.charset.StandardCharsets.UTF_8).length > 255) {
                throw new IllegalArgumentException("vmstate name longer than 255 bytes: " + name);
            }
            this.version = version;
            this.minimumVersion = version;
        }

        public Builder<T> minimumVersion(int v) {
            this.minimumVersion = v;
            return this;
        }

        /** Fields declared after this call were added in {@code v} (QEMU's {@code _V} field macros). */
        public Builder<T> sinceVersion(int v) {
            this.since = v;
            return this;
        }

        public Builder<T> u8(String n, ToIntFunction<T> get, ObjIntConsumer<T> set) {
            return add(new IntField<>(n, "uint8", 1, since, get, set));
        }

        public Builder<T> u16(String n, ToIntFunction<T> get, ObjIntConsumer<T> set) {
            return add(new IntField<>(n, "uint16", 2, since, get, set));
        }

        public Builder<T> u32(String n, ToIntFunction<T> get, ObjIntConsumer<T> set) {
            return add(new IntField<>(n, "uint32", 4, since, get, set));
        }

        public Builder<T> i32(String n, ToIntFunction<T> get, ObjIntConsumer<T> set) {
            return add(new IntField<>(n, "int32", 4, since, get, set));
        }

        public Builder<T> bool(String n, Predicate<T> get, BiConsumer<T, Boolean> set) {
            return add(new IntField<>(n, "bool", 1, since, o -> get.test(o) ? 1 : 0, (o, v) -> {
                if (v != 0 && v != 1) {
                    throw new IllegalArgumentException("bool value " + v);
                }
                set.accept(o, v == 1);
            }));
        }

        public Builder<T> u64(String n, ToLongFunction<T> get, ObjLongConsumer<T> set) {
            return add(new LongField<>(n, "uint64", since, get, set));
        }

        public Builder<T> i64(String n, ToLongFunction<T> get, ObjLongConsumer<T> set) {
            return add(new LongField<>(n, "int64", since, get, set));
        }

        /** A fixed-size byte buffer: the destination refuses any other length. */
        public Builder<T> buffer(String n, int size, Function<T, byte[]> get, BiConsumer<T, byte[]> set) {
            return add(new BufferField<>(n, size, since, get, set));
        }

        /**
         * A buffer whose length varies by instance (a host-dependent MSR list, an XSAVE area): on
         * the wire {@code be32 length | bytes}; the destination refuses more than {@code maxSize}.
         * The vmdesc describes it as QEMU's VMSTATE_VBUFFER_UINT32: a {@code uint32} length field
         * named {@code NAME_len} followed by the buffer.
         */
        public Builder<T> vbuffer(String n, int maxSize, Function<T, byte[]> get, BiConsumer<T, byte[]> set) {
            return add(new VBufferField<>(n, maxSize, since, get, set));
        }

        public Builder<T> subsection(VmStateDescription<T> sub, Predicate<T> needed) {
            subsections.add(new Subsection<>(sub, needed));
            return this;
        }

        public Builder<T> field(VmStateField<T> f) {
            return add(f);
        }

        private Builder<T> add(VmStateField<T> f) {
            if (fields.stream().anyMatch(x -> x.name().equals(f.name()))) {
                throw new IllegalArgumentException(name + ": duplicate field " + f.name());
            }
            fields.add(f);
            return this;
        }

        public VmStateDescription<T> build() {
            if (minimumVersion > version || minimumVersion < 1) {
                throw new IllegalArgumentException(name + ": minimum version " + minimumVersion + " outside 1.." + version);
            }
            return new VmStateDescription<>(this);
        }
    }

    private record IntField<T>(String name, String type, int width, int sinceVersion, ToIntFunction<T> get,
                               ObjIntConsumer<T> set) implements VmStateField<T> {
        @Override
        public int size(T obj) {
            return width;
        }

        @Override
        public void save(T obj, SaveStream out) throws IOException {
            int v = get.applyAsInt(obj);
            switch (width) {
                case 1 -> out.putU8(v);
                case 2 -> out.putBe16(v);
                default -> out.putBe32(v);
            }
        }

        @Override
        public void load(T obj, LoadStream in) throws IOException, MigrationException {
            int v = switch (width) {
                case 1 -> in.getU8();
                case 2 -> in.getBe16();
                default -> in.getBe32();
            };
            try {
                set.accept(obj, v);
            } catch (IllegalArgumentException e) {
                throw new MigrationException("field " + name + ": " + e.getMessage(), e);
            }
        }
    }

    private record LongField<T>(String name, String type, int sinceVersion, ToLongFunction<T> get,
                                ObjLongConsumer<T> set) implements VmStateField<T> {
        @Override
        public int size(T obj) {
            return 8;
        }

        @Override
        public void save(T obj, SaveStream out) throws IOException {
            out.putBe64(get.applyAsLong(obj));
        }

        @Override
        public void load(T obj, LoadStream in) throws IOException, MigrationException {
            long v = in.getBe64();
            try {
                set.accept(obj, v);
            } catch (IllegalArgumentException e) {
                throw new MigrationException("field " + name + ": " + e.getMessage(), e);
            }
        }
    }

    private record VBufferField<T>(String name, int maxSize, int sinceVersion, Function<T, byte[]> get,
                                   BiConsumer<T, byte[]> set) implements VmStateField<T> {
        @Override
        public String type() {
            return "buffer";
        }

        /** The buffer's own size in the vmdesc (its length field is described separately). */
        @Override
        public int size(T obj) {
            return get.apply(obj).length;
        }

        @Override
        public void save(T obj, SaveStream out) throws IOException {
            byte[] b = get.apply(obj);
            if (b.length > maxSize) {
                throw new IllegalStateException(name + ": " + b.length + " bytes, more than the declared " + maxSize);
            }
            out.putBe32(b.length);
            out.putBytes(b);
        }

        @Override
        public void load(T obj, LoadStream in) throws IOException, MigrationException {
            int len = in.getBe32();
            if (len < 0 || len > maxSize) {
                throw new MigrationException("field " + name + ": length " + (len & 0xffffffffL) + " exceeds " + maxSize);
            }
            byte[] b = new byte[len];
            in.getBytes(b, 0, len);
            try {
                set.accept(obj, b);
            } catch (IllegalArgumentException e) {
                throw new MigrationException("field " + name + ": " + e.getMessage(), e);
            }
        }
    }

    private record BufferField<T>(String name, int size, int sinceVersion, Function<T, byte[]> get,
                                  BiConsumer<T, byte[]> set) implements VmStateField<T> {
        @Override
        public String type() {
            return "buffer";
        }

        @Override
        public int size(T obj) {
            return size;
        }

        @Override
        public void save(T obj, SaveStream out) throws IOException {
            byte[] b = get.apply(obj);
            if (b.length != size) {
                throw new IllegalStateException(name + ": buffer of " + b.length + " bytes, declared " + size);
            }
            out.putBytes(b);
        }

        @Override
        public void load(T obj, LoadStream in) throws IOException {
            byte[] b = new byte[size];
            in.getBytes(b, 0, size);
            set.accept(obj, b);
        }
    }
}
