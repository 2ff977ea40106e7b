package dev.ferry.vfio.uapi;

/**
 * {@code struct vfio_irq_info} for {@code VFIO_DEVICE_GET_IRQ_INFO} on a device fd.
 * <pre>
 *  0 argsz (u32) = 16  4 flags (u32, VFIO_IRQ_INFO_*)  8 index (u32, input)  12 count (u32)
 * </pre>
 */
public final class VfioIrqInfo extends VfioStruct {
    public static final int SIZE = 16;
    public static final int ARGSZ_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int INDEX_OFFSET = 8;
    public static final int COUNT_OFFSET = 12;

    public VfioIrqInfo() {
        super(SIZE, SIZE);
    }

    /** Asks about IRQ index {@code index}: {@code argsz} 16, outputs zeroed. */
    public void prepare(int index) {
        setArgsz(SIZE);
        clearAfterArgsz();
        u32(INDEX_OFFSET, index);
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public int index() {
        return u32(INDEX_OFFSET);
    }

    public int count() {
        return u32(COUNT_OFFSET);
    }
}
