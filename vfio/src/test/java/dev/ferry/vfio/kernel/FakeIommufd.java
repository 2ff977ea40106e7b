package dev.ferry.vfio.kernel;

import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.uapi.IommufdIoctls;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static dev.ferry.core.sys.Errno.EBUSY;
import static dev.ferry.core.sys.Errno.EEXIST;
import static dev.ferry.core.sys.Errno.EFAULT;
import static dev.ferry.core.sys.Errno.EINVAL;
import static dev.ferry.core.sys.Errno.ENOENT;
import static dev.ferry.core.sys.Errno.ENOTTY;
import static dev.ferry.core.sys.Errno.EOPNOTSUPP;
import static dev.ferry.vfio.kernel.FakeVfioKernel.E2BIG;
import static dev.ferry.vfio.kernel.FakeVfioKernel.EOVERFLOW;
import static dev.ferry.vfio.kernel.FakeVfioKernel.PAGE;
import static dev.ferry.vfio.kernel.FakeVfioKernel.ULONG_MAX;
import static dev.ferry.vfio.kernel.FakeVfioKernel.fail;
import static dev.ferry.vfio.kernel.FakeVfioKernel.need;
import static dev.ferry.vfio.kernel.FakeVfioKernel.u32;
import static dev.ferry.vfio.kernel.FakeVfioKernel.u64;
import static dev.ferry.vfio.kernel.FakeVfioKernel.wraps;

/**
 * {@code /dev/iommu} in the {@link FakeVfioKernel}: the command dispatch and size rules of
 * {@code drivers/iommu/iommufd/main.c} and the IOAS commands of {@code ioas.c} and
 * {@code io_pagetable.c}. Object ids (IOAS, bound devices, page tables) share one space from 1.
 * Alive while its fd or a bound device holds it.
 */
final class FakeIommufd extends FakeFile {
    /** Object ids: IOAS objects and bound devices share one space, from 1. */
    final Map<Integer, Object> objects = new HashMap<>();
    int nextId = 1;

    FakeIommufd(FakeVfioKernel kernel) {
        super(kernel, KernelVfioDeviceFactory.IOMMUFD);
    }

    @Override
    boolean takesStruct(long request) {
        return request == IommufdIoctls.IOMMU_DESTROY || request == IommufdIoctls.IOMMU_IOAS_ALLOC
                || request == IommufdIoctls.IOMMU_IOAS_MAP || request == IommufdIoctls.IOMMU_IOAS_UNMAP;
    }

    int newId(Object o) {
        int id = nextId++;
        objects.put(id, o);
        return id;
    }

    @Override
    int ioctl(long request, long arg) {
        String name = KernelIoctlNames.of(request);
        int nr = (int) (request & 0xff);
        int type = (int) ((request >> 8) & 0xff);
        long[] table = {IommufdIoctls.IOMMU_DESTROY, IommufdIoctls.IOMMU_IOAS_ALLOC, 0, 0, 0,
                IommufdIoctls.IOMMU_IOAS_MAP, IommufdIoctls.IOMMU_IOAS_UNMAP};
        int[][] sizes = {{8, 8}, {12, 12}, null, null, null, {40, 40}, {24, 24}}; // {kernel size, min size}
        int index = nr - IommufdIoctls.IOMMUFD_CMD_BASE;
        if (type != IommufdIoctls.IOMMUFD_TYPE || index < 0 || index >= table.length || table[index] == 0
                || table[index] != request) {
            throw fail(name, ENOTTY, "not an iommufd command the fake models");
        }
        need(arg, name);
        int size = u32(arg, 0);
        if (size < sizes[index][1]) {
            throw kernel.shortArgsz(name, size, sizes[index][1]);
        }
        for (long off = sizes[index][0]; off < size; off++) {
            if (NativeMemory.getByte(arg + off) != 0) {
                throw fail(name, E2BIG, "non-zero byte at " + off + " past the kernel's struct");
            }
        }
        if (request == IommufdIoctls.IOMMU_DESTROY) {
            int id = u32(arg, 4);
            Object o = objects.get(id);
            if (o == null) {
                throw fail(name, ENOENT, "no object " + id);
            }
            if (!(o instanceof FakeIoas ioas) || ioas.attached > 0) {
                throw fail(name, EBUSY, "object " + id + " is in use");
            }
            ioas.table.clear();
            objects.remove(id);
            return 0;
        }
        if (request == IommufdIoctls.IOMMU_IOAS_ALLOC) {
            if (u32(arg, 4) != 0) {
                throw fail(name, EOPNOTSUPP, "flags must be 0");
            }
            int id = nextId++;
            objects.put(id, new FakeIoas(id));
            NativeMemory.putInt(arg + 8, id);
            return 0;
        }
        if (request == IommufdIoctls.IOMMU_IOAS_MAP) {
            return ioasMap(name, arg);
        }
        return ioasUnmap(name, arg);
    }

    private FakeIoas ioas(String name, int id) {
        if (!(objects.get(id) instanceof FakeIoas ioas)) {
            throw fail(name, ENOENT, "no IOAS " + id);
        }
        return ioas;
    }

    private int ioasMap(String name, long arg) {
        int flags = u32(arg, 4);
        int all = IommufdIoctls.IOMMU_IOAS_MAP_FIXED_IOVA | IommufdIoctls.IOMMU_IOAS_MAP_WRITEABLE
                | IommufdIoctls.IOMMU_IOAS_MAP_READABLE;
        if ((flags & ~all) != 0 || u32(arg, 12) != 0) {
            throw fail(name, EOPNOTSUPP, "unknown flags or __reserved set");
        }
        long userVa = u64(arg, 16);
        long length = u64(arg, 24);
        long iova = u64(arg, 32);
        if (iova == ULONG_MAX || length == ULONG_MAX) {
            throw fail(name, EOVERFLOW, "iova or length at ULONG_MAX");
        }
        if ((flags & (IommufdIoctls.IOMMU_IOAS_MAP_WRITEABLE | IommufdIoctls.IOMMU_IOAS_MAP_READABLE)) == 0) {
            throw fail(name, EINVAL, "neither READABLE nor WRITEABLE");
        }
        FakeIoas ioas = ioas(name, u32(arg, 8));
        if (length == 0) {
            throw fail(name, EINVAL, "length 0");
        }
        if (userVa == 0) {
            throw fail(name, EFAULT, "user_va 0");
        }
        long align = ioas.attached > 0 ? PAGE : 1;
        if ((flags & IommufdIoctls.IOMMU_IOAS_MAP_FIXED_IOVA) == 0) {
            iova = ioas.table.firstFree(PAGE, length, PAGE);
        } else {
            if ((iova & (align - 1)) != 0) {
                throw fail(name, EINVAL, "iova 0x" + Long.toHexString(iova) + " not aligned to " + align);
            }
            if (wraps(iova, length)) {
                throw fail(name, EOVERFLOW, "range wraps");
            }
            if (ioas.table.intersects(iova, iova + length - 1)) {
                throw fail(name, EEXIST, "IOVA 0x" + Long.toHexString(iova) + "+0x" + Long.toHexString(length)
                        + " overlaps a mapping");
            }
        }
        ioas.table.insert(new FakeIovaTable.Area(iova, length, userVa));
        NativeMemory.putLong(arg + 32, iova);
        return 0;
    }

    private int ioasUnmap(String name, long arg) {
        FakeIoas ioas = ioas(name, u32(arg, 4));
        long iova = u64(arg, 8);
        long length = u64(arg, 16);
        long unmapped;
        if (iova == 0 && length == ULONG_MAX) {
            unmapped = ioas.table.clear();
        } else {
            if (iova == ULONG_MAX || length == ULONG_MAX) {
                throw fail(name, EOVERFLOW, "iova or length at ULONG_MAX");
            }
            if (length == 0) {
                throw fail(name, EINVAL, "length 0");
            }
            if (wraps(iova, length)) {
                throw fail(name, EOVERFLOW, "range wraps");
            }
            long last = iova + length - 1;
            List<FakeIovaTable.Area> hit = ioas.table.intersecting(iova, last);
            for (FakeIovaTable.Area a : hit) {
                if (Long.compareUnsigned(a.iova(), iova) < 0 || Long.compareUnsigned(a.last(), last) > 0) {
                    throw fail(name, ENOENT, "the range cuts the mapping at 0x" + Long.toHexString(a.iova()));
                }
            }
            unmapped = 0;
            for (FakeIovaTable.Area a : hit) {
                ioas.table.remove(a);
                unmapped += a.length();
            }
        }
        NativeMemory.putLong(arg + 16, unmapped);
        return 0;
    }

    @Override
    void release() {
        for (Object o : objects.values()) {
            if (o instanceof FakeIoas ioas) {
                ioas.table.clear();
            }
        }
        objects.clear();
    }
}
