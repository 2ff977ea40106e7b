package dev.ferry.vfio.uapi;

/**
 * {@code struct vfio_device_bind_iommufd} for {@code VFIO_DEVICE_BIND_IOMMUFD} on a device cdev fd
 * (kernel 6.6+): binds the device to an iommufd, after which the device fd accepts every other
 * call.
 * <pre>
 *  0 argsz (u32) = 16   4 flags (u32, 0)   8 iommufd (s32)   12 out_devid (u32, out)
 * </pre>
 * {@code SIZE} is the kernel's minimum ({@code offsetofend(out_devid)}), the whole struct as it
 * was introduced. Newer headers append {@code u64 token_uuid_ptr} at 16, read only with
 * {@code VFIO_DEVICE_BIND_FLAG_TOKEN}; 16 stays valid there.
 */
public final class VfioDeviceBindIommufd extends VfioStruct {
    public static final int SIZE = 16;
    public static final int ARGSZ_OFFSET = 0;
    public static final int FLAGS_OFFSET = 4;
    public static final int IOMMUFD_OFFSET = 8;
    public static final int OUT_DEVID_OFFSET = 12;

    public VfioDeviceBindIommufd() {
        super(SIZE, SIZE);
    }

    public void prepare(int iommufd) {
        if (iommufd < 0) {
            throw new IllegalArgumentException("iommufd " + iommufd + " is negative");
        }
        setArgsz(SIZE);
        clearAfterArgsz();
        u32(IOMMUFD_OFFSET, iommufd);
    }

    public int flags() {
        return u32(FLAGS_OFFSET);
    }

    public int iommufd() {
        return u32(IOMMUFD_OFFSET);
    }

    /** The device's id inside the iommufd, for iommufd commands that name a device. */
    public int devid() {
        return u32(OUT_DEVID_OFFSET);
    }
}
