package dev.ferry.vfio.kernel;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.testing.FdLeakCheck;
import dev.ferry.vfio.device.GuestDmaSpace;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.uapi.IommuIoasAlloc;
import dev.ferry.vfio.uapi.IommufdIoctls;
import dev.ferry.vfio.uapi.VfioIoctls;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The real kernel behind {@link NativeVfioSyscalls}: errors for missing nodes are ENOENT with the
 * path and a hint, and where this host has VFIO or iommufd nodes, their first calls answer as
 * the uAPI says. Nothing here needs a device bound to vfio-pci.
 */
class NativeVfioSyscallsTest {
    private final NativeVfioSyscalls sys = new NativeVfioSyscalls();

    @Test
    void openingAMissingNodeIsEnoentNamingThePath() {
        String path = KernelVfioDeviceFactory.VFIO_CDEV_DIR + "vfio987654";
        NativeCallException e = assertThrows(NativeCallException.class, () -> sys.open(path, Linux.O_RDWR));
        assertEquals(Errno.name(Errno.ENOENT), Errno.name(e.errno()), e.getMessage());
        assertTrue(e.getMessage().contains(path), e.getMessage());
    }

    @Test
    void theFactoryReportsAMissingCdevWithTheStepAndAHint() throws Exception {
        FdLeakCheck leaks = FdLeakCheck.start();
        try (GuestMemory memory = GuestMemory.ofSize(1 << 20)) {
            String path = KernelVfioDeviceFactory.VFIO_CDEV_DIR + "vfio987654";
            VfioException e = assertThrows(VfioException.class,
                    () -> KernelVfioDeviceFactory.host().open("vf0", path, new GuestDmaSpace(memory)));
            assertEquals(Errno.name(Errno.ENOENT), Errno.name(e.errno()), e.getMessage());
            assertTrue(e.getMessage().contains("open vf0: open " + path), e.getMessage());
            assertTrue(e.getMessage().contains("vfio-pci"), "a hint for the user: " + e.getMessage());
        }
        leaks.assertNoLeaks();
    }

    @Test
    void aPciDeviceWithoutIommuGroupIsAClearError() throws IOException {
        Path devices = Path.of("/sys/bus/pci/devices");
        assumeTrue(Files.isDirectory(devices), "this host has no PCI bus in sysfs");
        Optional<Path> ungrouped;
        try (Stream<Path> s = Files.list(devices)) {
            ungrouped = s.filter(p -> !Files.exists(p.resolve("iommu_group"), java.nio.file.LinkOption.NOFOLLOW_LINKS))
                    .sorted().findFirst();
        }
        assumeTrue(ungrouped.isPresent(), "every PCI device of this host has an IOMMU group (the IOMMU is on)");
        String address = ungrouped.get().getFileName().toString();
        try (GuestMemory memory = GuestMemory.ofSize(1 << 20)) {
            VfioException e = assertThrows(VfioException.class,
                    () -> KernelVfioDeviceFactory.host().open(address, new GuestDmaSpace(memory)));
            assertEquals(Errno.name(Errno.ENOENT), Errno.name(e.errno()), e.getMessage());
            assertTrue(e.getMessage().contains("no iommu_group"), e.getMessage());
        }
    }

    @Test
    void theContainerAnswersItsVersionWhereVfioExists() {
        assumeTrue(Files.exists(Path.of(KernelVfioDeviceFactory.VFIO_CONTAINER)),
                KernelVfioDeviceFactory.VFIO_CONTAINER + " is absent: the vfio module is not loaded on this host");
        int fd = sys.open(KernelVfioDeviceFactory.VFIO_CONTAINER, Linux.O_RDWR | Linux.O_CLOEXEC);
        try {
            assertEquals(VfioIoctls.VFIO_API_VERSION, sys.ioctl(fd, VfioIoctls.VFIO_GET_API_VERSION, 0));
            int type1v2 = sys.ioctl(fd, VfioIoctls.VFIO_CHECK_EXTENSION, VfioIoctls.VFIO_TYPE1v2_IOMMU);
            assertTrue(type1v2 == 0 || type1v2 == 1, "CHECK_EXTENSION answers 0 or 1, not " + type1v2);
            // before any group joined, SET_IOMMU fails: EINVAL from VFIO's container, ENODEV from
            // iommufd's compatibility container
            NativeCallException e = assertThrows(NativeCallException.class,
                    () -> sys.ioctl(fd, VfioIoctls.VFIO_SET_IOMMU, VfioIoctls.VFIO_TYPE1v2_IOMMU));
            assertTrue(e.errno() == Errno.EINVAL || e.errno() == Errno.ENODEV, "SET_IOMMU before any group: " + e);
        } finally {
            sys.close(fd);
        }
    }

    @Test
    void iommufdAllocatesAnIoasWhereItExists() {
        assumeTrue(Files.exists(Path.of(KernelVfioDeviceFactory.IOMMUFD)),
                KernelVfioDeviceFactory.IOMMUFD + " is absent: this kernel has no iommufd (6.2+, CONFIG_IOMMUFD)");
        int fd = sys.open(KernelVfioDeviceFactory.IOMMUFD, Linux.O_RDWR | Linux.O_CLOEXEC);
        try (IommuIoasAlloc alloc = new IommuIoasAlloc()) {
            alloc.prepare();
            sys.ioctl(fd, IommufdIoctls.IOMMU_IOAS_ALLOC, alloc.address());
            assertTrue(alloc.ioasId() >= 1, "IOAS id " + alloc.ioasId());
        } finally {
            sys.close(fd);
        }
    }
}
