package dev.ferry.migration.analyze;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Decodes the bytes of a vmstate field of type {@code "virtio"} (QEMU's VMSTATE_VIRTIO_DEVICE):
 * what QEMU's {@code virtio_save} writes for a device on virtio-mmio, and Ferry's
 * {@code dev.ferry.virtio.VirtioState} too, whose Javadoc draws the layout in full. The vmdesc
 * gives only the field's size; inside it (big-endian):
 * <pre>
 *   transport: be32 host_features_sel | be32 guest_features_sel | be32 guest_page_shift
 *   u8 status | u8 isr | be16 queue_sel | be32 guest_features[31:0] | be32 config_len | config
 *   be32 nqueues | nqueues x { be32 num | be32 align | be64 desc | be16 last_avail_idx }
 *   device part       its length is known only to the device; decoded for vmsd "virtio-blk"
 *                     (Ferry's parked requests, see VirtioBlk), anything else stops decoding
 *   subsections       0x05 | u8 len | "virtio/..." | be32 1 | fields, to the field's end
 *                     (virtio/extra_state holds virtio-mmio's own vmstate: one more subsection
 *                     header, "virtio_mmio/state", before its fields)
 * </pre>
 * The subsections with one entry for each of QEMU's 1024 queues (virtqueues, ringsize,
 * extra_state, packed_virtqueues) show only the entries that are not all zero (packed: the queues
 * listed above), each with its {@code index}. QEMU's own virtio-blk writes a parked request as a
 * raw host-endian VirtQueueElement instead: a QEMU stream with parked requests is misread from
 * there on (it mostly ends in a note), one without any decodes whole (both end the list with 0).
 *
 * <p>The bytes are hostile: every read is checked against the field's size, counts are capped
 * before anything is allocated by them, and the first thing that does not fit ends decoding
 * without an exception: the items decoded whole so far are kept, then a one-line {@code note}
 * says where and why decoding stopped, and {@code undecoded} holds the rest of the field raw.
 * Each call decodes on the calling thread with state of its own.
 */
public final class VirtioStateDecoder {
    /** Largest field decoded; a larger one is shown raw (a real one is ~48 KiB plus parked requests). */
    public static final int MAX_BYTES = 4 << 20;
    /** QEMU's VIRTIO_QUEUE_MAX: the most queues, and the entries of the per-queue subsections. */
    static final int QUEUE_MAX = 1024;
    /** Parked requests, and their segments, shown at most; beyond, the rest is raw. */
    static final int MAX_PARKED = 1 << 16;

    private final ByteBuffer b;
    private final String vmsd;
    private final long fileOffset;
    private final List<FieldValue.Field> fields = new ArrayList<>();
    private final List<FieldValue.Subsection> subsections = new ArrayList<>();
    /** End of the last item decoded whole: what follows it is raw when decoding stops. */
    private int mark;
    private int nqueues;

    private VirtioStateDecoder(byte[] field, String vmsd, long fileOffset) {
        this.b = ByteBuffer.wrap(field);
        this.vmsd = vmsd;
        this.fileOffset = fileOffset;
    }

    /** Decodes {@code field}, the bytes of a "virtio" field in the section of vmsd {@code vmsdName}. */
    public static FieldValue.Struct decode(byte[] field, String vmsdName) {
        return decode(field, vmsdName, -1);
    }

    /** As {@link #decode(byte[], String)}; {@code fileOffset} (or -1) locates the field in notes. */
    static FieldValue.Struct decode(byte[] field, String vmsdName, long fileOffset) {
        return new VirtioStateDecoder(field, vmsdName, fileOffset).run();
    }

    /** A field that is not decoded at all: {@code why}, and its bytes. */
    static FieldValue.Struct undecoded(String why, FieldValue raw) {
        return new FieldValue.Struct(List.of(new FieldValue.Field("note", "text", new FieldValue.Text(why)),
                new FieldValue.Field("undecoded", "buffer", raw)), List.of());
    }

    private FieldValue.Struct run() {
        try {
            step(this::transport);
            step(this::registers);
            step(this::config);
            step(this::queues);
            step(this::device);
            while (b.hasRemaining()) {
                subsections.add(subsection());
                mark = b.position();
            }
        } catch (Stop s) {
            String where = "decoding stopped at byte " + s.at + " of " + b.capacity()
                    + (fileOffset >= 0 ? " (file offset " + (fileOffset + s.at) + ")" : "")
                    + "; bytes " + mark + ".." + b.capacity() + " are shown raw";
            fields.add(new FieldValue.Field("note", "text", new FieldValue.Text(s.getMessage() + "; " + where)));
            fields.add(new FieldValue.Field("undecoded", "buffer", rest()));
        }
        return new FieldValue.Struct(List.copyOf(fields), List.copyOf(subsections));
    }

    private interface Item {
        void read(List<FieldValue.Field> out) throws Stop;
    }

    /** Reads one item; its fields are kept only when all of it was read. */
    private void step(Item item) throws Stop {
        List<FieldValue.Field> out = new ArrayList<>();
        item.read(out);
        fields.addAll(out);
        mark = b.position();
    }

    private void transport(List<FieldValue.Field> out) throws Stop {
        out.add(field("host_features_sel", "uint32", u32("host_features_sel")));
        out.add(field("guest_features_sel", "uint32", u32("guest_features_sel")));
        out.add(field("guest_page_shift", "uint32", u32("guest_page_shift")));
    }

    private void registers(List<FieldValue.Field> out) throws Stop {
        out.add(field("status", "uint8", VirtioBits.status(u8("status"))));
        out.add(field("isr", "uint8", VirtioBits.isr(u8("isr"))));
        out.add(field("queue_sel", "uint16", new FieldValue.Unsigned(be16("queue_sel"), 2)));
        out.add(field("guest_features", "uint32", VirtioBits.features(be32("guest_features"), 4, vmsd)));
    }

    private void config(List<FieldValue.Field> out) throws Stop {
        long len = be32("config_len");
        need(len, "the config space");
        int keep = (int) Math.min(len, FieldValue.Bytes.MAX_PREFIX);
        byte[] prefix = new byte[keep];
        b.get(prefix);
        b.position(b.position() + (int) (len - keep));
        out.add(field("config", "buffer", new FieldValue.Bytes(len, prefix)));
    }

    private void queues(List<FieldValue.Field> out) throws Stop {
        int at = b.position();
        long n = be32("the number of queues");
        if (n > QUEUE_MAX) {
            throw new Stop(at, n + " queues; QEMU's virtio has at most " + QUEUE_MAX);
        }
        need(n * 18, n + " queues of 18 bytes");
        List<FieldValue> qs = new ArrayList<>((int) n);
        for (int i = 0; i < n; i++) {
            qs.add(struct(field("num", "uint32", u32("num")), field("align", "uint32", u32("align")),
                    field("desc", "uint64", u64("desc")),
                    field("last_avail_idx", "uint16", new FieldValue.Unsigned(be16("last_avail_idx"), 2))));
        }
        out.add(field("queues", "struct", new FieldValue.Array(List.copyOf(qs))));
        nqueues = (int) n;
    }

    /** The device part: Ferry's virtio-blk parked requests, drawn in VirtioBlk's Javadoc. */
    private void device(List<FieldValue.Field> out) throws Stop {
        if (!"virtio-blk".equals(vmsd)) {
            throw new Stop(b.position(), vmsd == null ? "the section's vmsd has no name, so its device part is unknown"
                    : "the device part of '" + printable(vmsd) + "' has a layout only that device knows");
        }
        List<FieldValue> requests = new ArrayList<>();
        int segments = 0;
        while (true) {
            int at = b.position();
            int marker = u8("a parked-request marker");
            if (marker == 0) {
                break;
            }
            if (marker != 1) {
                throw new Stop(at, String.format("virtio-blk parked-request marker 0x%02x (1 a request, 0 the end)",
                        marker));
            }
            if (requests.size() == MAX_PARKED) {
                throw new Stop(at, "more than " + MAX_PARKED + " parked requests");
            }
            long queue = be32("a parked request's queue");
            int head = be16("a parked request's head");
            int nr = be16("a parked request's readable segment count");
            int nw = be16("a parked request's writable segment count");
            need(12L * (nr + nw), "the " + (nr + nw) + " segments of the parked request at head " + head);
            segments += nr + nw;
            if (segments > MAX_PARKED) {
                throw new Stop(at, "more than " + MAX_PARKED + " segments in parked requests");
            }
            requests.add(struct(field("queue", "uint32", new FieldValue.Unsigned(queue, 4)),
                    field("head", "uint16", new FieldValue.Unsigned(head, 2)),
                    field("readable", "struct", segments(nr)), field("writable", "struct", segments(nw))));
        }
        out.add(field("device", "struct", struct(field("parked_requests", "struct",
                new FieldValue.Array(List.copyOf(requests))))));
    }

    private FieldValue segments(int n) throws Stop {
        List<FieldValue> s = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            s.add(struct(field("gpa", "uint64", u64("a segment's address")), field("len", "uint32", u32("len"))));
        }
        return new FieldValue.Array(List.copyOf(s));
    }

    private FieldValue.Subsection subsection() throws Stop {
        int at = b.position();
        String name = subsectionHeader("a subsection (0x05) or the field's end");
        FieldValue.Struct s = switch (name) {
            case "virtio/device_endian" -> struct(field("device_endian", "uint8",
                    new FieldValue.Unsigned(u8("device_endian"), 1)));
            case "virtio/64bit_features" -> struct(field("guest_features", "uint64",
                    VirtioBits.features(be64("guest_features"), 8, vmsd)));
            case "virtio/virtqueues" -> virtqueues();
            case "virtio/packed_virtqueues" -> packedVirtqueues();
            case "virtio/ringsize" -> ringsize();
            case "virtio/broken" -> struct(field("broken", "bool", new FieldValue.Bool(u8("broken") != 0)));
            case "virtio/extra_state" -> extraState();
            case "virtio/started" -> struct(field("started", "bool", new FieldValue.Bool(u8("started") != 0)));
            case "virtio/disabled" -> struct(field("disabled", "bool", new FieldValue.Bool(u8("disabled") != 0)));
            default -> throw new Stop(at, "unknown subsection '" + name + "'");
        };
        return new FieldValue.Subsection(name, 1, s);
    }

    /** {@code 0x05 | u8 len | name | be32 version}, version 1 (every virtio subsection's); the name. */
    private String subsectionHeader(String what) throws Stop {
        int at = b.position();
        int marker = u8(what);
        if (marker != 0x05) {
            throw new Stop(at, String.format("0x%02x where %s belongs", marker, what));
        }
        int len = u8("a subsection name's length");
        need(len, "the name of a subsection");
        byte[] n = new byte[len];
        b.get(n);
        String name = printable(new String(n, StandardCharsets.ISO_8859_1));
        long version = be32("the version of " + name);
        if (version != 1) {
            throw new Stop(at, "subsection " + name + " version " + version + "; QEMU's is version 1");
        }
        return name;
    }

    private FieldValue.Struct virtqueues() throws Stop {
        need(QUEUE_MAX * 16L, QUEUE_MAX + " queues' ring addresses");
        List<FieldValue> vq = new ArrayList<>();
        for (int i = 0; i < QUEUE_MAX; i++) {
            long avail = b.getLong();
            long used = b.getLong();
            if ((avail | used) != 0) {
                vq.add(struct(index(i), field("avail", "uint64", new FieldValue.Unsigned(avail, 8)),
                        field("used", "uint64", new FieldValue.Unsigned(used, 8))));
            }
        }
        return struct(field("vq", "struct", new FieldValue.Array(List.copyOf(vq))));
    }

    private FieldValue.Struct packedVirtqueues() throws Stop {
        need(QUEUE_MAX * 10L, QUEUE_MAX + " packed queues' indices");
        List<FieldValue> vq = new ArrayList<>();
        for (int i = 0; i < QUEUE_MAX; i++) {
            int lastAvail = b.getShort() & 0xffff;
            boolean availWrap = b.get() != 0;
            int used = b.getShort() & 0xffff;
            boolean usedWrap = b.get() != 0;
            long inuse = b.getInt() & 0xffff_ffffL;
            if (i < nqueues) {
                vq.add(struct(index(i), field("last_avail_idx", "uint16", new FieldValue.Unsigned(lastAvail, 2)),
                        field("last_avail_wrap_counter", "bool", new FieldValue.Bool(availWrap)),
                        field("used_idx", "uint16", new FieldValue.Unsigned(used, 2)),
                        field("used_wrap_counter", "bool", new FieldValue.Bool(usedWrap)),
                        field("inuse", "uint32", new FieldValue.Unsigned(inuse, 4))));
            }
        }
        return struct(field("vq", "struct", new FieldValue.Array(List.copyOf(vq))));
    }

    private FieldValue.Struct ringsize() throws Stop {
        need(QUEUE_MAX * 4L, QUEUE_MAX + " queues' default sizes");
        List<FieldValue> vq = new ArrayList<>();
        for (int i = 0; i < QUEUE_MAX; i++) {
            long num = b.getInt() & 0xffff_ffffL;
            if (num != 0) {
                vq.add(struct(index(i), field("num_default", "uint32", new FieldValue.Unsigned(num, 4))));
            }
        }
        return struct(field("vq", "struct", new FieldValue.Array(List.copyOf(vq))));
    }

    /**
     * virtio-mmio's extra state is its own vmstate with no fields and one subsection, so it comes
     * with a subsection header of its own: {@code 0x05 | 17 | "virtio_mmio/state" | be32 1 |
     * be32 guest_features[2] | 1024 x {be16 num | u8 enabled | be32 desc[2] | avail[2] | used[2]}}
     * (index 0 the low half).
     */
    private FieldValue.Struct extraState() throws Stop {
        int at = b.position();
        String name = subsectionHeader("virtio-mmio's subsection virtio_mmio/state (0x05)");
        if (!name.equals("virtio_mmio/state")) {
            throw new Stop(at, "virtio/extra_state holds '" + name + "', not virtio-mmio's virtio_mmio/state");
        }
        long lo = be32("guest_features[0]");
        long features = lo | be32("guest_features[1]") << 32;
        need(QUEUE_MAX * 27L, QUEUE_MAX + " queues' transport state");
        List<FieldValue> vq = new ArrayList<>();
        for (int i = 0; i < QUEUE_MAX; i++) {
            int num = b.getShort() & 0xffff;
            int enabled = b.get() & 0xff;
            long desc = pair();
            long avail = pair();
            long used = pair();
            if ((num | enabled | desc | avail | used) != 0) {
                vq.add(struct(index(i), field("num", "uint16", new FieldValue.Unsigned(num, 2)),
                        field("enabled", "bool", new FieldValue.Bool(enabled != 0)),
                        field("desc", "uint64", new FieldValue.Unsigned(desc, 8)),
                        field("avail", "uint64", new FieldValue.Unsigned(avail, 8)),
                        field("used", "uint64", new FieldValue.Unsigned(used, 8))));
            }
        }
        FieldValue.Struct state = struct(field("guest_features", "uint32",
                VirtioBits.features(features, 8, vmsd)), field("vqs", "struct", new FieldValue.Array(List.copyOf(vq))));
        return new FieldValue.Struct(List.of(), List.of(new FieldValue.Subsection(name, 1, state)));
    }

    /** be32 low half, be32 high half (checked by the caller). */
    private long pair() {
        long lo = b.getInt() & 0xffff_ffffL;
        return lo | (b.getInt() & 0xffff_ffffL) << 32;
    }

    private static FieldValue.Field index(int i) {
        return field("index", "uint16", new FieldValue.Unsigned(i, 2));
    }

    private FieldValue rest() {
        int len = b.capacity() - mark;
        byte[] prefix = new byte[Math.min(len, FieldValue.Bytes.MAX_PREFIX)];
        b.get(mark, prefix);
        return new FieldValue.Bytes(len, prefix);
    }

    private static FieldValue.Field field(String name, String type, FieldValue v) {
        return new FieldValue.Field(name, type, v);
    }

    private static FieldValue.Struct struct(FieldValue.Field... f) {
        return new FieldValue.Struct(List.of(f), List.of());
    }

    private int u8(String what) throws Stop {
        need(1, what);
        return b.get() & 0xff;
    }

    private int be16(String what) throws Stop {
        need(2, what);
        return b.getShort() & 0xffff;
    }

    private long be32(String what) throws Stop {
        need(4, what);
        return b.getInt() & 0xffff_ffffL;
    }

    private long be64(String what) throws Stop {
        need(8, what);
        return b.getLong();
    }

    private FieldValue u32(String what) throws Stop {
        return new FieldValue.Unsigned(be32(what), 4);
    }

    private FieldValue u64(String what) throws Stop {
        return new FieldValue.Unsigned(be64(what), 8);
    }

    private void need(long n, String what) throws Stop {
        if (n > b.remaining()) {
            throw new Stop(b.position(), "the field ends inside " + what + ": " + n + " bytes needed, "
                    + b.remaining() + " left");
        }
    }

    /** {@code s} with anything but printable ASCII as '?', for messages about hostile names. */
    private static String printable(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            sb.append(c >= 0x20 && c < 0x7f ? c : '?');
        }
        return sb.toString();
    }

    /** Why and where decoding stopped; thrown only inside this class. */
    private static final class Stop extends Exception {
        private static final long serialVersionUID = 1L;
        final int at;

        Stop(int at, String message) {
            super(message, null, false, false);
            this.at = at;
        }
    }
}
