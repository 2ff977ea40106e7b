package dev.ferry.vfio.kernel;

import dev.ferry.vfio.uapi.IommufdIoctls;
import dev.ferry.vfio.uapi.VfioIoctls;

import java.util.Map;

/** Symbolic names of the VFIO and iommufd requests, for messages and call logs. */
public final class KernelIoctlNames {
    private static final Map<Long, String> NAMES = Map.ofEntries(
            Map.entry(VfioIoctls.VFIO_GET_API_VERSION, "VFIO_GET_API_VERSION"),
            Map.entry(VfioIoctls.VFIO_CHECK_EXTENSION, "VFIO_CHECK_EXTENSION"),
            Map.entry(VfioIoctls.VFIO_SET_IOMMU, "VFIO_SET_IOMMU"),
            Map.entry(VfioIoctls.VFIO_IOMMU_MAP_DMA, "VFIO_IOMMU_MAP_DMA"),
            Map.entry(VfioIoctls.VFIO_IOMMU_UNMAP_DMA, "VFIO_IOMMU_UNMAP_DMA"),
            Map.entry(VfioIoctls.VFIO_GROUP_GET_STATUS, "VFIO_GROUP_GET_STATUS"),
            Map.entry(VfioIoctls.VFIO_GROUP_SET_CONTAINER, "VFIO_GROUP_SET_CONTAINER"),
            Map.entry(VfioIoctls.VFIO_GROUP_UNSET_CONTAINER, "VFIO_GROUP_UNSET_CONTAINER"),
            Map.entry(VfioIoctls.VFIO_GROUP_GET_DEVICE_FD, "VFIO_GROUP_GET_DEVICE_FD"),
            Map.entry(VfioIoctls.VFIO_DEVICE_GET_INFO, "VFIO_DEVICE_GET_INFO"),
            Map.entry(VfioIoctls.VFIO_DEVICE_GET_REGION_INFO, "VFIO_DEVICE_GET_REGION_INFO"),
            Map.entry(VfioIoctls.VFIO_DEVICE_GET_IRQ_INFO, "VFIO_DEVICE_GET_IRQ_INFO"),
            Map.entry(VfioIoctls.VFIO_DEVICE_SET_IRQS, "VFIO_DEVICE_SET_IRQS"),
            Map.entry(VfioIoctls.VFIO_DEVICE_RESET, "VFIO_DEVICE_RESET"),
            Map.entry(VfioIoctls.VFIO_DEVICE_FEATURE, "VFIO_DEVICE_FEATURE"),
            Map.entry(VfioIoctls.VFIO_DEVICE_BIND_IOMMUFD, "VFIO_DEVICE_BIND_IOMMUFD"),
            Map.entry(VfioIoctls.VFIO_DEVICE_ATTACH_IOMMUFD_PT, "VFIO_DEVICE_ATTACH_IOMMUFD_PT"),
            Map.entry(VfioIoctls.VFIO_DEVICE_DETACH_IOMMUFD_PT, "VFIO_DEVICE_DETACH_IOMMUFD_PT"),
            Map.entry(VfioIoctls.VFIO_MIG_GET_PRECOPY_INFO, "VFIO_MIG_GET_PRECOPY_INFO"),
            Map.entry(IommufdIoctls.IOMMU_DESTROY, "IOMMU_DESTROY"),
            Map.entry(IommufdIoctls.IOMMU_IOAS_ALLOC, "IOMMU_IOAS_ALLOC"),
            Map.entry(IommufdIoctls.IOMMU_IOAS_MAP, "IOMMU_IOAS_MAP"),
            Map.entry(IommufdIoctls.IOMMU_IOAS_UNMAP, "IOMMU_IOAS_UNMAP"));

    private KernelIoctlNames() {
    }

    /** The request's name, or its number in hex. */
    public static String of(long request) {
        String n = NAMES.get(request);
        return n != null ? n : "ioctl 0x" + Long.toHexString(request);
    }
}
