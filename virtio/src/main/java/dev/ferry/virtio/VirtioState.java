package dev.ferry.virtio;

import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.core.migration.VmStateDescription;
import dev.ferry.core.migration.VmStateField;
import dev.ferry.virtio.queue.SplitVirtqueue;
import dev.ferry.virtio.queue.VirtqueueError;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * A virtio-mmio device's migration state in QEMU's format: the device's section (e.g.
 * {@code "virtio-blk"}, version 2) holds one field {@code "virtio"} of type {@code virtio}, whose
 * bytes are what QEMU's {@code virtio_save} writes for a virtio-mmio device (big-endian):
 * <pre>
 *   be32 host_features_sel | be32 guest_features_sel | be32 guest_page_shift     transport config
 *   u8 status | u8 isr | be16 queue_sel | be32 guest_features[31:0]
 *   be32 config_len | config bytes
 *   be32 nqueues  (the leading queues whose size is not 0)
 *   per queue:  be32 num | be32 align | be64 desc | be16 last_avail_idx
 *   device part (the model's save: virtio-blk's parked requests)
 *   subsections (u8 0x05 | u8 len | name | be32 version | fields), each when needed:
 *     virtio/64bit_features  be64 guest_features                        features above bit 31 offered (always:
 *                                                                       VERSION_1), as QEMU decides
 *     virtio/virtqueues      1024 x { be64 avail | be64 used }          always (VERSION_1 offered)
 *     virtio/ringsize        1024 x be32 num_default                    a queue not at its default size
 *     virtio/broken          u8 broken                                  NEEDS_RESET
 *     virtio/extra_state     0x05 | 17 | "virtio_mmio/state" | be32 1   always (modern mmio): virtio-mmio's
 *                            | be32 guest_features[2] |                 own vmstate, no fields and this
 *                            1024 x { be16 num | u8 enabled |           one subsection
 *                                     be32 desc[2] | be32 avail[2] | be32 used[2] }   ([0] the low half)
 *     virtio/started         u8 started                                 the driver set DRIVER_OK
 * </pre>
 * Loading is QEMU's {@code virtio_load} with its checks, done before the destination accepts the
 * stream: a queue count or size this device cannot have, a ring address of 0 with a non-zero
 * index, features it does not offer, and — from guest RAM, which arrived before any device state —
 * an avail index more than a ring ahead (the device is marked broken, the load continues) or more
 * requests in use than the ring holds (the load fails). Everything is read into locals first and
 * applied only when all of it checks, so a refused load leaves the device as it was.
 */
final class VirtioState implements VmStateField<VirtioMmio> {
    static final int SUBSECTION = VmStateDescription.SUBSECTION;
    static final int ALIGN = 4096;
    static final int MAX_CONFIG = 0x1000 - 0x100;
    /** virtio_mmio/state's entry: be16 num | u8 enabled | be32 desc[2] | be32 avail[2] | be32 used[2]. */
    static final int EXTRA_ENTRY = 27;
    private int lastSize;

    /** The section description of {@code device}'s state: one {@code virtio} field. */
    static VmStateDescription<VirtioMmio> description(VirtioDeviceModel model) {
        return VmStateDescription.<VirtioMmio>builder(model.name(), model.stateVersion())
                .field(new VirtioState())
                .build();
    }

    @Override
    public String name() {
        return "virtio";
    }

    @Override
    public String type() {
        return "virtio";
    }

    /** The bytes the last save wrote: QEMU's vmdesc gives a virtio field its written size. */
    @Override
    public int size(VirtioMmio d) {
        return lastSize;
    }

    @Override
    public int sinceVersion() {
        return 1;
    }

    /**
     * Writes the field. The fixed parts go through one heap buffer each (before and after the
     * device part): the subsections alone are 1024-entry tables, and one bulk put keeps the
     * switchover short.
     */
    @Override
    public void save(VirtioMmio d, SaveStream out) throws IOException {
        long start = out.bytesWritten();
        synchronized (d) {
            byte[] cfg = d.model.config();
            ByteBuffer head = ByteBuffer.allocate(12 + 8 + 4 + cfg.length + 4 + 18 * d.queues.length);
            head.putInt(d.hostFeaturesSel).putInt(d.guestFeaturesSel).putInt(0); // guest_page_shift: legacy only
            head.put((byte) d.status).put((byte) d.isr).putShort((short) d.queueSel).putInt((int) d.guestFeatures);
            head.putInt(cfg.length).put(cfg);
            int n = 0;
            while (n < d.queues.length && d.queues[n].num != 0) {
                n++;
            }
            head.putInt(n);
            for (int i = 0; i < n; i++) {
                MmioQueue q = d.queues[i];
                head.putInt(q.num).putInt(ALIGN).putLong(q.desc).putShort((short) (q.ready ? q.ring.lastAvailIdx() : 0));
            }
            out.putBytes(head.array(), 0, head.position());
            d.model.save(out);
            ByteBuffer tail = ByteBuffer.allocate(64 * 7 + 8 + 16 * Virtio.QUEUE_MAX + 4 * Virtio.QUEUE_MAX + 1 + 8
                    + 27 * Virtio.QUEUE_MAX + 1);
            if (d.hostFeatures >>> 32 != 0) { // QEMU: host_features, not what the guest took
                subsection(tail, "virtio/64bit_features");
                tail.putLong(d.guestFeatures);
            }
            // The tables' entries past the device's queues are zeros, which the fresh buffer holds
            // already: skipping them keeps this cheap even before the JIT has seen it (a fresh
            // VMM saves a device once, inside the guest's pause: ~1000 puts per table cost 1.5-4 ms).
            subsection(tail, "virtio/virtqueues");
            for (MmioQueue q : d.queues) {
                tail.putLong(q.avail).putLong(q.used);
            }
            skip(tail, 16 * (Virtio.QUEUE_MAX - d.queues.length));
            boolean resized = false;
            for (MmioQueue q : d.queues) {
                resized |= q.num != d.model.queueMaxSize();
            }
            if (resized) {
                subsection(tail, "virtio/ringsize");
                for (int i = 0; i < d.queues.length; i++) {
                    tail.putInt(d.model.queueMaxSize());
                }
                skip(tail, 4 * (Virtio.QUEUE_MAX - d.queues.length));
            }
            if (d.brokenReason != null) {
                subsection(tail, "virtio/broken");
                tail.put((byte) 1);
            }
            subsection(tail, "virtio/extra_state");
            subsection(tail, "virtio_mmio/state"); // QEMU's vmstate_virtio_mmio: no fields, one subsection
            tail.putInt((int) d.guestFeatures).putInt((int) (d.guestFeatures >>> 32));
            for (MmioQueue q : d.queues) {
                tail.putShort((short) q.num).put((byte) (q.ready ? 1 : 0));
                for (long x : new long[] {q.desc, q.avail, q.used}) {
                    tail.putInt((int) x).putInt((int) (x >>> 32));
                }
            }
            skip(tail, 27 * (Virtio.QUEUE_MAX - d.queues.length));
            if (d.started) {
                subsection(tail, "virtio/started");
                tail.put((byte) 1);
            }
            out.putBytes(tail.array(), 0, tail.position());
        }
        lastSize = (int) (out.bytesWritten() - start);
    }

    /** Leaves {@code n} bytes of a fresh (zeroed) buffer as they are. */
    private static void skip(ByteBuffer b, int n) {
        b.position(b.position() + n);
    }

    private static void subsection(ByteBuffer out, String name) {
        byte[] n = name.getBytes(StandardCharsets.US_ASCII);
        out.put((byte) SUBSECTION).put((byte) n.length).put(n).putInt(1);
    }

    /** What the stream says, before any of it is applied. */
    private static final class Loaded {
        int hostFeaturesSel;
        int guestFeaturesSel;
        int status;
        int isr;
        int queueSel;
        long features;
        boolean features64;
        byte[] config;
        int nqueues;
        int[] num;
        long[] desc;
        long[] avail;
        long[] used;
        boolean[] enabled;
        int[] lastAvail;
        boolean broken;
        boolean started;
        boolean extraState;
        boolean virtqueues;
    }

    @Override
    public void load(VirtioMmio d, LoadStream in) throws IOException, MigrationException {
        String who = d.name + " (" + d.model.name() + ")";
        Loaded l = new Loaded();
        l.hostFeaturesSel = in.getBe32();
        l.guestFeaturesSel = in.getBe32();
        in.getBe32(); // guest_page_shift
        l.status = in.getU8();
        l.isr = in.getU8();
        l.queueSel = in.getBe16();
        l.features = Integer.toUnsignedLong(in.getBe32());
        int configLen = in.getBe32();
        if (configLen < 0 || configLen > MAX_CONFIG) {
            throw new MigrationException(who + ": config space of " + Integer.toUnsignedString(configLen)
                    + " bytes; a virtio-mmio device has at most " + MAX_CONFIG);
        }
        l.config = new byte[configLen];
        in.getBytes(l.config, 0, configLen);
        int n = in.getBe32();
        if (n < 0 || n > Virtio.QUEUE_MAX) {
            throw new MigrationException(who + ": Invalid number of virtqueues: 0x" + Integer.toHexString(n));
        }
        if (n > d.queues.length) {
            throw new MigrationException(who + ": the stream has " + n + " virtqueues, this device has "
                    + d.queues.length);
        }
        l.nqueues = n;
        l.num = new int[d.queues.length];
        l.desc = new long[d.queues.length];
        l.avail = new long[d.queues.length];
        l.used = new long[d.queues.length];
        l.enabled = new boolean[d.queues.length];
        l.lastAvail = new int[d.queues.length];
        for (int i = 0; i < n; i++) {
            l.num[i] = in.getBe32();
            int align = in.getBe32();
            l.desc[i] = in.getBe64();
            l.lastAvail[i] = in.getBe16();
            if (l.num[i] < 1 || l.num[i] > d.model.queueMaxSize() || Integer.bitCount(l.num[i]) != 1) {
                throw new MigrationException(who + ": VQ " + i + " size 0x" + Integer.toHexString(l.num[i])
                        + " is not a power of two up to 0x" + Integer.toHexString(d.model.queueMaxSize()));
            }
            if (align != ALIGN) {
                throw new MigrationException(who + ": VQ " + i + " alignment " + align + "; a modern device uses "
                        + ALIGN);
            }
            if (l.desc[i] == 0 && l.lastAvail[i] != 0) {
                throw new MigrationException(String.format("%s: VQ %d address 0x0 inconsistent with Host index 0x%x",
                        who, i, l.lastAvail[i]));
            }
        }
        d.model.load(in, d.model.stateVersion());
        while (subsectionFollows(in)) {
            in.getU8();
            int len = in.getU8();
            byte[] nb = new byte[len];
            in.getBytes(nb, 0, len);
            String sub = dev.ferry.core.migration.StreamText.escape(nb); // printable names are unchanged
            int version = in.getBe32();
            if (version != 1) {
                throw new MigrationException(who + ": subsection " + sub + " version " + version + "; known: 1");
            }
            switch (sub) {
                case "virtio/device_endian" -> {
                    if (in.getU8() != 1) { // VIRTIO_DEVICE_ENDIAN_LITTLE
                        throw new MigrationException(who + ": a big-endian virtio device cannot be loaded");
                    }
                }
                case "virtio/64bit_features" -> {
                    l.features = in.getBe64();
                    l.features64 = true;
                }
                case "virtio/virtqueues" -> {
                    ByteBuffer t = table(in, 16);
                    for (int i = 0; i < d.queues.length; i++) {
                        l.avail[i] = t.getLong(16 * i);
                        l.used[i] = t.getLong(16 * i + 8);
                    }
                    l.virtqueues = true;
                }
                case "virtio/ringsize" -> {
                    ByteBuffer t = table(in, 4);
                    for (int i = 0; i < d.queues.length; i++) {
                        int def = t.getInt(4 * i);
                        if (def != d.model.queueMaxSize()) {
                            throw new MigrationException(who + ": VQ " + i + " default size " + def
                                    + " on the source, " + d.model.queueMaxSize() + " here");
                        }
                    }
                }
                case "virtio/broken" -> l.broken = in.getU8() != 0;
                case "virtio/extra_state" -> {
                    mmioStateHeader(in, who);
                    in.getBe32();
                    in.getBe32();
                    ByteBuffer t = table(in, EXTRA_ENTRY);
                    for (int i = 0; i < Virtio.QUEUE_MAX; i++) {
                        int at = EXTRA_ENTRY * i;
                        boolean en = t.get(at + 2) != 0;
                        if (i < d.queues.length) {
                            int num = Short.toUnsignedInt(t.getShort(at));
                            long desc = halves(t, at + 3);
                            long avail = halves(t, at + 11);
                            long used = halves(t, at + 19);
                            l.enabled[i] = en;
                            if (en && (num != l.num[i] || desc != l.desc[i]
                                    || l.virtqueues && (avail != l.avail[i] || used != l.used[i]))) {
                                throw new MigrationException(who + ": VQ " + i + " transport state (size " + num
                                        + ", desc 0x" + Long.toHexString(desc) + ", driver area 0x" + Long.toHexString(avail)
                                        + ", device area 0x" + Long.toHexString(used) + ") disagrees with the queue state");
                            }
                        } else if (en) {
                            throw new MigrationException(who + ": VQ " + i + " enabled, this device has "
                                    + d.queues.length + " queues");
                        }
                    }
                    l.extraState = true;
                }
                case "virtio/started" -> l.started = in.getU8() != 0;
                default -> throw new MigrationException(who + ": unknown subsection '" + sub + "'");
            }
        }
        if (!l.virtqueues || !l.extraState) {
            throw new MigrationException(who + ": the stream lacks the "
                    + (l.virtqueues ? "virtio/extra_state" : "virtio/virtqueues")
                    + " subsection of a modern virtio-mmio device");
        }
        if ((l.features & ~d.hostFeatures) != 0) {
            throw new MigrationException(String.format("%s: Features 0x%x unsupported. Allowed features: 0x%x", who,
                    l.features, d.hostFeatures));
        }
        if (l.queueSel >= Virtio.QUEUE_MAX) {
            throw new MigrationException(who + ": queue_sel " + l.queueSel);
        }
        // The rings, checked against guest RAM (loaded before any device state).
        SplitVirtqueue[] rings = new SplitVirtqueue[d.queues.length];
        String broken = l.broken ? "NEEDS_RESET on the source" : null;
        for (int i = 0; i < d.queues.length; i++) {
            if (!l.enabled[i]) {
                continue;
            }
            try {
                rings[i] = new SplitVirtqueue(d.memory(), i, l.num[i], l.desc[i], l.avail[i], l.used[i],
                        l.features);
            } catch (VirtqueueError e) {
                throw new MigrationException(who + ": VQ " + i + ": " + e.getMessage(), e);
            }
            try {
                rings[i].restoreFromGuest(l.lastAvail[i]);
            } catch (VirtqueueError e) {
                if (e.fatalOnLoad()) {
                    throw new MigrationException(who + ": " + e.getMessage(), e);
                }
                broken = e.getMessage(); // QEMU: virtio_error, the load goes on with the device broken
            }
        }
        d.applyLoaded(l.hostFeaturesSel, l.guestFeaturesSel, l.status, l.isr, l.queueSel, l.features, l.config,
                l.num, l.desc, l.avail, l.used, l.enabled, rings, l.started, broken);
    }

    /** virtio-mmio's extra state opens with its own subsection, {@code virtio_mmio/state} v1. */
    private static void mmioStateHeader(LoadStream in, String who) throws IOException, MigrationException {
        String expected = "virtio_mmio/state";
        int marker = in.getU8();
        int len = in.getU8();
        byte[] nb = new byte[len];
        in.getBytes(nb, 0, len);
        String name = new String(nb, StandardCharsets.US_ASCII);
        int version = in.getBe32();
        if (marker != SUBSECTION || !name.equals(expected) || version != 1) {
            throw new MigrationException(who + ": virtio/extra_state does not hold virtio-mmio's subsection "
                    + expected + " version 1");
        }
    }

    /**
     * One of the subsections' 1024-entry tables, read at once: field by field the three tables are
     * ~10,000 calls, which a fresh destination runs interpreted, inside the guest's pause (a
     * device's state is loaded once per process), as the save side's bulk writes avoid too.
     */
    private static ByteBuffer table(LoadStream in, int entryBytes) throws IOException {
        byte[] b = new byte[entryBytes * Virtio.QUEUE_MAX];
        in.getBytes(b, 0, b.length);
        return ByteBuffer.wrap(b); // big-endian, as the stream
    }

    /** virtio-mmio's {@code be32 [2]} address, the low half first. */
    private static long halves(ByteBuffer t, int at) {
        return Integer.toUnsignedLong(t.getInt(at)) | Integer.toUnsignedLong(t.getInt(at + 4)) << 32;
    }

    private static boolean subsectionFollows(LoadStream in) throws IOException {
        try {
            return in.peekU8() == SUBSECTION;
        } catch (java.io.EOFException e) {
            return false;
        }
    }
}
