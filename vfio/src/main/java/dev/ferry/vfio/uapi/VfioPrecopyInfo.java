package dev.ferry.vfio.uapi;

/**
 * {@code struct vfio_precopy_info} for {@code VFIO_MIG_GET_PRECOPY_INFO} on the migration
 * <em>data fd</em> (kernel 6.2+), valid only while the device is in PRE_COPY or PRE_COPY_P2P.
 * <pre>
 *  0 argsz (u32) = 24   4 flags (u32, 0 unless opted in to PRECOPY_INFOv2)
 *  8 initial_bytes (u64)   counts down as the initial state is read; leave PRE_COPY after 0
 * 16 dirty_bytes (u64)     estimate of state changed since; grows with device activity
 * </pre>
 */
public final class VfioPrecopyInfo extends VfioStruct {
    public static final int SIZE = 24;
    public static final int ARGSZ_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int INITIAL_BYTES_OFFSET = 8;
    public static final int DIRTY_BYTES_OFFSET = 16;

    public VfioPrecopyInfo() {
        super(SIZE, SIZE);
    }

    /** Resets to {@code argsz} 24 and zeroed outputs, before each call. */
    public void prepare() {
        setArgsz(SIZE);
        clearAfterArgsz();
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public long initialBytes() {
        return u64(INITIAL_BYTES_OFFSET);
    }

    public long dirtyBytes() {
        return u64(DIRTY_BYTES_OFFSET);
    }
}
