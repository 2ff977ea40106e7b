package dev.ferry.virtio.state;

import dev.ferry.core.memory.Gpa;
import dev.ferry.core.migration.MigrationException;
import dev.ferry.core.migration.SaveEntry;
import dev.ferry.core.testing.ByteArrayLoadStream;
import dev.ferry.core.testing.ByteArraySaveStream;
import dev.ferry.virtio.transport.MmioGuest;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * A virtio device's migration section as its {@link SaveEntry} saves and loads it (what the
 * engine does between the section header and footer), and edits of the saved bytes at the
 * places QEMU's {@code virtio} field layout fixes (see {@code VirtioState}):
 * <pre>
 *   0 host_features_sel  4 guest_features_sel  8 guest_page_shift  12 status  13 isr  14 queue_sel
 *   16 features[31:0]  20 config_len  24 config  then nqueues, 18 bytes per queue, device part, subsections
 * </pre>
 */
final class StateBlob {
    static final int STATUS = 12;
    static final int ISR = 13;
    static final int CONFIG_LEN = 20;
    static final int QUEUE_BYTES = 18;

    private StateBlob() {
    }

    static SaveEntry.VmState<?> entry(MmioGuest g) {
        for (SaveEntry e : g.machine.migration().entries()) {
            if (e instanceof SaveEntry.VmState<?> v && v.idstr().equals(g.transport.idstr())) {
                return v;
            }
        }
        throw new AssertionError("no section " + g.transport.idstr());
    }

    static byte[] save(MmioGuest g) throws IOException {
        ByteArraySaveStream out = new ByteArraySaveStream();
        entry(g).save(out);
        return out.toByteArray();
    }

    static void load(MmioGuest g, byte[] blob) throws IOException, MigrationException {
        SaveEntry.VmState<?> e = entry(g);
        e.load(new ByteArrayLoadStream(blob), e.version());
    }

    /** Guest RAM arrives before device state: the destination gets the source's RAM as it is. */
    static void copyRam(MmioGuest from, MmioGuest to) {
        byte[] ram = new byte[(int) MmioGuest.RAM];
        from.machine.memory().read(Gpa.of(0), ram, 0, ram.length);
        to.machine.memory().write(Gpa.of(0), ram, 0, ram.length);
    }

    static int nqueuesAt(byte[] b) {
        return 24 + ByteBuffer.wrap(b).getInt(CONFIG_LEN);
    }

    /** Offset of queue {@code q}'s {@code be32 num}; align +4, desc +8, last_avail_idx +16. */
    static int queueAt(byte[] b, int q) {
        return nqueuesAt(b) + 4 + QUEUE_BYTES * q;
    }

    /** Offset of the device part (after the queues). */
    static int devicePartAt(byte[] b) {
        return queueAt(b, ByteBuffer.wrap(b).getInt(nqueuesAt(b)));
    }

    /** Offset of subsection {@code name}'s header (0x05, length, name, be32 version), or -1. */
    static int subsection(byte[] b, String name) {
        byte[] n = name.getBytes(StandardCharsets.US_ASCII);
        byte[] h = new byte[n.length + 2];
        h[0] = 0x05;
        h[1] = (byte) n.length;
        System.arraycopy(n, 0, h, 2, n.length);
        for (int i = devicePartAt(b); i + h.length <= b.length; i++) {
            if (Arrays.equals(b, i, i + h.length, h, 0, h.length)) {
                return i;
            }
        }
        return -1;
    }

    /** Offset of the first byte after subsection {@code name}'s header. */
    static int subsectionBody(byte[] b, String name) {
        int at = subsection(b, name);
        if (at < 0) {
            throw new AssertionError("no subsection " + name);
        }
        return at + 2 + name.length() + 4;
    }

    static byte[] putBe16(byte[] b, int at, int v) {
        byte[] c = b.clone();
        ByteBuffer.wrap(c).putShort(at, (short) v);
        return c;
    }

    static byte[] putBe32(byte[] b, int at, int v) {
        byte[] c = b.clone();
        ByteBuffer.wrap(c).putInt(at, v);
        return c;
    }

    static byte[] putBe64(byte[] b, int at, long v) {
        byte[] c = b.clone();
        ByteBuffer.wrap(c).putLong(at, v);
        return c;
    }

    /** {@code b} with {@code [from, to)} replaced by {@code with}. */
    static byte[] splice(byte[] b, int from, int to, byte[] with) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        o.write(b, 0, from);
        o.writeBytes(with);
        o.write(b, to, b.length - to);
        return o.toByteArray();
    }

    /**
     * virtio-blk's device part carrying one parked request: {@code u8 1 | be32 queue | be16 head |
     * be16 nread | be16 nwrite | (be64 gpa | be32 len)... | u8 0}; segments as {gpa, len} pairs.
     */
    static byte[] parkedRequest(int queue, int head, long[][] readable, long[][] writable) {
        ByteBuffer p = ByteBuffer.allocate(1 + 4 + 6 + 12 * (readable.length + writable.length) + 1);
        p.put((byte) 1).putInt(queue).putShort((short) head).putShort((short) readable.length)
                .putShort((short) writable.length);
        for (long[][] segs : new long[][][] {readable, writable}) {
            for (long[] s : segs) {
                p.putLong(s[0]).putInt((int) s[1]);
            }
        }
        return p.put((byte) 0).array();
    }

    /** {@code b} with its device part (one 0 byte: nothing parked) replaced by {@code devicePart}. */
    static byte[] withDevicePart(byte[] b, byte[] devicePart) {
        int at = devicePartAt(b);
        if (b[at] != 0) {
            throw new AssertionError("the saved device part is not empty");
        }
        return splice(b, at, at + 1, devicePart);
    }

    /** A subsection of {@code version} with {@code body}. */
    static byte[] subsectionBytes(String name, int version, byte[] body) {
        byte[] n = name.getBytes(StandardCharsets.US_ASCII);
        return ByteBuffer.allocate(2 + n.length + 4 + body.length).put((byte) 0x05).put((byte) n.length).put(n)
                .putInt(version).put(body).array();
    }
}
