package dev.ferry.core.migration;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.BiConsumer;
import java.util.function.BiFunction;
import java.util.function.Consumer;
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
 * <p>Hooks, as in QEMU: {@linkplain Builder#preSave pre-save} runs before the fields are written
 * (and before the subsections' {@code needed} predicates are asked); {@linkplain Builder#postLoad
 * post-load} runs after all fields and subsections were loaded, a subsection's own post-load when
 * that subsection ends, an array element's when that element ends.
 *
 * <p>Telling a subsection from what follows. After the outermost state's fields a {@code 0x05}
 * can only start a subsection (the section footer, {@code 0x7e}, follows the state): its header is
 * read and an unknown name refused. Inside (after an array element, or in a subsection with
 * subsections of its own) a {@code 0x05} may also be the first byte of the next element or field,
 * or of an enclosing state's subsection. QEMU's {@code vmstate_subsection_load} peeks at the length
 * and name and takes the header only when it names one of this description's subsections.
 * {@link LoadStream} peeks one byte, so here the bytes after the {@code 0x05} are taken ahead one
 * at a time, only while they still spell the header of one of this description's subsections,
 * and whatever follows reads them again. What a one-byte peek cannot decide: the state's last
 * bytes after such an array spelling the start of such a header (most simply, a last one-byte
 * field holding 5); telling then takes bytes of the footer, and the load fails with a
 * {@link MigrationException} rather than lose them. QEMU's rule that an unknown name starting
 * with this description's name and '/' is an error is not applied inside: it would take bytes
 * ahead after almost any {@code 0x05}. An element's unknown subsection fails the load all the
 * same, as bytes the state does not account for.
 *
 * <p>Immutable and thread-safe; {@code save} runs on the migration thread, {@code load} on the
 * incoming thread.
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
    private final Consumer<T> preSave;
    private final PostLoad<T> postLoad;

    private record Subsection<T>(VmStateDescription<T> description, Predicate<T> needed) {
        byte[] nameBytes() {
            return description.name.getBytes(StandardCharsets.UTF_8);
        }
    }

    private VmStateDescription(Builder<T> b) {
        this.name = b.name;
        this.version = b.version;
        this.minimumVersion = b.minimumVersion;
        this.fields = List.copyOf(b.fields);
        this.subsections = List.copyOf(b.subsections);
        this.preSave = b.preSave;
        this.postLoad = b.postLoad;
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
        if (preSave != null) {
            preSave.accept(obj);
        }
        for (VmStateField<T> f : fields) {
            f.save(obj, out);
        }
        for (Subsection<T> s : subsections) {
            if (s.needed().test(obj)) {
                byte[] n = s.nameBytes();
                out.putU8(SUBSECTION);
                out.putU8(n.length);
                out.putBytes(n);
                out.putBe32(s.description().version);
                s.description().save(obj, out);
            }
        }
    }

    /**
     * Loads a state of version {@code streamVersion} from {@code in}, leaving what follows it (the
     * section footer) unread; then runs the post-load hooks.
     */
    public void load(T obj, LoadStream in, int streamVersion) throws IOException, MigrationException {
        if (in instanceof LookaheadLoadStream nested) {
            // Called by a field of an enclosing state (an array element): bytes this state looks
            // at ahead belong to what follows it in that state.
            load(obj, nested, streamVersion, false);
            return;
        }
        LookaheadLoadStream ahead = new LookaheadLoadStream(in);
        load(obj, ahead, streamVersion, true);
        if (ahead.pending() > 0) {
            throw new MigrationException(name + ": the stream does not match this description: "
                    + (ahead.pending() == 1 ? "1 byte" : ahead.pending() + " bytes")
                    + " taken ahead to tell a subsection from the next field were not part of the state");
        }
        runPostLoad(obj, streamVersion); // not before the state is known to be whole
    }

    private void load(T obj, LookaheadLoadStream in, int streamVersion, boolean outermost)
            throws IOException, MigrationException {
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
                try {
                    f.load(obj, in);
                } catch (IllegalArgumentException e) {
                    // A setter that refuses the value it was given: the stream is refused, not
                    // the VMM broken (the fuzzer found GlobalState's unknown run state this way).
                    throw new MigrationException(name + ": " + f.name() + ": " + e.getMessage(), e);
                }
            }
        }
        while (!subsections.isEmpty() && in.peek(0) == SUBSECTION) {
            // The end of the input is not an error here: a description whose subsections were all
            // not needed ends with its last field (QEMU's qemu_peek_byte reads 0 at the end too);
            // a truncated subsection still fails below.
            Subsection<T> sub = outermost ? readSubsectionHeader(in) : matchSubsectionHeader(in);
            if (sub == null) {
                break;
            }
            sub.description().load(obj, in, in.getBe32(), false);
        }
        if (!outermost) {
            runPostLoad(obj, streamVersion);
        }
    }

    /** After the outermost state's fields a 0x05 can only start a subsection: it must be one of ours. */
    private Subsection<T> readSubsectionHeader(LookaheadLoadStream in) throws IOException, MigrationException {
        in.getU8();
        int len = in.getU8();
        byte[] n = new byte[len];
        in.getBytes(n, 0, len);
        for (Subsection<T> s : subsections) {
            if (Arrays.equals(s.nameBytes(), n)) {
                return s;
            }
        }
        throw unknownSubsection(n);
    }

    /**
     * In a nested state a 0x05 may be the first byte of what follows: it starts one of our
     * subsections only if the length and name after it match one. Bytes are taken ahead one at a
     * time and only while they still match, so no more is taken than needed to decide. Returns
     * null, everything taken ahead left to be read again, when it is not ours.
     */
    private Subsection<T> matchSubsectionHeader(LookaheadLoadStream in) throws IOException {
        int len = in.peek(1);
        if (len < 0) {
            return null;
        }
        byte[] got = new byte[len];
        for (int known = 0; ; known++) {
            Subsection<T> candidate = null;
            for (Subsection<T> s : subsections) {
                byte[] n = s.nameBytes();
                if (n.length == len && Arrays.equals(n, 0, known, got, 0, known)) {
                    candidate = s;
                    break;
                }
            }
            if (candidate == null) {
                return null;
            }
            if (known == len) {
                in.skip(2 + len);
                return candidate;
            }
            int b = in.peek(2 + known);
            if (b < 0) {
                return null;
            }
            got[known] = (byte) b;
        }
    }

    private MigrationException unknownSubsection(byte[] n) {
        return new MigrationException(name + ": unknown subsection '" + StreamText.escape(n) + "'");
    }

    private void runPostLoad(T obj, int streamVersion) throws MigrationException {
        if (postLoad == null) {
            return;
        }
        try {
            postLoad.afterLoad(obj, streamVersion);
        } catch (MigrationException e) {
            if (e.getMessage() != null && e.getMessage().startsWith(name + ":")) {
                throw e;
            }
            throw new MigrationException(name + ": " + e.getMessage(), e);
        } catch (IllegalArgumentException e) {
            throw new MigrationException(name + ": " + e.getMessage(), e);
        }
    }

    /**
     * This state as the stream's vmdesc JSON describes it (field names, types, sizes, and the
     * subsections {@code obj} would send), as plain maps and lists. Describes {@code obj} as it is:
     * call it after {@link #save}, whose pre-save hooks may have changed it; it runs none itself.
     */
    public Map<String, Object> describe(T obj) {
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("vmsd_name", name);
        d.put("version", version);
        List<Map<String, Object>> fs = new ArrayList<>();
        for (VmStateField<T> f : fields) {
            f.describe(obj, fs);
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

    /**
     * The bytes a state described by {@code d} (a {@link #describe} result) takes on the wire: its
     * fields' sizes (times "array_len") and each subsection with its header.
     */
    static long describedSize(Map<String, Object> d) {
        long n = 0;
        for (Object o : (List<?>) d.get("fields")) {
            Map<?, ?> f = (Map<?, ?>) o;
            Object len = f.get("array_len");
            n += ((Number) f.get("size")).longValue() * (len == null ? 1 : ((Number) len).longValue());
        }
        Object subs = d.get("subsections");
        if (subs != null) {
            for (Object o : (List<?>) subs) {
                Map<String, Object> s = castMap(o);
                n += 2 + ((String) s.get("vmsd_name")).getBytes(StandardCharsets.UTF_8).length + 4 + describedSize(s);
            }
        }
        return n;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> castMap(Object o) {
        return (Map<String, Object>) o;
    }

    /**
     * Whether QEMU would describe an array of these structs by its first element alone
     * ({@code vmsd_can_compress}): not when subsections may come and go, here or in a struct
     * among the fields.
     */
    boolean compressible() {
        return subsections.isEmpty() && fields.stream()
                .allMatch(f -> !(f instanceof StructArrayField<T, ?> a) || a.element().compressible());
    }

    public static final class Builder<T> {
        private final String name;
        private final int version;
        private int minimumVersion;
        private final List<VmStateField<T>> fields = new ArrayList<>();
        private final List<Subsection<T>> subsections = new ArrayList<>();
        private int since = 1;
        private Consumer<T> preSave;
        private PostLoad<T> postLoad;

        private Builder(String name, int version) {
            this.name = Objects.requireNonNull(name);
            if (name.getBytes(StandardCharsets.UTF_8).length > 255) {
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
            return add(new BasicFields.IntField<>(n, "uint8", 1, since, get, set));
        }

        public Builder<T> u16(String n, ToIntFunction<T> get, ObjIntConsumer<T> set) {
            return add(new BasicFields.IntField<>(n, "uint16", 2, since, get, set));
        }

        public Builder<T> u32(String n, ToIntFunction<T> get, ObjIntConsumer<T> set) {
            return add(new BasicFields.IntField<>(n, "uint32", 4, since, get, set));
        }

        public Builder<T> i32(String n, ToIntFunction<T> get, ObjIntConsumer<T> set) {
            return add(new BasicFields.IntField<>(n, "int32", 4, since, get, set));
        }

        public Builder<T> bool(String n, Predicate<T> get, BiConsumer<T, Boolean> set) {
            return add(new BasicFields.IntField<>(n, "bool", 1, since, o -> get.test(o) ? 1 : 0, (o, v) -> {
                if (v != 0 && v != 1) {
                    throw new IllegalArgumentException("bool value " + v);
                }
                set.accept(o, v == 1);
            }));
        }

        public Builder<T> u64(String n, ToLongFunction<T> get, ObjLongConsumer<T> set) {
            return add(new BasicFields.LongField<>(n, "uint64", since, get, set));
        }

        public Builder<T> i64(String n, ToLongFunction<T> get, ObjLongConsumer<T> set) {
            return add(new BasicFields.LongField<>(n, "int64", since, get, set));
        }

        /** A fixed-size byte buffer: the destination refuses any other length. */
        public Builder<T> buffer(String n, int size, Function<T, byte[]> get, BiConsumer<T, byte[]> set) {
            return add(new BasicFields.BufferField<>(n, size, since, get, set));
        }

        /**
         * A buffer whose length varies by instance (a host-dependent MSR list, an XSAVE area): on
         * the wire {@code be32 length | bytes}; the destination refuses more than {@code maxSize}.
         * The vmdesc describes it as QEMU's VMSTATE_VBUFFER_UINT32: a {@code uint32} length field
         * named {@code NAME_len} followed by the buffer.
         */
        public Builder<T> vbuffer(String n, int maxSize, Function<T, byte[]> get, BiConsumer<T, byte[]> set) {
            return add(new BasicFields.VBufferField<>(n, maxSize, since, get, set));
        }

        /**
         * An array of exactly {@code count} structs (QEMU's {@code VMSTATE_STRUCT_ARRAY}): the
         * elements back to back, each as {@code element} saves it alone (its fields, then its
         * subsections); no length on the wire. {@code elementAt} gives element {@code i} of
         * {@code obj} on both sides; on the destination it is the object the element loads into.
         */
        public <E> Builder<T> structArray(String n, VmStateDescription<E> element, int count,
                                          BiFunction<T, Integer, E> elementAt) {
            Objects.requireNonNull(element);
            return add(new StructArrayField<>(name, n, element, o -> count, count, elementAt, since));
        }

        /**
         * An array of structs whose count an earlier field carries (QEMU's
         * {@code VMSTATE_STRUCT_VARRAY_UINT32}, e.g. the queues of a device with a negotiated
         * number of queues): the wire format of {@link #structArray}, no length of its own. On the
         * destination {@code count} is asked after the earlier fields were loaded, and a count
         * above {@code maxCount} (or negative, a be32 of 2^31 or more) is refused before any
         * element is touched; then {@code elementAt} must return (allocating if need be) each of
         * the {@code count} elements. The source must not hold more than {@code maxCount}.
         */
        public <E> Builder<T> structVarray(String n, VmStateDescription<E> element, ToIntFunction<T> count,
                                           int maxCount, BiFunction<T, Integer, E> elementAt) {
            Objects.requireNonNull(element);
            return add(new StructArrayField<>(name, n, element, count, maxCount, elementAt, since));
        }

        /**
         * Runs before the fields are written (QEMU's {@code pre_save}), on the migration thread:
         * brings {@code obj} up to date with state kept elsewhere (a ring index the device
         * thread holds). Runs per element in an array and per subsection sent.
         */
        public Builder<T> preSave(Consumer<T> hook) {
            this.preSave = Objects.requireNonNull(hook);
            return this;
        }

        /** Validates the loaded state (QEMU's {@code post_load}); see {@link PostLoad}. */
        public Builder<T> postLoad(PostLoad<T> hook) {
            this.postLoad = Objects.requireNonNull(hook);
            return this;
        }

        public Builder<T> subsection(VmStateDescription<T> sub, Predicate<T> needed) {
            if (subsections.stream().anyMatch(s -> s.description().name.equals(sub.name))) {
                throw new IllegalArgumentException(name + ": duplicate subsection " + sub.name);
            }
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
}
