package dev.ferry.vfio.kernel;

import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;
import dev.ferry.vfio.uapi.VfioIoctls;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static dev.ferry.core.sys.Errno.EBADF;
import static dev.ferry.core.sys.Errno.EBUSY;
import static dev.ferry.core.sys.Errno.EINVAL;
import static dev.ferry.core.sys.Errno.ENOENT;
import static dev.ferry.core.sys.Errno.ENOTTY;
import static dev.ferry.core.sys.Errno.EOPNOTSUPP;
import static dev.ferry.vfio.kernel.FakeVfioKernel.EBADFD;
import static dev.ferry.vfio.kernel.FakeVfioKernel.NUM_IRQS;
import static dev.ferry.vfio.kernel.FakeVfioKernel.NUM_REGIONS;
import static dev.ferry.vfio.kernel.FakeVfioKernel.fail;
import static dev.ferry.vfio.kernel.FakeVfioKernel.need;
import static dev.ferry.vfio.kernel.FakeVfioKernel.u32;

/**
 * A device fd in the {@link FakeVfioKernel}: a cdev ({@code /dev/vfio/devices/vfioN}, usable after
 * VFIO_DEVICE_BIND_IOMMUFD, {@code device_cdev.c}) or one VFIO_GROUP_GET_DEVICE_FD returned. Device
 * ioctls go to vfio-pci's rules and, for features, to {@link FakeDeviceFeatures}; the last file to
 * close runs the driver's close_device.
 */
final class FakeDeviceFile extends FakeFile {
    final FakeHostDevice device;
    /** The group file this fd came from; null for a cdev fd. */
    final FakeGroupFile viaGroup;
    boolean accessGranted;
    FakeIommufd ctx;
    int devid;
    FakeIoas attached;

    FakeDeviceFile(FakeVfioKernel kernel, FakeHostDevice device, FakeGroupFile viaGroup) {
        super(kernel, viaGroup == null ? device.cdevPath() : "[vfio-device] " + device.pciAddress());
        this.device = device;
        this.viaGroup = viaGroup;
        this.accessGranted = viaGroup != null;
    }

    @Override
    boolean takesStruct(long request) {
        return request == VfioIoctls.VFIO_DEVICE_FEATURE || request == VfioIoctls.VFIO_DEVICE_GET_INFO
                || request == VfioIoctls.VFIO_DEVICE_BIND_IOMMUFD
                || request == VfioIoctls.VFIO_DEVICE_ATTACH_IOMMUFD_PT
                || request == VfioIoctls.VFIO_DEVICE_DETACH_IOMMUFD_PT;
    }

    @Override
    int ioctl(long request, long arg) {
        String name = KernelIoctlNames.of(request);
        if (request == VfioIoctls.VFIO_DEVICE_BIND_IOMMUFD) {
            return bind(name, arg);
        }
        if (!accessGranted) {
            throw fail(name, EINVAL, what + " is not bound to an iommufd yet");
        }
        if (viaGroup == null && request == VfioIoctls.VFIO_DEVICE_ATTACH_IOMMUFD_PT) {
            return attach(name, arg);
        }
        if (viaGroup == null && request == VfioIoctls.VFIO_DEVICE_DETACH_IOMMUFD_PT) {
            need(arg, name);
            int argsz = u32(arg, 0);
            if (argsz < 8) {
                throw kernel.shortArgsz(name, argsz, 8);
            }
            int flags = u32(arg, 4);
            if ((flags & ~1) != 0) {
                throw fail(name, EINVAL, "unknown flags");
            }
            if (flags != 0) {
                throw fail(name, EOPNOTSUPP, "PASID detach");
            }
            detach();
            return 0;
        }
        if (request == VfioIoctls.VFIO_DEVICE_FEATURE) {
            return new FakeDeviceFeatures(device, kernel::shortArgsz, kernel::openDataFd)
                    .call(arg);
        }
        if (request == VfioIoctls.VFIO_DEVICE_GET_INFO) {
            need(arg, name);
            int argsz = u32(arg, 0);
            if (argsz < 16) {
                throw kernel.shortArgsz(name, argsz, 16);
            }
            int flags = VfioIoctls.VFIO_DEVICE_FLAGS_PCI | (device.resetWorks() ? VfioIoctls.VFIO_DEVICE_FLAGS_RESET : 0);
            byte[] out = new byte[24];
            ByteBuffer b = ByteBuffer.wrap(out).order(ByteOrder.nativeOrder());
            b.putInt(argsz).putInt(flags).putInt(NUM_REGIONS).putInt(NUM_IRQS).putInt(0).putInt(0);
            NativeMemory.copyFromArray(out, 0, arg, Math.min(argsz, out.length));
            return 0;
        }
        if (request == VfioIoctls.VFIO_DEVICE_RESET) {
            if (!device.resetWorks()) {
                throw fail(name, EINVAL, device.pciAddress() + " cannot reset");
            }
            try {
                device.emulated().reset();
            } catch (VfioException e) {
                throw fail(name, e.errno(), e.getMessage());
            }
            return 0;
        }
        throw fail(name, ENOTTY, "not a device ioctl the fake models");
    }

    private int bind(String name, long arg) {
        need(arg, name);
        int argsz = u32(arg, 0);
        if (argsz < 16) {
            throw kernel.shortArgsz(name, argsz, 16);
        }
        int flags = u32(arg, 4);
        int fd = u32(arg, 8);
        if (flags != 0 || fd < 0) {
            throw fail(name, EINVAL, "flags 0x" + Integer.toHexString(flags) + ", iommufd " + fd);
        }
        if (viaGroup != null) {
            throw fail(name, EINVAL, "BIND_IOMMUFD is only for cdev fds");
        }
        FakeGroup g = kernel.group(device.iommuGroup());
        if (g.opened != null) {
            throw fail(name, EBUSY, device.groupPath() + " is open");
        }
        if (accessGranted) {
            throw fail(name, EINVAL, what + " is bound already");
        }
        FakeFile f = kernel.file(fd);
        if (f == null) {
            throw fail(name, EBADF, "iommufd " + fd);
        }
        if (!(f instanceof FakeIommufd ictx)) {
            throw fail(name, EBADFD, f.what + " is not an iommufd");
        }
        if (device.openCount != 0) {
            throw fail(name, EINVAL, device.pciAddress() + " is open through another file");
        }
        ctx = ictx;
        ctx.refs++;
        devid = ctx.newId(this);
        device.openCount++;
        g.cdevBound++;
        accessGranted = true;
        NativeMemory.putInt(arg + 12, devid);
        return 0;
    }

    private int attach(String name, long arg) {
        need(arg, name);
        int argsz = u32(arg, 0);
        if (argsz < 12) {
            throw kernel.shortArgsz(name, argsz, 12);
        }
        int flags = u32(arg, 4);
        if ((flags & ~1) != 0) {
            throw fail(name, EINVAL, "unknown flags 0x" + Integer.toHexString(flags));
        }
        if (flags != 0) {
            throw fail(name, EOPNOTSUPP, "the driver has no PASID attach");
        }
        int ptId = u32(arg, 8);
        Object o = ctx.objects.get(ptId);
        if (o == null) {
            throw fail(name, ENOENT, "no object " + ptId);
        }
        if (!(o instanceof FakeIoas ioas)) {
            throw fail(name, EINVAL, "object " + ptId + " is not an IOAS");
        }
        if (attached != null) {
            detach();
        }
        attached = ioas;
        ioas.attached++;
        if (ioas.hwptId == 0) {
            ioas.hwptId = ctx.newId("hwpt for IOAS " + ioas.id);
        }
        device.domain(ioas.table);
        NativeMemory.putInt(arg + 8, ioas.hwptId);
        return 0;
    }

    private void detach() {
        if (attached != null) {
            attached.attached--;
            attached = null;
            device.domain(null);
        }
    }

    @Override
    long read(long address, long length) {
        if (!accessGranted) {
            throw fail("read", EINVAL, what + " is not bound");
        }
        throw fail("read", EINVAL, "device regions are not modelled by the fake");
    }

    @Override
    long write(long address, long length) {
        if (!accessGranted) {
            throw fail("write", EINVAL, what + " is not bound");
        }
        throw fail("write", EINVAL, "device regions are not modelled by the fake");
    }

    @Override
    void release() {
        if (viaGroup != null) {
            device.openCount--;
            viaGroup.group.containerUsers--;
            lastClose();
            kernel.unref(viaGroup);
            return;
        }
        if (accessGranted) {
            detach();
            ctx.objects.remove(devid);
            device.openCount--;
            kernel.group(device.iommuGroup()).cdevBound--;
            lastClose();
            kernel.unref(ctx);
        }
    }

    /** close_device when the last file goes: sessions end, logging stops, function reset. */
    private void lastClose() {
        if (device.openCount > 0) {
            return;
        }
        EmulatedVfioDevice d = device.emulated();
        try {
            if (d.dmaLoggingSupported()) {
                d.dmaLoggingStop();
            }
            d.reset();
        } catch (VfioException e) {
            // the kernel ignores a failing reset at close
        }
    }
}
