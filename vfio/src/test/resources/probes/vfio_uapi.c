/*
 * Prints every number of the VFIO uAPI that dev.ferry.vfio.uapi mirrors, as the host's
 * <linux/vfio.h> defines it: ioctl numbers, flags, feature indices, migration states, and the
 * size and field offsets of every struct a flyweight covers. VfioHeaderProbeTest maps each Java
 * constant to one of these keys; a key printed here must be checked there.
 *
 * Keys: constants by their C name; "sizeof(struct)"; "struct.member" for offsetof;
 * "argsz(payload)" = sizeof(struct vfio_device_feature) + sizeof(struct payload), the argsz of a
 * VFIO_DEVICE_FEATURE call carrying that payload.
 *
 * Additions newer than some hosts' headers are guarded by the macro that arrived with them
 * (Linux 6.2, "vfio: Extend the device migration protocol with PRE_COPY" and "... MIG_DATA_SIZE"):
 * when the header lacks them nothing is printed and the test falls back to the reference values.
 * The enum members VFIO_DEVICE_STATE_PRE_COPY{,_P2P} and struct vfio_precopy_info cannot be
 * tested with #ifdef, so they follow the macro of the same patch. The device cdev calls (Linux 6.6,
 * VFIO_DEVICE_BIND_IOMMUFD) and <linux/iommufd.h> (Linux 6.2) are guarded the same way.
 *
 * "minsz(struct)" is offsetofend of the last field the kernel requires: the struct as it was
 * introduced, which later kernels extend behind a flag.
 */
#include <linux/vfio.h>
#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#define FERRY_HAVE_IOMMUFD_H 1
#endif

#include "ferry_probe.h"

#define SIZEOF(s) FERRY_SIZEOF("sizeof(" #s ")", struct s)
#define OFFSET(s, m) FERRY_OFFSETOF(#s "." #m, struct s, m)
#define ARGSZ(s) FERRY_PROBE_AS("argsz(" #s ")", sizeof(struct vfio_device_feature) + sizeof(struct s))
#define MINSZ(s, m) FERRY_PROBE_AS("minsz(" #s ")", offsetof(struct s, m) + sizeof(((struct s *)0)->m))

int main(void) {
    FERRY_PROBE(VFIO_TYPE);
    FERRY_PROBE(VFIO_BASE);
    FERRY_PROBE(VFIO_API_VERSION);
    FERRY_PROBE(VFIO_TYPE1_IOMMU);
    FERRY_PROBE(VFIO_TYPE1v2_IOMMU);

    /* ioctl numbers */
    FERRY_PROBE(VFIO_GET_API_VERSION);
    FERRY_PROBE(VFIO_CHECK_EXTENSION);
    FERRY_PROBE(VFIO_SET_IOMMU);
    FERRY_PROBE(VFIO_GROUP_GET_STATUS);
    FERRY_PROBE(VFIO_GROUP_SET_CONTAINER);
    FERRY_PROBE(VFIO_GROUP_UNSET_CONTAINER);
    FERRY_PROBE(VFIO_IOMMU_MAP_DMA);
    FERRY_PROBE(VFIO_IOMMU_UNMAP_DMA);
    FERRY_PROBE(VFIO_GROUP_GET_DEVICE_FD);
    FERRY_PROBE(VFIO_DEVICE_GET_INFO);
    FERRY_PROBE(VFIO_DEVICE_GET_REGION_INFO);
    FERRY_PROBE(VFIO_DEVICE_GET_IRQ_INFO);
    FERRY_PROBE(VFIO_DEVICE_SET_IRQS);
    FERRY_PROBE(VFIO_DEVICE_RESET);
    FERRY_PROBE(VFIO_DEVICE_FEATURE);
#ifdef VFIO_MIG_GET_PRECOPY_INFO
    FERRY_PROBE(VFIO_MIG_GET_PRECOPY_INFO);
#endif

#ifdef VFIO_DEVICE_BIND_IOMMUFD
    FERRY_PROBE(VFIO_DEVICE_BIND_IOMMUFD);
    FERRY_PROBE(VFIO_DEVICE_ATTACH_IOMMUFD_PT);
    FERRY_PROBE(VFIO_DEVICE_DETACH_IOMMUFD_PT);
#endif

    /* flags */
    FERRY_PROBE(VFIO_DMA_MAP_FLAG_READ);
    FERRY_PROBE(VFIO_DMA_MAP_FLAG_WRITE);
    FERRY_PROBE(VFIO_GROUP_FLAGS_VIABLE);
    FERRY_PROBE(VFIO_GROUP_FLAGS_CONTAINER_SET);
    FERRY_PROBE(VFIO_DEVICE_FLAGS_RESET);
    FERRY_PROBE(VFIO_DEVICE_FLAGS_PCI);
    FERRY_PROBE(VFIO_DEVICE_FLAGS_CAPS);
    FERRY_PROBE(VFIO_REGION_INFO_FLAG_READ);
    FERRY_PROBE(VFIO_REGION_INFO_FLAG_WRITE);
    FERRY_PROBE(VFIO_REGION_INFO_FLAG_MMAP);
    FERRY_PROBE(VFIO_REGION_INFO_FLAG_CAPS);
    FERRY_PROBE(VFIO_IRQ_INFO_EVENTFD);
    FERRY_PROBE(VFIO_IRQ_INFO_MASKABLE);
    FERRY_PROBE(VFIO_IRQ_INFO_AUTOMASKED);
    FERRY_PROBE(VFIO_IRQ_INFO_NORESIZE);
    FERRY_PROBE(VFIO_IRQ_SET_DATA_NONE);
    FERRY_PROBE(VFIO_IRQ_SET_DATA_BOOL);
    FERRY_PROBE(VFIO_IRQ_SET_DATA_EVENTFD);
    FERRY_PROBE(VFIO_IRQ_SET_ACTION_MASK);
    FERRY_PROBE(VFIO_IRQ_SET_ACTION_UNMASK);
    FERRY_PROBE(VFIO_IRQ_SET_ACTION_TRIGGER);

    /* device features */
    FERRY_PROBE(VFIO_DEVICE_FEATURE_MASK);
    FERRY_PROBE(VFIO_DEVICE_FEATURE_GET);
    FERRY_PROBE(VFIO_DEVICE_FEATURE_SET);
    FERRY_PROBE(VFIO_DEVICE_FEATURE_PROBE);
    FERRY_PROBE(VFIO_DEVICE_FEATURE_MIGRATION);
    FERRY_PROBE(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
    FERRY_PROBE(VFIO_MIGRATION_STOP_COPY);
    FERRY_PROBE(VFIO_MIGRATION_P2P);
#ifdef VFIO_MIGRATION_PRE_COPY
    FERRY_PROBE(VFIO_MIGRATION_PRE_COPY);
#endif

    /* enum vfio_device_mig_state */
    FERRY_PROBE(VFIO_DEVICE_STATE_ERROR);
    FERRY_PROBE(VFIO_DEVICE_STATE_STOP);
    FERRY_PROBE(VFIO_DEVICE_STATE_RUNNING);
    FERRY_PROBE(VFIO_DEVICE_STATE_STOP_COPY);
    FERRY_PROBE(VFIO_DEVICE_STATE_RESUMING);
    FERRY_PROBE(VFIO_DEVICE_STATE_RUNNING_P2P);
#ifdef VFIO_MIGRATION_PRE_COPY
    FERRY_PROBE(VFIO_DEVICE_STATE_PRE_COPY);
    FERRY_PROBE(VFIO_DEVICE_STATE_PRE_COPY_P2P);
#endif

    /* struct layouts */
    SIZEOF(vfio_device_feature);
    OFFSET(vfio_device_feature, argsz);
    OFFSET(vfio_device_feature, flags);
    OFFSET(vfio_device_feature, data);

    SIZEOF(vfio_device_feature_migration);
    OFFSET(vfio_device_feature_migration, flags);
    ARGSZ(vfio_device_feature_migration);

    SIZEOF(vfio_device_feature_mig_state);
    OFFSET(vfio_device_feature_mig_state, device_state);
    OFFSET(vfio_device_feature_mig_state, data_fd);
    ARGSZ(vfio_device_feature_mig_state);

#ifdef VFIO_DEVICE_FEATURE_MIG_DATA_SIZE
    FERRY_PROBE(VFIO_DEVICE_FEATURE_MIG_DATA_SIZE);
    SIZEOF(vfio_device_feature_mig_data_size);
    OFFSET(vfio_device_feature_mig_data_size, stop_copy_length);
    ARGSZ(vfio_device_feature_mig_data_size);
#endif

#ifdef VFIO_DEVICE_FEATURE_DMA_LOGGING_START
    FERRY_PROBE(VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
    FERRY_PROBE(VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP);
    FERRY_PROBE(VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT);
    SIZEOF(vfio_device_feature_dma_logging_control);
    OFFSET(vfio_device_feature_dma_logging_control, page_size);
    OFFSET(vfio_device_feature_dma_logging_control, num_ranges);
    OFFSET(vfio_device_feature_dma_logging_control, __reserved);
    OFFSET(vfio_device_feature_dma_logging_control, ranges);
    ARGSZ(vfio_device_feature_dma_logging_control);
    SIZEOF(vfio_device_feature_dma_logging_range);
    OFFSET(vfio_device_feature_dma_logging_range, iova);
    OFFSET(vfio_device_feature_dma_logging_range, length);
    SIZEOF(vfio_device_feature_dma_logging_report);
    OFFSET(vfio_device_feature_dma_logging_report, iova);
    OFFSET(vfio_device_feature_dma_logging_report, length);
    OFFSET(vfio_device_feature_dma_logging_report, page_size);
    OFFSET(vfio_device_feature_dma_logging_report, bitmap);
    ARGSZ(vfio_device_feature_dma_logging_report);
#endif

#ifdef VFIO_MIG_GET_PRECOPY_INFO
    SIZEOF(vfio_precopy_info);
    OFFSET(vfio_precopy_info, argsz);
    OFFSET(vfio_precopy_info, flags);
    OFFSET(vfio_precopy_info, initial_bytes);
    OFFSET(vfio_precopy_info, dirty_bytes);
#endif

    /* sizeof(vfio_device_info) is 20 before the pad member, 24 after; pad starts where cap_offset ends */
    SIZEOF(vfio_device_info);
    OFFSET(vfio_device_info, argsz);
    OFFSET(vfio_device_info, flags);
    OFFSET(vfio_device_info, num_regions);
    OFFSET(vfio_device_info, num_irqs);
    OFFSET(vfio_device_info, cap_offset);
    FERRY_PROBE_AS("vfio_device_info.cap_offset.end",
                   offsetof(struct vfio_device_info, cap_offset) + sizeof(((struct vfio_device_info *)0)->cap_offset));

    SIZEOF(vfio_region_info);
    OFFSET(vfio_region_info, argsz);
    OFFSET(vfio_region_info, flags);
    OFFSET(vfio_region_info, index);
    OFFSET(vfio_region_info, cap_offset);
    OFFSET(vfio_region_info, size);
    OFFSET(vfio_region_info, offset);

    SIZEOF(vfio_irq_info);
    OFFSET(vfio_irq_info, argsz);
    OFFSET(vfio_irq_info, flags);
    OFFSET(vfio_irq_info, index);
    OFFSET(vfio_irq_info, count);

    SIZEOF(vfio_group_status);
    OFFSET(vfio_group_status, argsz);
    OFFSET(vfio_group_status, flags);

    SIZEOF(vfio_iommu_type1_dma_map);
    OFFSET(vfio_iommu_type1_dma_map, argsz);
    OFFSET(vfio_iommu_type1_dma_map, flags);
    OFFSET(vfio_iommu_type1_dma_map, vaddr);
    OFFSET(vfio_iommu_type1_dma_map, iova);
    OFFSET(vfio_iommu_type1_dma_map, size);

    SIZEOF(vfio_iommu_type1_dma_unmap);
    OFFSET(vfio_iommu_type1_dma_unmap, argsz);
    OFFSET(vfio_iommu_type1_dma_unmap, flags);
    OFFSET(vfio_iommu_type1_dma_unmap, iova);
    OFFSET(vfio_iommu_type1_dma_unmap, size);

#ifdef VFIO_DEVICE_BIND_IOMMUFD
    MINSZ(vfio_device_bind_iommufd, out_devid);
    OFFSET(vfio_device_bind_iommufd, argsz);
    OFFSET(vfio_device_bind_iommufd, flags);
    OFFSET(vfio_device_bind_iommufd, iommufd);
    OFFSET(vfio_device_bind_iommufd, out_devid);
    MINSZ(vfio_device_attach_iommufd_pt, pt_id);
    OFFSET(vfio_device_attach_iommufd_pt, argsz);
    OFFSET(vfio_device_attach_iommufd_pt, flags);
    OFFSET(vfio_device_attach_iommufd_pt, pt_id);
#endif

#ifdef FERRY_HAVE_IOMMUFD_H
    FERRY_PROBE(IOMMUFD_TYPE);
    FERRY_PROBE(IOMMUFD_CMD_BASE);
    FERRY_PROBE(IOMMU_DESTROY);
    FERRY_PROBE(IOMMU_IOAS_ALLOC);
    FERRY_PROBE(IOMMU_IOAS_MAP);
    FERRY_PROBE(IOMMU_IOAS_UNMAP);
    FERRY_PROBE(IOMMU_IOAS_MAP_FIXED_IOVA);
    FERRY_PROBE(IOMMU_IOAS_MAP_WRITEABLE);
    FERRY_PROBE(IOMMU_IOAS_MAP_READABLE);
    SIZEOF(iommu_ioas_alloc);
    OFFSET(iommu_ioas_alloc, size);
    OFFSET(iommu_ioas_alloc, flags);
    OFFSET(iommu_ioas_alloc, out_ioas_id);
    SIZEOF(iommu_ioas_map);
    OFFSET(iommu_ioas_map, size);
    OFFSET(iommu_ioas_map, flags);
    OFFSET(iommu_ioas_map, ioas_id);
    OFFSET(iommu_ioas_map, __reserved);
    OFFSET(iommu_ioas_map, user_va);
    OFFSET(iommu_ioas_map, length);
    OFFSET(iommu_ioas_map, iova);
    SIZEOF(iommu_ioas_unmap);
    OFFSET(iommu_ioas_unmap, size);
    OFFSET(iommu_ioas_unmap, ioas_id);
    OFFSET(iommu_ioas_unmap, iova);
    OFFSET(iommu_ioas_unmap, length);
#endif

    SIZEOF(vfio_irq_set);
    OFFSET(vfio_irq_set, argsz);
    OFFSET(vfio_irq_set, flags);
    OFFSET(vfio_irq_set, index);
    OFFSET(vfio_irq_set, start);
    OFFSET(vfio_irq_set, count);
    OFFSET(vfio_irq_set, data);
    return 0;
}
