package dev.ferry.vfio.uapi;

import dev.ferry.core.sys.Ioctl;

/**
 * The iommufd numbers Ferry uses, as {@code <linux/iommufd.h>} defines them (kernel 6.2+): the
 * ioctls on {@code /dev/iommu} that build an IO address space (IOAS) for a VFIO device bound
 * through its cdev, and the flags of {@code struct iommu_ioas_map}.
 *
 * <p>Like VFIO's, every request is {@code _IO(';', nr)}; the struct's first {@code u32}, called
 * {@code size} here, plays the role of VFIO's {@code argsz}. iommufd checks it the same way for
 * every command ({@code drivers/iommu/iommufd/main.c}): smaller than the command's last mandatory
 * field is EINVAL, larger than the kernel's struct is accepted only when the excess bytes are zero
 * (else E2BIG), an unknown command number is ENOTTY.
 */
public final class IommufdIoctls {
    /** The ioctl type byte, {@code ';'} as for VFIO. */
    public static final int IOMMUFD_TYPE = ';';
    /** The first iommufd command number; below it, {@code /dev/iommu} answers VFIO container ioctls. */
    public static final int IOMMUFD_CMD_BASE = 0x80;

    /** {@code struct iommu_destroy {u32 size; u32 id}}: destroys an object by id (EBUSY while in use). */
    public static final long IOMMU_DESTROY = Ioctl.io(IOMMUFD_TYPE, IOMMUFD_CMD_BASE);
    /** {@link IommuIoasAlloc}. */
    public static final long IOMMU_IOAS_ALLOC = Ioctl.io(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 1);
    /** {@link IommuIoasMap}. */
    public static final long IOMMU_IOAS_MAP = Ioctl.io(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 5);
    /** {@link IommuIoasUnmap}. */
    public static final long IOMMU_IOAS_UNMAP = Ioctl.io(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 6);

    // enum iommufd_ioas_map_flags
    /** Map at the given {@code iova} (else the kernel picks one); the range must be unused. */
    public static final int IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
    /** The device may write the mapping. */
    public static final int IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
    /** The device may read the mapping. */
    public static final int IOMMU_IOAS_MAP_READABLE = 1 << 2;

    private IommufdIoctls() {
    }
}
