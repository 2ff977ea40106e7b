package dev.ferry.vfio.uapi;

import dev.ferry.core.sys.Ioctl;

/**
 * The VFIO numbers Ferry uses, as {@code <linux/vfio.h>} defines them: ioctl requests, then the
 * flags and indices that travel inside their structs, in the header's order.
 * {@code VfioHeaderProbeTest} compares every constant here with the host's header, and the ones
 * newer than the host's header with the values of the v2 migration reference.
 *
 * <p>Every VFIO request is {@code _IO(';', 100 + n)} — no direction, no size — because the struct
 * size travels in its {@code argsz} field instead. Which fd each goes to is noted per group.
 */
public final class VfioIoctls {
    /** The ioctl type byte of every VFIO request, {@code ';'}. */
    public static final int VFIO_TYPE = ';';
    /** The first VFIO request number. */
    public static final int VFIO_BASE = 100;
    /** What {@link #VFIO_GET_API_VERSION} answers. */
    public static final int VFIO_API_VERSION = 0;
    /** The original type1 IOMMU model; type1 drivers answer CHECK_EXTENSION for it too. */
    public static final int VFIO_TYPE1_IOMMU = 1;
    /** The IOMMU model Ferry asks for with {@link #VFIO_SET_IOMMU} (and checks with CHECK_EXTENSION). */
    public static final int VFIO_TYPE1v2_IOMMU = 3;

    // container fd (/dev/vfio/vfio)
    public static final long VFIO_GET_API_VERSION = Ioctl.io(VFIO_TYPE, VFIO_BASE + 0);
    public static final long VFIO_CHECK_EXTENSION = Ioctl.io(VFIO_TYPE, VFIO_BASE + 1);
    public static final long VFIO_SET_IOMMU = Ioctl.io(VFIO_TYPE, VFIO_BASE + 2);
    /** Passed to the type1 IOMMU driver once SET_IOMMU chose it: {@code struct vfio_iommu_type1_dma_map}. */
    public static final long VFIO_IOMMU_MAP_DMA = Ioctl.io(VFIO_TYPE, VFIO_BASE + 13);
    /** {@code struct vfio_iommu_type1_dma_unmap}; answers the bytes unmapped in {@code size}. */
    public static final long VFIO_IOMMU_UNMAP_DMA = Ioctl.io(VFIO_TYPE, VFIO_BASE + 14);

    // group fd (/dev/vfio/N)
    public static final long VFIO_GROUP_GET_STATUS = Ioctl.io(VFIO_TYPE, VFIO_BASE + 3);
    /** Argument: a pointer to the container's fd number ({@code int *}). */
    public static final long VFIO_GROUP_SET_CONTAINER = Ioctl.io(VFIO_TYPE, VFIO_BASE + 4);
    public static final long VFIO_GROUP_UNSET_CONTAINER = Ioctl.io(VFIO_TYPE, VFIO_BASE + 5);
    /** Argument: a pointer to the device's name, NUL-terminated (the PCI address); returns the device fd. */
    public static final long VFIO_GROUP_GET_DEVICE_FD = Ioctl.io(VFIO_TYPE, VFIO_BASE + 6);

    // device fd
    public static final long VFIO_DEVICE_GET_INFO = Ioctl.io(VFIO_TYPE, VFIO_BASE + 7);
    public static final long VFIO_DEVICE_GET_REGION_INFO = Ioctl.io(VFIO_TYPE, VFIO_BASE + 8);
    public static final long VFIO_DEVICE_GET_IRQ_INFO = Ioctl.io(VFIO_TYPE, VFIO_BASE + 9);
    public static final long VFIO_DEVICE_SET_IRQS = Ioctl.io(VFIO_TYPE, VFIO_BASE + 10);
    public static final long VFIO_DEVICE_RESET = Ioctl.io(VFIO_TYPE, VFIO_BASE + 11);
    public static final long VFIO_DEVICE_FEATURE = Ioctl.io(VFIO_TYPE, VFIO_BASE + 17);

    // device cdev fd (/dev/vfio/devices/vfioN) only; kernel 6.6+. Until BIND_IOMMUFD succeeds every
    // other ioctl, read and write on the cdev fd fails with EINVAL.
    public static final long VFIO_DEVICE_BIND_IOMMUFD = Ioctl.io(VFIO_TYPE, VFIO_BASE + 18);
    public static final long VFIO_DEVICE_ATTACH_IOMMUFD_PT = Ioctl.io(VFIO_TYPE, VFIO_BASE + 19);
    public static final long VFIO_DEVICE_DETACH_IOMMUFD_PT = Ioctl.io(VFIO_TYPE, VFIO_BASE + 20);

    // migration data fd (returned in vfio_device_feature_mig_state.data_fd); kernel 6.2+
    public static final long VFIO_MIG_GET_PRECOPY_INFO = Ioctl.io(VFIO_TYPE, VFIO_BASE + 21);

    // vfio_iommu_type1_dma_map.flags: the device's access to the mapping
    public static final int VFIO_DMA_MAP_FLAG_READ = 1 << 0;
    public static final int VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;

    // vfio_group_status.flags
    public static final int VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
    public static final int VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;

    // vfio_device_info.flags
    public static final int VFIO_DEVICE_FLAGS_RESET = 1 << 0;
    public static final int VFIO_DEVICE_FLAGS_PCI = 1 << 1;
    public static final int VFIO_DEVICE_FLAGS_CAPS = 1 << 7;

    // vfio_region_info.flags
    public static final int VFIO_REGION_INFO_FLAG_READ = 1 << 0;
    public static final int VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
    public static final int VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
    public static final int VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;

    // vfio_irq_info.flags
    public static final int VFIO_IRQ_INFO_EVENTFD = 1 << 0;
    public static final int VFIO_IRQ_INFO_MASKABLE = 1 << 1;
    public static final int VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;
    public static final int VFIO_IRQ_INFO_NORESIZE = 1 << 3;

    // vfio_irq_set.flags: one DATA_ type, one ACTION_
    public static final int VFIO_IRQ_SET_DATA_NONE = 1 << 0;
    public static final int VFIO_IRQ_SET_DATA_BOOL = 1 << 1;
    public static final int VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
    public static final int VFIO_IRQ_SET_ACTION_MASK = 1 << 3;
    public static final int VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;
    public static final int VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;

    // vfio_device_feature.flags: low 16 bits the feature index, plus exactly one of GET/SET (PROBE may be added)
    public static final int VFIO_DEVICE_FEATURE_MASK = 0xffff;
    public static final int VFIO_DEVICE_FEATURE_GET = 1 << 16;
    public static final int VFIO_DEVICE_FEATURE_SET = 1 << 17;
    public static final int VFIO_DEVICE_FEATURE_PROBE = 1 << 18;

    // feature indices
    public static final int VFIO_DEVICE_FEATURE_MIGRATION = 1;
    public static final int VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE = 2;
    public static final int VFIO_DEVICE_FEATURE_DMA_LOGGING_START = 6;
    public static final int VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP = 7;
    public static final int VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT = 8;
    /** Kernel 6.2+. */
    public static final int VFIO_DEVICE_FEATURE_MIG_DATA_SIZE = 9;

    // vfio_device_feature_migration.flags
    public static final long VFIO_MIGRATION_STOP_COPY = 1L << 0;
    public static final long VFIO_MIGRATION_P2P = 1L << 1;
    /** Kernel 6.2+. */
    public static final long VFIO_MIGRATION_PRE_COPY = 1L << 2;

    private VfioIoctls() {
    }
}
