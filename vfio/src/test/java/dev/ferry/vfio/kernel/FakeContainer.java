package dev.ferry.vfio.kernel;

import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.uapi.VfioIoctls;

import java.util.ArrayList;
import java.util.List;

import static dev.ferry.core.sys.Errno.EEXIST;
import static dev.ferry.core.sys.Errno.EINVAL;
import static dev.ferry.core.sys.Errno.ENODEV;
import static dev.ferry.core.sys.Errno.ENOTTY;
import static dev.ferry.core.sys.Errno.EOPNOTSUPP;
import static dev.ferry.vfio.kernel.FakeVfioKernel.PAGE;
import static dev.ferry.vfio.kernel.FakeVfioKernel.fail;
import static dev.ferry.vfio.kernel.FakeVfioKernel.need;
import static dev.ferry.vfio.kernel.FakeVfioKernel.u32;
import static dev.ferry.vfio.kernel.FakeVfioKernel.u64;
import static dev.ferry.vfio.kernel.FakeVfioKernel.wraps;

/**
 * {@code /dev/vfio/vfio} in the {@link FakeVfioKernel}: the container ioctls of
 * {@code drivers/vfio/container.c} and, once VFIO_SET_IOMMU chose type1v2, the type1 driver's
 * MAP_DMA/UNMAP_DMA ({@code vfio_iommu_type1.c}) over one {@link FakeIovaTable} that every device
 * of its groups DMAs through. Alive while its fd or a group in it holds it.
 */
final class FakeContainer extends FakeFile {
    final List<FakeGroup> groups = new ArrayList<>();
    final FakeIovaTable table = new FakeIovaTable();
    boolean iommuSet;

    FakeContainer(FakeVfioKernel kernel) {
        super(kernel, KernelVfioDeviceFactory.VFIO_CONTAINER);
    }

    @Override
    boolean takesStruct(long request) {
        return request == VfioIoctls.VFIO_IOMMU_MAP_DMA || request == VfioIoctls.VFIO_IOMMU_UNMAP_DMA;
    }

    @Override
    int ioctl(long request, long arg) {
        String name = KernelIoctlNames.of(request);
        if (request == VfioIoctls.VFIO_GET_API_VERSION) {
            return VfioIoctls.VFIO_API_VERSION;
        }
        if (request == VfioIoctls.VFIO_CHECK_EXTENSION) {
            return arg == VfioIoctls.VFIO_TYPE1v2_IOMMU ? 1 : 0;
        }
        if (request == VfioIoctls.VFIO_SET_IOMMU) {
            if (groups.isEmpty() || iommuSet) {
                throw fail(name, EINVAL, groups.isEmpty() ? "no group in the container" : "IOMMU already set");
            }
            if (arg != VfioIoctls.VFIO_TYPE1v2_IOMMU) {
                throw fail(name, ENODEV, "no IOMMU driver for model " + arg);
            }
            iommuSet = true;
            for (FakeGroup g : groups) {
                g.devices.forEach(d -> d.domain(table));
            }
            return 0;
        }
        if (!iommuSet) {
            throw fail(name, EINVAL, "no IOMMU set on the container");
        }
        if (request == VfioIoctls.VFIO_IOMMU_MAP_DMA) {
            return mapDma(name, arg);
        }
        if (request == VfioIoctls.VFIO_IOMMU_UNMAP_DMA) {
            return unmapDma(name, arg);
        }
        throw fail(name, ENOTTY, "not a type1 IOMMU ioctl");
    }

    private int mapDma(String name, long arg) {
        need(arg, name);
        int argsz = u32(arg, 0);
        int flags = u32(arg, 4);
        if (argsz < 32) {
            throw kernel.shortArgsz(name, argsz, 32);
        }
        int read = VfioIoctls.VFIO_DMA_MAP_FLAG_READ;
        int write = VfioIoctls.VFIO_DMA_MAP_FLAG_WRITE;
        int vaddrFlag = 1 << 2;
        if ((flags & ~(read | write | vaddrFlag)) != 0) {
            throw fail(name, EINVAL, "unknown flags 0x" + Integer.toHexString(flags));
        }
        if ((flags & vaddrFlag) != 0) {
            throw fail(name, EOPNOTSUPP, "VFIO_DMA_MAP_FLAG_VADDR is not modelled by the fake");
        }
        if ((flags & (read | write)) == 0) {
            throw fail(name, EINVAL, "neither READ nor WRITE");
        }
        long vaddr = u64(arg, 8);
        long iova = u64(arg, 16);
        long size = u64(arg, 24);
        if (size == 0 || ((size | iova | vaddr) & (PAGE - 1)) != 0) {
            throw fail(name, EINVAL, "size 0 or iova/vaddr/size not page aligned");
        }
        if (wraps(iova, size) || wraps(vaddr, size)) {
            throw fail(name, EINVAL, "range wraps");
        }
        if (table.intersects(iova, iova + size - 1)) {
            throw fail(name, EEXIST, "IOVA 0x" + Long.toHexString(iova) + "+0x" + Long.toHexString(size)
                    + " overlaps a mapping");
        }
        table.insert(new FakeIovaTable.Area(iova, size, vaddr));
        return 0;
    }

    private int unmapDma(String name, long arg) {
        need(arg, name);
        int argsz = u32(arg, 0);
        if (argsz < 24) {
            throw kernel.shortArgsz(name, argsz, 24);
        }
        int flags = u32(arg, 4);
        if ((flags & ~0x7) != 0) {
            throw fail(name, EINVAL, "unknown flags 0x" + Integer.toHexString(flags));
        }
        if (flags != 0) {
            throw fail(name, EOPNOTSUPP, "unmap flags are not modelled by the fake");
        }
        long iova = u64(arg, 8);
        long size = u64(arg, 16);
        if (size == 0 || ((iova | size) & (PAGE - 1)) != 0 || wraps(iova, size)) {
            throw fail(name, EINVAL, "empty, unaligned or wrapping range");
        }
        long last = iova + size - 1;
        List<FakeIovaTable.Area> hit = table.intersecting(iova, last);
        for (FakeIovaTable.Area a : hit) {
            if (Long.compareUnsigned(a.iova(), iova) < 0 || Long.compareUnsigned(a.last(), last) > 0) {
                throw fail(name, EINVAL, "the range cuts the mapping at 0x" + Long.toHexString(a.iova()));
            }
        }
        long unmapped = 0;
        for (FakeIovaTable.Area a : hit) {
            table.remove(a);
            unmapped += a.length();
        }
        NativeMemory.putLong(arg + 16, unmapped);
        return 0;
    }

    @Override
    void release() {
        table.clear();
    }
}
