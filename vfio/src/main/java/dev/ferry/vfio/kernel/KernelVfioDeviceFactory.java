package dev.ferry.vfio.kernel;

import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.DmaSpace;
import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.uapi.IommuIoasAlloc;
import dev.ferry.vfio.uapi.IommuIoasMap;
import dev.ferry.vfio.uapi.IommufdIoctls;
import dev.ferry.vfio.uapi.VfioDeviceAttachIommufdPt;
import dev.ferry.vfio.uapi.VfioDeviceBindIommufd;
import dev.ferry.vfio.uapi.VfioGroupStatus;
import dev.ferry.vfio.uapi.VfioIommuType1DmaMap;
import dev.ferry.vfio.uapi.VfioIoctls;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.regex.Pattern;

/**
 * Opens a {@link KernelVfioDevice} by what the user names:
 * <ul>
 *   <li>a device cdev, {@code /dev/vfio/devices/vfioN} (kernel 6.6+, iommufd): open the cdev,
 *       open {@code /dev/iommu}, IOMMU_IOAS_ALLOC, VFIO_DEVICE_BIND_IOMMUFD,
 *       VFIO_DEVICE_ATTACH_IOMMUFD_PT to the new IOAS, IOMMU_IOAS_MAP of every guest RAM range
 *       at IOVA = GPA;</li>
 *   <li>a PCI address, {@code 0000:03:00.1} (the legacy group/container interface, every
 *       kernel): the IOMMU group from {@code <sysfs>/bus/pci/devices/<addr>/iommu_group}; open
 *       {@code /dev/vfio/vfio}, check VFIO_GET_API_VERSION and VFIO_CHECK_EXTENSION(TYPE1v2), open
 *       {@code /dev/vfio/<group>}, VFIO_GROUP_GET_STATUS (viable), VFIO_GROUP_SET_CONTAINER,
 *       VFIO_SET_IOMMU(TYPE1v2), VFIO_IOMMU_MAP_DMA per guest RAM range,
 *       VFIO_GROUP_GET_DEVICE_FD(address).</li>
 * </ul>
 * Both end with VFIO_DEVICE_GET_INFO (a vfio-pci device). A failing step is a
 * {@link VfioException} naming the device, the step and the errno; every fd opened until then is
 * closed, once, newest first. The guest RAM ranges come from a {@link DmaSpace}: its
 * {@code mappedRanges()} at their IOVAs, backed by {@code hostAddress(iova, length)}.
 *
 * <p>The sysfs root is injectable so tests can lay out a fake {@code bus/pci/devices} tree.
 */
public final class KernelVfioDeviceFactory {
    public static final String VFIO_CONTAINER = "/dev/vfio/vfio";
    public static final String VFIO_GROUP_DIR = "/dev/vfio/";
    public static final String VFIO_CDEV_DIR = "/dev/vfio/devices/";
    public static final String IOMMUFD = "/dev/iommu";

    private static final Pattern CDEV = Pattern.compile("/dev/vfio/devices/vfio[0-9]+");
    private static final Pattern PCI_ADDRESS = Pattern.compile("[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7]");
    private static final int OPEN_FLAGS = Linux.O_RDWR | Linux.O_CLOEXEC;

    private final VfioSyscalls sys;
    private final Path sysfs;

    public KernelVfioDeviceFactory(VfioSyscalls sys, Path sysfsRoot) {
        this.sys = sys;
        this.sysfs = sysfsRoot;
    }

    /** The host's kernel and {@code /sys}. */
    public static KernelVfioDeviceFactory host() {
        return new KernelVfioDeviceFactory(new NativeVfioSyscalls(), Path.of("/sys"));
    }

    /** Opens {@code device} (a cdev path or a PCI address), naming it by itself. */
    public KernelVfioDevice open(String device, DmaSpace dma) throws VfioException {
        return open(device, device, dma);
    }

    /**
     * Opens {@code device}, a cdev path or a PCI address, as {@code name} (the name used in
     * messages and migration sections), with every range of {@code dma} mapped for it.
     */
    public KernelVfioDevice open(String name, String device, DmaSpace dma) throws VfioException {
        if (CDEV.matcher(device).matches()) {
            return openCdev(name, device, dma);
        }
        if (PCI_ADDRESS.matcher(device).matches()) {
            return openGroup(name, device, dma);
        }
        throw new VfioException("open " + name, Errno.EINVAL, "'" + device + "' is neither a VFIO device cdev ("
                + VFIO_CDEV_DIR + "vfioN) nor a PCI address (dddd:bb:dd.f, lower-case hex)");
    }

    /** The IOMMU group of PCI device {@code address}, from sysfs. */
    public int iommuGroup(String name, String address) throws VfioException {
        Path dev = sysfs.resolve("bus/pci/devices").resolve(address);
        if (!Files.isDirectory(dev)) {
            throw new VfioException("open " + name, Errno.ENOENT, "no PCI device " + address + " in " + dev.getParent());
        }
        Path link = dev.resolve("iommu_group");
        String group;
        try {
            group = Files.readSymbolicLink(link).getFileName().toString();
        } catch (NoSuchFileException e) {
            throw new VfioException("open " + name, Errno.ENOENT, address + " has no iommu_group in sysfs: the host "
                    + "runs without an IOMMU (enable intel_iommu=on or amd_iommu) or the device is not isolated");
        } catch (IOException | UnsupportedOperationException e) {
            throw new VfioException("open " + name, Errno.EIO, "cannot read " + link + ": " + e.getMessage());
        }
        try {
            return Integer.parseInt(group);
        } catch (NumberFormatException e) {
            throw new VfioException("open " + name, Errno.EIO, link + " points to '" + group
                    + "', not a group number");
        }
    }

    private KernelVfioDevice openCdev(String name, String path, DmaSpace dma) throws VfioException {
        Opening o = new Opening(name);
        try {
            int device = o.open(path);
            int iommufd = o.open(IOMMUFD);
            int ioas;
            try (IommuIoasAlloc alloc = new IommuIoasAlloc()) {
                alloc.prepare();
                o.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_ALLOC, alloc.address(), null);
                ioas = alloc.ioasId();
            }
            try (VfioDeviceBindIommufd bind = new VfioDeviceBindIommufd()) {
                bind.prepare(iommufd);
                o.ioctl(device, VfioIoctls.VFIO_DEVICE_BIND_IOMMUFD, bind.address(), path + " to iommufd " + iommufd);
            }
            try (VfioDeviceAttachIommufdPt attach = new VfioDeviceAttachIommufdPt()) {
                attach.prepare(ioas);
                o.ioctl(device, VfioIoctls.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach.address(), "IOAS " + ioas);
            }
            try (IommuIoasMap map = new IommuIoasMap()) {
                for (IovaRange r : dma.mappedRanges()) {
                    map.prepareFixed(ioas, dma.hostAddress(r.iova(), r.length()), r.length(), r.iova());
                    o.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_MAP, map.address(), "IOVA " + r + " in IOAS " + ioas);
                }
            }
            return KernelVfioDevice.create(sys, name, o.fds, device);
        } catch (VfioException | RuntimeException e) {
            throw o.abandon(e);
        }
    }

    private KernelVfioDevice openGroup(String name, String address, DmaSpace dma) throws VfioException {
        int groupNumber = iommuGroup(name, address);
        Opening o = new Opening(name);
        long scratch = NativeMemory.allocate(address.length() + 1L);
        try {
            int container = o.open(VFIO_CONTAINER);
            int version = o.ioctl(container, VfioIoctls.VFIO_GET_API_VERSION, 0, null);
            if (version != VfioIoctls.VFIO_API_VERSION) {
                throw o.refuse("VFIO_GET_API_VERSION", Errno.EINVAL, "the kernel speaks VFIO API " + version
                        + ", Ferry speaks " + VfioIoctls.VFIO_API_VERSION);
            }
            if (o.ioctl(container, VfioIoctls.VFIO_CHECK_EXTENSION, VfioIoctls.VFIO_TYPE1v2_IOMMU, null) <= 0) {
                throw o.refuse("VFIO_CHECK_EXTENSION", Errno.ENODEV, "no type1v2 IOMMU driver "
                        + "(load vfio_iommu_type1)");
            }
            String groupPath = VFIO_GROUP_DIR + groupNumber;
            int group = o.open(groupPath);
            try (VfioGroupStatus status = new VfioGroupStatus()) {
                status.prepare();
                o.ioctl(group, VfioIoctls.VFIO_GROUP_GET_STATUS, status.address(), groupPath);
                if (!status.viable()) {
                    throw o.refuse("VFIO_GROUP_GET_STATUS", Errno.EPERM, "IOMMU group " + groupNumber
                            + " is not viable: bind every device in it to vfio-pci (or unbind it)");
                }
            }
            NativeMemory.putInt(scratch, container);
            o.ioctl(group, VfioIoctls.VFIO_GROUP_SET_CONTAINER, scratch, groupPath);
            o.ioctl(container, VfioIoctls.VFIO_SET_IOMMU, VfioIoctls.VFIO_TYPE1v2_IOMMU, "VFIO_TYPE1v2_IOMMU");
            try (VfioIommuType1DmaMap map = new VfioIommuType1DmaMap()) {
                for (IovaRange r : dma.mappedRanges()) {
                    map.prepare(dma.hostAddress(r.iova(), r.length()), r.iova(), r.length());
                    o.ioctl(container, VfioIoctls.VFIO_IOMMU_MAP_DMA, map.address(), "IOVA " + r);
                }
            }
            byte[] nameBytes = address.getBytes(StandardCharsets.US_ASCII);
            NativeMemory.copyFromArray(nameBytes, 0, scratch, nameBytes.length);
            NativeMemory.putByte(scratch + nameBytes.length, (byte) 0);
            int device = o.fds.add(o.ioctl(group, VfioIoctls.VFIO_GROUP_GET_DEVICE_FD, scratch, address), "device fd");
            return KernelVfioDevice.create(sys, name, o.fds, device);
        } catch (VfioException | RuntimeException e) {
            throw o.abandon(e);
        } finally {
            NativeMemory.free(scratch);
        }
    }

    /** One opening sequence: the fds it opened so far, and each step's error naming the step. */
    private final class Opening {
        final String name;
        final OwnedFds fds = new OwnedFds(sys);

        Opening(String name) {
            this.name = name;
        }

        int open(String path) throws VfioException {
            try {
                return fds.add(sys.open(path, OPEN_FLAGS), path);
            } catch (NativeCallException e) {
                throw new VfioException("open " + name + ": open " + path, e.errno(), hint(path, e.errno()), e);
            }
        }

        int ioctl(int fd, long request, long arg, String detail) throws VfioException {
            try {
                return sys.ioctl(fd, request, arg);
            } catch (NativeCallException e) {
                throw new VfioException("open " + name + ": " + KernelIoctlNames.of(request), e.errno(), detail, e);
            }
        }

        VfioException refuse(String step, int errno, String why) {
            return new VfioException("open " + name + ": " + step, errno, why);
        }

        /** Closes what was opened and returns the error to throw, close failures suppressed in it. */
        VfioException abandon(Exception e) {
            VfioException v = e instanceof VfioException ve ? ve
                    : new VfioException("open " + name, Errno.EIO, e.toString(), e);
            fds.closeAll().forEach(v::addSuppressed);
            return v;
        }

        private String hint(String path, int errno) {
            if (errno == Errno.ENOENT) {
                return path.equals(IOMMUFD) ? "no iommufd (kernel 6.2+ with CONFIG_IOMMUFD)"
                        : path.equals(VFIO_CONTAINER) ? "no VFIO (load vfio-pci)"
                        : "no such VFIO node (is the device bound to vfio-pci?)";
            }
            if (errno == Errno.EACCES || errno == Errno.EPERM) {
                return "permission denied: the user needs access to " + path;
            }
            if (errno == Errno.EBUSY) {
                return path + " is in use (another process, or the group is open elsewhere)";
            }
            return null;
        }
    }
}
