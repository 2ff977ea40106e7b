package dev.ferry.vfio.kernel;

import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.uapi.VfioIoctls;

import java.nio.charset.StandardCharsets;

import static dev.ferry.core.sys.Errno.EBADF;
import static dev.ferry.core.sys.Errno.EBUSY;
import static dev.ferry.core.sys.Errno.EINVAL;
import static dev.ferry.core.sys.Errno.ENODEV;
import static dev.ferry.core.sys.Errno.ENOTTY;
import static dev.ferry.core.sys.Errno.EPERM;
import static dev.ferry.vfio.kernel.FakeVfioKernel.EBADFD;
import static dev.ferry.vfio.kernel.FakeVfioKernel.PAGE;
import static dev.ferry.vfio.kernel.FakeVfioKernel.fail;
import static dev.ferry.vfio.kernel.FakeVfioKernel.need;
import static dev.ferry.vfio.kernel.FakeVfioKernel.u32;

/**
 * {@code /dev/vfio/<group>} in the {@link FakeVfioKernel}: the group ioctls of
 * {@code drivers/vfio/group.c} (status, joining and leaving a container, device fds by name).
 * Alive while its fd or a device fd from it holds it.
 */
final class FakeGroupFile extends FakeFile {
    final FakeGroup group;

    FakeGroupFile(FakeVfioKernel kernel, FakeGroup group) {
        super(kernel, KernelVfioDeviceFactory.VFIO_GROUP_DIR + group.number);
        this.group = group;
    }

    @Override
    boolean takesStruct(long request) {
        return request == VfioIoctls.VFIO_GROUP_GET_STATUS;
    }

    @Override
    int ioctl(long request, long arg) {
        String name = KernelIoctlNames.of(request);
        if (request == VfioIoctls.VFIO_GROUP_GET_STATUS) {
            need(arg, name);
            int argsz = u32(arg, 0);
            if (argsz < 8) {
                throw kernel.shortArgsz(name, argsz, 8);
            }
            int flags = group.container != null
                    ? VfioIoctls.VFIO_GROUP_FLAGS_CONTAINER_SET | VfioIoctls.VFIO_GROUP_FLAGS_VIABLE
                    : group.viable ? VfioIoctls.VFIO_GROUP_FLAGS_VIABLE : 0;
            NativeMemory.putInt(arg + 4, flags);
            return 0;
        }
        if (request == VfioIoctls.VFIO_GROUP_SET_CONTAINER) {
            need(arg, name);
            int fd = NativeMemory.getInt(arg);
            FakeFile f = kernel.file(fd);
            if (f == null) {
                throw fail(name, EBADF, "fd " + fd);
            }
            if (group.container != null) {
                throw fail(name, EINVAL, what + " is in a container already");
            }
            if (!(f instanceof FakeContainer c)) {
                throw fail(name, EBADFD, f.what + " is not a VFIO container");
            }
            if (!group.viable) {
                throw fail(name, EPERM, what + " is not viable: a host driver owns DMA of a device in it");
            }
            group.container = c;
            group.containerUsers = 1;
            c.groups.add(group);
            c.refs++;
            if (c.iommuSet) {
                group.devices.forEach(d -> d.domain(c.table));
            }
            return 0;
        }
        if (request == VfioIoctls.VFIO_GROUP_UNSET_CONTAINER) {
            if (group.container == null) {
                throw fail(name, EINVAL, what + " is in no container");
            }
            if (group.containerUsers != 1) {
                throw fail(name, EBUSY, what + " has device fds open");
            }
            kernel.detachContainer(group);
            return 0;
        }
        if (request == VfioIoctls.VFIO_GROUP_GET_DEVICE_FD) {
            need(arg, name);
            String device = cString(arg);
            FakeHostDevice d = group.devices.stream().filter(x -> x.pciAddress().equals(device)).findFirst()
                    .orElseThrow(() -> fail(name, ENODEV, "no device '" + device + "' in " + what));
            if (group.container == null || !group.container.iommuSet) {
                throw fail(name, EINVAL, what + (group.container == null ? " is in no container"
                        : "'s container has no IOMMU set"));
            }
            d.openCount++;
            group.containerUsers++;
            refs++;
            FakeDeviceFile df = new FakeDeviceFile(kernel, d, this);
            return kernel.install(df);
        }
        throw fail(name, ENOTTY, "not a group ioctl");
    }

    @Override
    void release() {
        if (group.container != null) {
            kernel.detachContainer(group);
        }
        group.opened = null;
    }

    private static String cString(long address) {
        byte[] b = new byte[(int) FakeVfioKernel.PAGE];
        int n = 0;
        while (n < b.length) {
            byte c = NativeMemory.getByte(address + n);
            if (c == 0) {
                return new String(b, 0, n, StandardCharsets.US_ASCII);
            }
            b[n++] = c;
        }
        throw fail("VFIO_GROUP_GET_DEVICE_FD", EINVAL, "name not terminated within a page");
    }
}
