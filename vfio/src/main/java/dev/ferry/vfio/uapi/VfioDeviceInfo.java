package dev.ferry.vfio.uapi;

/**
 * {@code struct vfio_device_info} for {@code VFIO_DEVICE_GET_INFO} on a device fd.
 * <pre>
 *  0 argsz (u32)  4 flags (u32, VFIO_DEVICE_FLAGS_*)  8 num_regions (u32)  12 num_irqs (u32)
 * 16 cap_offset (u32, 0 = no capability chain)      20 pad (u32)
 * </pre>
 * 24 bytes as current kernels' headers declare it; headers before the {@code pad} member (Debian
 * 12's 6.1) say 20. Either kernel accepts 24: it needs at least 16 (through {@code num_irqs}).
 * When the device has capabilities and {@code argsz} is too small for them the kernel raises
 * {@code argsz} to what it needs and leaves {@code cap_offset} 0; Ferry does not read the chain.
 */
public final class VfioDeviceInfo extends VfioStruct {
    public static final int SIZE = 24;
    public static final int ARGSZ_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int NUM_REGIONS_OFFSET = 8;
    public static final int NUM_IRQS_OFFSET = 12;
    public static final int CAP_OFFSET_OFFSET = 16;
    public static final int PAD_OFFSET = 20;

    public VfioDeviceInfo() {
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

    public int numRegions() {
        return u32(NUM_REGIONS_OFFSET);
    }

    public int numIrqs() {
        return u32(NUM_IRQS_OFFSET);
    }

    public int capOffset() {
        return u32(CAP_OFFSET_OFFSET);
    }

    /** Whether the device supports {@code VFIO_DEVICE_RESET}. */
    public boolean canReset() {
        return (flags() & VfioIoctls.VFIO_DEVICE_FLAGS_RESET) != 0;
    }

    /** Whether it is a vfio-pci device. */
    public boolean isPci() {
        return (flags() & VfioIoctls.VFIO_DEVICE_FLAGS_PCI) != 0;
    }
}
