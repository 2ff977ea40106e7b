package dev.ferry.vfio.uapi;

import static dev.ferry.vfio.uapi.VfioIoctls.VFIO_DEVICE_FEATURE_GET;
import static dev.ferry.vfio.uapi.VfioIoctls.VFIO_DEVICE_FEATURE_MASK;
import static dev.ferry.vfio.uapi.VfioIoctls.VFIO_DEVICE_FEATURE_PROBE;
import static dev.ferry.vfio.uapi.VfioIoctls.VFIO_DEVICE_FEATURE_SET;

/**
 * {@code struct vfio_device_feature}, the buffer of one {@code VFIO_DEVICE_FEATURE} call on a
 * device fd: an 8-byte header, then the feature's payload in {@code data[]}.
 * <pre>
 *  0 argsz (u32)   8 + payload length; the kernel reads and writes no further
 *  4 flags (u32)   bits 0..15 feature index | GET (1&lt;&lt;16) or SET (1&lt;&lt;17) [| PROBE (1&lt;&lt;18)]
 *  8 data[]        the payload struct (subclasses), 8-byte aligned
 * </pre>
 * This class alone serves calls without a payload (PROBE, DMA_LOGGING_STOP); each payload struct
 * is a subclass whose {@code SIZE} is the payload's {@code sizeof}, whose {@code *_OFFSET}s are
 * relative to {@code data}, and whose {@code ARGSZ} is the header plus that payload. The
 * {@code prepare…} builders set {@code argsz}, {@code flags} and the payload in one go, so a
 * buffer never leaves with a stale {@code argsz}.
 */
public class VfioDeviceFeature extends VfioStruct {
    public static final int SIZE = 8;
    public static final int ARGSZ_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int DATA_OFFSET = 8;

    /** A header-only buffer, for PROBE and payload-less SETs. */
    public VfioDeviceFeature() {
        this(0);
    }

    /** A buffer with room for {@code payloadCapacity} bytes after the header. */
    protected VfioDeviceFeature(int payloadCapacity) {
        super(VfioDeviceFeature.SIZE + payloadCapacity, VfioDeviceFeature.SIZE);
    }

    /**
     * A payload-less call: {@code argsz} 8, {@code flags = op | feature}, e.g.
     * {@code prepare(VFIO_DEVICE_FEATURE_SET, VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP)}.
     */
    public final void prepare(int op, int feature) {
        prepare(op, feature, 0);
    }

    /**
     * Asks whether the device supports {@code feature} with the given {@code ops} (GET and/or
     * SET): the ioctl succeeds if so, fails with ENOTTY if the feature is unknown, EINVAL if the
     * op is not supported. No payload is sent.
     */
    public final void prepareProbe(int feature, int ops) {
        if (ops == 0 || (ops & ~(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET)) != 0) {
            throw new IllegalArgumentException("probe ops must be GET and/or SET, not 0x" + Integer.toHexString(ops));
        }
        setHeader(VfioDeviceFeature.SIZE, VFIO_DEVICE_FEATURE_PROBE | ops | checkFeature(feature));
    }

    /** Sets the header for a GET or SET carrying {@code payloadLength} bytes and zeroes the payload. */
    protected final void prepare(int op, int feature, int payloadLength) {
        if (op != VFIO_DEVICE_FEATURE_GET && op != VFIO_DEVICE_FEATURE_SET) {
            throw new IllegalArgumentException("op must be VFIO_DEVICE_FEATURE_GET or _SET, not 0x"
                    + Integer.toHexString(op));
        }
        setHeader(VfioDeviceFeature.SIZE + payloadLength, op | checkFeature(feature));
    }

    /** The {@code flags} word: op bits and feature index. */
    public final int flags() {
        return u32(FLAGS_OFFSET);
    }

    /** The feature index in {@code flags}. */
    public final int feature() {
        return flags() & VFIO_DEVICE_FEATURE_MASK;
    }

    /** Reads a u32 of the payload at {@code offset} from {@code data}. */
    protected final int payloadU32(int offset) {
        return u32(DATA_OFFSET + offset);
    }

    protected final void payloadU32(int offset, int v) {
        u32(DATA_OFFSET + offset, v);
    }

    protected final long payloadU64(int offset) {
        return u64(DATA_OFFSET + offset);
    }

    protected final void payloadU64(int offset, long v) {
        u64(DATA_OFFSET + offset, v);
    }

    private void setHeader(int argsz, int flags) {
        setArgsz(argsz);
        clearAfterArgsz();
        u32(FLAGS_OFFSET, flags);
    }

    private static int checkFeature(int feature) {
        if ((feature & ~VFIO_DEVICE_FEATURE_MASK) != 0) {
            throw new IllegalArgumentException("feature index " + feature + " outside 0..0xffff");
        }
        return feature;
    }
}
