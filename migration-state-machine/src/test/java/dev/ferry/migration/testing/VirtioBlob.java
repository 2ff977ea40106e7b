package dev.ferry.migration.testing;

import dev.ferry.core.migration.LoadStream;
import dev.ferry.core.migration.SaveStream;
import dev.ferry.core.migration.VmStateDescription;
import dev.ferry.core.migration.VmStateField;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * The bytes of a "virtio" field written by hand, literal by literal, as QEMU's virtio_save writes
 * them for a virtio-blk on virtio-mmio (Ferry's VirtioState draws the layout): a device with 2
 * queues (256 and 128 entries), one parked request and the subsections 64bit_features,
 * virtqueues, ringsize, broken, extra_state (with virtio-mmio's own subsection header inside) and
 * started. And {@link #VMSD}, a section that carries such bytes as its one field of type
 * "virtio", so a stream with one can be saved without the virtio module.
 */
public final class VirtioBlob {
    public static final String IDSTR = "virtio-mmio@d0000000/virtio-blk";
    /** SEG_MAX | BLK_SIZE | FLUSH | EVENT_IDX, and VERSION_1 above. */
    public static final long FEATURES = 0x1_2000_0244L;
    /** Where the device part starts: after transport, registers, config and queues. */
    public static final int DEVICE_PART = 12 + 8 + 4 + 8 + 4 + 2 * 18;

    /** Section "virtio-blk" v2 with one field "virtio" of type "virtio" holding the bytes as they are. */
    public static final VmStateDescription<byte[]> VMSD = VmStateDescription.<byte[]>builder("virtio-blk", 2)
            .field(new VmStateField<byte[]>() {
                @Override
                public String name() {
                    return "virtio";
                }

                @Override
                public String type() {
                    return "virtio";
                }

                @Override
                public int size(byte[] b) {
                    return b.length;
                }

                @Override
                public int sinceVersion() {
                    return 1;
                }

                @Override
                public void save(byte[] b, SaveStream out) throws IOException {
                    out.putBytes(b);
                }

                @Override
                public void load(byte[] b, LoadStream in) throws IOException {
                    in.getBytes(b, 0, b.length);
                }
            })
            .build();

    private VirtioBlob() {
    }

    /** The whole blob, with its parked request and QEMU's extra_state layout. */
    public static byte[] build() {
        return build(true, true, new ArrayList<>());
    }

    /**
     * @param devicePart      with virtio-blk's device part (one parked request), else without any
     * @param mmioStateHeader extra_state with virtio-mmio's subsection header inside, as QEMU writes
     * @param ends            gets the offsets where the blob could end whole (after the device
     *                        part and after each subsection: every subsection is optional)
     */
    public static byte[] build(boolean devicePart, boolean mmioStateHeader, List<Integer> ends) {
        StreamBytes s = new StreamBytes().be32(1).be32(0).be32(0) // transport
                .u8(0x0f).u8(0x01).be16(1).be32((int) FEATURES)
                .be32(8).be64(0x20000) // config: capacity
                .be32(2)
                .be32(256).be32(4096).be64(0x10000).be16(7)
                .be32(128).be32(4096).be64(0x20000).be16(0);
        if (devicePart) {
            s.u8(1).be32(0).be16(5).be16(1).be16(1).be64(0x3000).be32(16).be64(0x4000).be32(1).u8(0);
        }
        ends.add(s.size());
        s.u8(0x05).str("virtio/64bit_features").be32(1).be64(FEATURES);
        ends.add(s.size());
        s.u8(0x05).str("virtio/virtqueues").be32(1);
        for (int i = 0; i < 1024; i++) {
            s.be64(i < 2 ? 0x10000 * (i + 1) + 0x1000 : 0).be64(i < 2 ? 0x10000 * (i + 1) + 0x2000 : 0);
        }
        ends.add(s.size());
        s.u8(0x05).str("virtio/ringsize").be32(1);
        for (int i = 0; i < 1024; i++) {
            s.be32(i < 2 ? 256 : 0);
        }
        ends.add(s.size());
        s.u8(0x05).str("virtio/broken").be32(1).u8(1);
        ends.add(s.size());
        s.u8(0x05).str("virtio/extra_state").be32(1);
        if (mmioStateHeader) {
            s.u8(0x05).str("virtio_mmio/state").be32(1);
        }
        s.be32((int) FEATURES).be32((int) (FEATURES >>> 32));
        for (int i = 0; i < 1024; i++) {
            boolean on = i < 2;
            s.be16(on ? 256 >> i : 0).u8(on ? 1 : 0);
            for (int k = 0; k < 3; k++) {
                s.be32(on ? 0x10000 * (i + 1) + 0x1000 * k : 0).be32(0);
            }
        }
        ends.add(s.size());
        s.u8(0x05).str("virtio/started").be32(1).u8(1);
        return s.toByteArray();
    }
}
