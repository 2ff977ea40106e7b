package dev.ferry.vfio.uapi;

/**
 * {@code struct vfio_group_status} for {@code VFIO_GROUP_GET_STATUS} on a group fd.
 * <pre>
 *  0 argsz (u32) = 8   4 flags (u32, out): VFIO_GROUP_FLAGS_VIABLE 1&lt;&lt;0 | CONTAINER_SET 1&lt;&lt;1
 * </pre>
 * A group is viable when no device in it is driven by a host driver that does DMA on the host's
 * behalf (all bound to vfio-pci, or unbound); only then can it join a container.
 */
public final class VfioGroupStatus extends VfioStruct {
    public static final int SIZE = 8;
    public static final int ARGSZ_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;

    public VfioGroupStatus() {
        super(SIZE, SIZE);
    }

    /** {@code argsz} 8, flags zeroed. */
    public void prepare() {
        setArgsz(SIZE);
        clearAfterArgsz();
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public boolean viable() {
        return (flags() & VfioIoctls.VFIO_GROUP_FLAGS_VIABLE) != 0;
    }

    public boolean containerSet() {
        return (flags() & VfioIoctls.VFIO_GROUP_FLAGS_CONTAINER_SET) != 0;
    }
}
