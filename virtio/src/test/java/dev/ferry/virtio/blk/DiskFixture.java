package dev.ferry.virtio.blk;

import dev.ferry.core.device.DeviceOptions;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.VirtioMmioDevice;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.transport.MmioGuest;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static dev.ferry.virtio.transport.MmioGuest.buf;
import static dev.ferry.virtio.transport.MmioGuest.small;

/**
 * A virtio-blk disk (made by {@link VirtioBlkKind} from config options, as the VMM makes it) on a
 * raw image with a known pattern, and a guest that sends it requests: header
 * {@code le32 type | le32 reserved | le64 sector} in small buffer 0, data, status byte in small
 * buffer 1 (blk/description.tex).
 */
public final class DiskFixture {
    public static final int T_IN = 0;
    public static final int T_OUT = 1;
    public static final int T_FLUSH = 4;
    public static final int T_GET_ID = 8;
    public static final int T_DISCARD = 11;
    public static final int T_WRITE_ZEROES = 13;
    public static final int S_OK = 0;
    public static final int S_IOERR = 1;
    public static final int S_UNSUPP = 2;
    public static final long V1 = Virtio.bit(Virtio.F_VERSION_1);
    /** What a Linux-like driver accepts of a read-write disk. */
    public static final long FEATURES = V1 | Virtio.bit(Virtio.F_INDIRECT_DESC) | Virtio.bit(VirtioBlk.F_SEG_MAX)
            | Virtio.bit(VirtioBlk.F_BLK_SIZE) | Virtio.bit(VirtioBlk.F_FLUSH) | Virtio.bit(VirtioBlk.F_CONFIG_WCE)
            | Virtio.bit(VirtioBlk.F_DISCARD) | Virtio.bit(VirtioBlk.F_WRITE_ZEROES);

    /** The status and used length a request completed with. */
    public record Done(int status, long usedLength) {
    }

    private DiskFixture() {
    }

    /** Byte {@code i} of a fresh image: differs from sector to sector and within one. */
    public static byte pattern(long i) {
        return (byte) (i * 31 + i / 512 + 7);
    }

    /** A raw image of {@code bytes} holding {@link #pattern}. */
    public static Path image(Path dir, String name, int bytes) throws Exception {
        byte[] b = new byte[bytes];
        for (int i = 0; i < bytes; i++) {
            b[i] = pattern(i);
        }
        return Files.write(dir.resolve(name), b);
    }

    /** A machine with disk {@code dev0} on {@code image}, started unless {@code incoming}. */
    public static MmioGuest disk(Path image, Map<String, Object> options, boolean incoming) throws Exception {
        Map<String, Object> o = new HashMap<>(options);
        o.put("image", image.toString());
        MmioGuest g = new MmioGuest(incoming ? "dst" : "vm", incoming,
                c -> (VirtioMmioDevice) new VirtioBlkKind().create(c, new DeviceOptions("devices[0]", o)));
        if (!incoming) {
            g.machine.vmStart();
        }
        return g;
    }

    public static byte[] header(int type, long sector) {
        return ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putInt(type).putInt(0).putLong(sector).array();
    }

    /** A DISCARD / WRITE_ZEROES range. */
    public static byte[] range(long sector, int sectors, int flags) {
        return ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(sector).putInt(sectors).putInt(flags)
                .array();
    }

    /** Makes the request available without kicking; returns its head. */
    public static int offer(MmioGuest g, DriverQueue q, int type, long sector, List<DriverQueue.Buffer> out,
                            List<DriverQueue.Buffer> in) {
        return offer(g, q, 0, type, sector, out, in);
    }

    /** As {@link #offer}, header and status in small buffers {@code 2 slot} and {@code 2 slot + 1}. */
    public static int offer(MmioGuest g, DriverQueue q, int slot, int type, long sector, List<DriverQueue.Buffer> out,
                            List<DriverQueue.Buffer> in) {
        g.writeBytes(small(2 * slot), header(type, sector));
        g.mem.writeU8(small(2 * slot + 1), 0xff);
        List<DriverQueue.Buffer> o = new ArrayList<>();
        o.add(buf(small(2 * slot), 16));
        o.addAll(out);
        List<DriverQueue.Buffer> i = new ArrayList<>(in);
        i.add(buf(small(2 * slot + 1), 1));
        return q.add(o, i, false);
    }

    /** Sends one request and waits for it. */
    public static Done run(MmioGuest g, DriverQueue q, int type, long sector, List<DriverQueue.Buffer> out,
                           List<DriverQueue.Buffer> in) throws InterruptedException {
        int head = offer(g, q, type, sector, out, in);
        g.kick(0);
        return await(g, q, head, 0);
    }

    /** Waits for the next used element, which must be {@code head}, and reads its status byte. */
    public static Done await(MmioGuest g, DriverQueue q, int head, int slot) throws InterruptedException {
        DriverQueue.Used u = g.awaitUsed(q);
        if (u.id() != head) {
            throw new AssertionError("used id " + u.id() + ", expected " + head);
        }
        return new Done(g.mem.readU8(small(2 * slot + 1)), u.length());
    }
}
