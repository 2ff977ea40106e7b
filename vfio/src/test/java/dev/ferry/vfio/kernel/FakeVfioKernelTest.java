package dev.ferry.vfio.kernel;

import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.uapi.IommuIoasAlloc;
import dev.ferry.vfio.uapi.IommuIoasMap;
import dev.ferry.vfio.uapi.IommuIoasUnmap;
import dev.ferry.vfio.uapi.IommufdIoctls;
import dev.ferry.vfio.uapi.VfioDeviceAttachIommufdPt;
import dev.ferry.vfio.uapi.VfioDeviceBindIommufd;
import dev.ferry.vfio.uapi.VfioDeviceFeature;
import dev.ferry.vfio.uapi.VfioDeviceFeatureMigState;
import dev.ferry.vfio.uapi.VfioDeviceInfo;
import dev.ferry.vfio.uapi.VfioDeviceState;
import dev.ferry.vfio.uapi.VfioGroupStatus;
import dev.ferry.vfio.uapi.VfioIommuType1DmaMap;
import dev.ferry.vfio.uapi.VfioIommuType1DmaUnmap;
import dev.ferry.vfio.uapi.VfioIoctls;
import dev.ferry.vfio.uapi.VfioPrecopyInfo;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static dev.ferry.core.sys.Errno.EBADF;
import static dev.ferry.core.sys.Errno.EBUSY;
import static dev.ferry.core.sys.Errno.EEXIST;
import static dev.ferry.core.sys.Errno.EINVAL;
import static dev.ferry.core.sys.Errno.ENODEV;
import static dev.ferry.core.sys.Errno.ENOENT;
import static dev.ferry.core.sys.Errno.ENOMSG;
import static dev.ferry.core.sys.Errno.ENOTTY;
import static dev.ferry.core.sys.Errno.EOPNOTSUPP;
import static dev.ferry.core.sys.Errno.EPERM;
import static dev.ferry.vfio.kernel.NativeCallExceptionAssert.failsWith;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The fake kernel's own rules, driven with raw syscalls and hand-made structs: each rule its
 * javadoc lists refuses what the kernel refuses, with the kernel's errno. A fake that accepted
 * anything would pass {@link KernelVfioDeviceTest}; it cannot pass this.
 */
class FakeVfioKernelTest {
    private static final long PAGE = 4096;
    private static final int FEATURE_GET = VfioIoctls.VFIO_DEVICE_FEATURE_GET;
    private static final int FEATURE_SET = VfioIoctls.VFIO_DEVICE_FEATURE_SET;
    private static final int FEATURE_PROBE = VfioIoctls.VFIO_DEVICE_FEATURE_PROBE;

    private FakeVfioKernel kernel;
    private FakeHostDevice dev;
    private final List<Long> allocations = new ArrayList<>();
    private Mapping ramMapping;
    private long ram;

    @BeforeEach
    void setUp() {
        kernel = new FakeVfioKernel();
        dev = kernel.addDevice("0000:03:00.1", 12, EmulatedVfSpec.parse("state=256K,dirty-rate=0"));
        ramMapping = Mapping.anonymous(1 << 20); // page aligned, as mappable memory is
        ram = ramMapping.address();
    }

    @AfterEach
    void tearDown() {
        kernel.openFds().keySet().forEach(kernel::close);
        kernel.close();
        allocations.forEach(NativeMemory::free);
        ramMapping.close();
    }

    /** Zeroed native memory, freed after the test. */
    private long raw(int size) {
        long a = NativeMemory.allocate(size);
        NativeMemory.fill(a, size, (byte) 0);
        allocations.add(a);
        return a;
    }

    private long intArg(int value) {
        long a = raw(4);
        NativeMemory.putInt(a, value);
        return a;
    }

    private long name(String s) {
        long a = raw(s.length() + 1);
        byte[] b = s.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        NativeMemory.copyFromArray(b, 0, a, b.length);
        return a;
    }

    /** A cdev fd bound to a fresh iommufd; returns {device fd, iommufd, IOAS id}. */
    private int[] boundCdev() {
        int device = kernel.open(dev.cdevPath(), 0);
        int iommufd = kernel.open(KernelVfioDeviceFactory.IOMMUFD, 0);
        int ioas;
        try (IommuIoasAlloc alloc = new IommuIoasAlloc(); VfioDeviceBindIommufd bind = new VfioDeviceBindIommufd()) {
            alloc.prepare();
            kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_ALLOC, alloc.address());
            ioas = alloc.ioasId();
            bind.prepare(iommufd);
            kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_BIND_IOMMUFD, bind.address());
        }
        return new int[] {device, iommufd, ioas};
    }

    /** A group in a type1v2 container with a device fd; returns {container, group, device fd}. */
    private int[] groupDevice() {
        int container = kernel.open(KernelVfioDeviceFactory.VFIO_CONTAINER, 0);
        int group = kernel.open(dev.groupPath(), 0);
        kernel.ioctl(group, VfioIoctls.VFIO_GROUP_SET_CONTAINER, intArg(container));
        kernel.ioctl(container, VfioIoctls.VFIO_SET_IOMMU, VfioIoctls.VFIO_TYPE1v2_IOMMU);
        int device = kernel.ioctl(group, VfioIoctls.VFIO_GROUP_GET_DEVICE_FD, name(dev.pciAddress()));
        return new int[] {container, group, device};
    }

    // ------------------------------------------------------------------------------------------
    // Files

    @Test
    void unknownAndClosedFdsAreEbadf() {
        failsWith(EBADF, () -> kernel.ioctl(999, VfioIoctls.VFIO_GET_API_VERSION, 0));
        int c = kernel.open(KernelVfioDeviceFactory.VFIO_CONTAINER, 0);
        assertEquals(0, kernel.ioctl(c, VfioIoctls.VFIO_GET_API_VERSION, 0));
        kernel.close(c);
        failsWith(EBADF, () -> kernel.ioctl(c, VfioIoctls.VFIO_GET_API_VERSION, 0));
        failsWith(EBADF, () -> kernel.close(c));
        failsWith(EBADF, () -> kernel.read(c, ram, 8));
        int again = kernel.open(KernelVfioDeviceFactory.VFIO_CONTAINER, 0);
        assertNotEquals(c, again, "fd numbers are never reused");
    }

    @Test
    void unknownPathsAreEnoent() {
        failsWith(ENOENT, () -> kernel.open("/dev/vfio/99", 0));
        failsWith(ENOENT, () -> kernel.open("/dev/vfio/devices/vfio5", 0));
        failsWith(ENOENT, () -> kernel.open("/dev/vfio/noiommu-12", 0));
        failsWith(ENOENT, () -> kernel.open("/dev/kvm", 0));
    }

    // ------------------------------------------------------------------------------------------
    // cdev and iommufd

    @Test
    void anUnboundCdevRefusesEverythingButBind() {
        int device = kernel.open(dev.cdevPath(), 0);
        try (VfioDeviceInfo info = new VfioDeviceInfo(); VfioDeviceAttachIommufdPt attach = new VfioDeviceAttachIommufdPt()) {
            info.prepare();
            failsWith(EINVAL, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_GET_INFO, info.address()));
            attach.prepare(1);
            failsWith(EINVAL, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach.address()));
            failsWith(EINVAL, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_RESET, 0));
            failsWith(EINVAL, () -> kernel.read(device, ram, 8));
        }
    }

    @Test
    void bindKeepsTheKernelsRules() {
        int device = kernel.open(dev.cdevPath(), 0);
        int iommufd = kernel.open(KernelVfioDeviceFactory.IOMMUFD, 0);
        int container = kernel.open(KernelVfioDeviceFactory.VFIO_CONTAINER, 0);
        try (VfioDeviceBindIommufd bind = new VfioDeviceBindIommufd()) {
            bind.prepare(iommufd);
            NativeMemory.putInt(bind.address(), 15);
            failsWith(EINVAL, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_BIND_IOMMUFD, bind.address()));
            assertEquals(1, kernel.argszRejections());
            bind.prepare(iommufd);
            NativeMemory.putInt(bind.address() + 4, 1);
            failsWith(EINVAL, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_BIND_IOMMUFD, bind.address()));
            bind.prepare(iommufd);
            NativeMemory.putInt(bind.address() + 8, -1);
            failsWith(EINVAL, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_BIND_IOMMUFD, bind.address()));
            bind.prepare(4242);
            failsWith(EBADF, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_BIND_IOMMUFD, bind.address()));
            bind.prepare(container);
            failsWith(FakeVfioKernel.EBADFD, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_BIND_IOMMUFD, bind.address()));
            bind.prepare(iommufd);
            kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_BIND_IOMMUFD, bind.address());
            assertTrue(bind.devid() >= 1);
            failsWith(EINVAL, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_BIND_IOMMUFD, bind.address()));
            int second = kernel.open(dev.cdevPath(), 0);
            failsWith(EINVAL, () -> kernel.ioctl(second, VfioIoctls.VFIO_DEVICE_BIND_IOMMUFD, bind.address()));
            failsWith(EBUSY, () -> kernel.open(dev.groupPath(), 0));
        }
    }

    @Test
    void attachKeepsTheKernelsRules() {
        int[] b = boundCdev();
        try (VfioDeviceAttachIommufdPt attach = new VfioDeviceAttachIommufdPt()) {
            attach.prepare(77);
            failsWith(ENOENT, () -> kernel.ioctl(b[0], VfioIoctls.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach.address()));
            attach.prepare(b[2]);
            NativeMemory.putInt(attach.address(), 11);
            failsWith(EINVAL, () -> kernel.ioctl(b[0], VfioIoctls.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach.address()));
            attach.prepare(b[2]);
            NativeMemory.putInt(attach.address() + 4, 1);
            failsWith(EOPNOTSUPP, () -> kernel.ioctl(b[0], VfioIoctls.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach.address()));
            attach.prepare(b[2] + 1); // the device's own id: an object, but no IOAS
            failsWith(EINVAL, () -> kernel.ioctl(b[0], VfioIoctls.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach.address()));
            attach.prepare(b[2]);
            kernel.ioctl(b[0], VfioIoctls.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach.address());
            assertNotEquals(b[2], attach.ptId(), "the kernel answers the page table it made for the IOAS");
            assertTrue(dev.attached());
            long destroy = raw(8);
            NativeMemory.putInt(destroy, 8);
            NativeMemory.putInt(destroy + 4, b[2]);
            failsWith(EBUSY, () -> kernel.ioctl(b[1], IommufdIoctls.IOMMU_DESTROY, destroy));
        }
    }

    @Test
    void iommufdChecksSizeLikeEveryCommand() {
        int iommufd = kernel.open(KernelVfioDeviceFactory.IOMMUFD, 0);
        long cmd = raw(64);
        NativeMemory.putInt(cmd, 8);
        failsWith(EINVAL, () -> kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_ALLOC, cmd));
        NativeMemory.putInt(cmd, 24); // larger than the kernel's struct, excess zero: accepted
        kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_ALLOC, cmd);
        assertEquals(1, NativeMemory.getInt(cmd + 8));
        NativeMemory.putInt(cmd + 20, 1);
        failsWith(Errno.E2BIG, () -> kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_ALLOC, cmd));
        NativeMemory.putInt(cmd + 20, 0);
        NativeMemory.putInt(cmd + 4, 1);
        failsWith(EOPNOTSUPP, () -> kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_ALLOC, cmd));
        failsWith(ENOTTY, () -> kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_ALLOC + 1, cmd)); // ALLOW_IOVAS
        failsWith(ENOTTY, () -> kernel.ioctl(iommufd, VfioIoctls.VFIO_GET_API_VERSION, 0));
        NativeMemory.putInt(cmd, 8); // IOMMU_DESTROY {size, id}
        NativeMemory.putInt(cmd + 4, 1);
        kernel.ioctl(iommufd, IommufdIoctls.IOMMU_DESTROY, cmd);
        failsWith(ENOENT, () -> kernel.ioctl(iommufd, IommufdIoctls.IOMMU_DESTROY, cmd));
    }

    @Test
    void ioasMappingsKeepTheKernelsRules() {
        int[] b = boundCdev();
        int iommufd = b[1];
        int ioas = b[2];
        try (IommuIoasMap map = new IommuIoasMap(); IommuIoasUnmap unmap = new IommuIoasUnmap();
             VfioDeviceAttachIommufdPt attach = new VfioDeviceAttachIommufdPt()) {
            map.prepareFixed(ioas, ram, 8 * PAGE, 0x10_0001); // no domain attached yet: any alignment
            kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_MAP, map.address());
            unmap.prepare(ioas, 0x10_0001, 8 * PAGE);
            kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_UNMAP, unmap.address());
            attach.prepare(ioas);
            kernel.ioctl(b[0], VfioIoctls.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach.address());
            map.prepareFixed(ioas, ram, 8 * PAGE, 0x10_0001);
            failsWith(EINVAL, () -> kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_MAP, map.address()));
            map.prepareFixed(ioas, ram, 8 * PAGE, 0x10_0000);
            kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_MAP, map.address());
            map.prepareFixed(ioas, ram, 2 * PAGE, 0x10_0000 + 7 * PAGE);
            failsWith(EEXIST, () -> kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_MAP, map.address()));
            map.prepareFixed(ioas + 100, ram, PAGE, 0);
            failsWith(ENOENT, () -> kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_MAP, map.address()));
            map.prepareFixed(ioas, ram, PAGE, 0);
            NativeMemory.putInt(map.address() + 4, IommufdIoctls.IOMMU_IOAS_MAP_FIXED_IOVA);
            failsWith(EINVAL, () -> kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_MAP, map.address()));
            map.prepareFixed(ioas, ram, PAGE, 0);
            NativeMemory.putInt(map.address() + 12, 1);
            failsWith(EOPNOTSUPP, () -> kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_MAP, map.address()));
            map.prepareFixed(ioas, ram, PAGE, -1L);
            failsWith(FakeVfioKernel.EOVERFLOW, () -> kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_MAP, map.address()));
            map.prepareFixed(ioas, ram, PAGE, 0);
            NativeMemory.putInt(map.address() + 4, IommufdIoctls.IOMMU_IOAS_MAP_READABLE); // kernel picks the IOVA
            kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_MAP, map.address());
            long picked = map.iova();
            assertTrue(picked % PAGE == 0 && (picked + PAGE <= 0x10_0000 || picked >= 0x10_0000 + 8 * PAGE),
                    "a picked IOVA avoids existing mappings: 0x" + Long.toHexString(picked));

            assertEquals(dev.dma().hostAddress(0x10_0000 + 3 * PAGE + 8, 8), ram + 3 * PAGE + 8,
                    "the device's DMA goes through the IOAS");
            unmap.prepare(ioas, 0x10_0000, 4 * PAGE);
            failsWith(ENOENT, () -> kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_UNMAP, unmap.address()));
            unmap.prepare(ioas, 0x10_0000, 0);
            failsWith(EINVAL, () -> kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_UNMAP, unmap.address()));
            unmap.prepare(ioas, 0xF_0000, 16 * PAGE + 0x10_0000);
            kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_UNMAP, unmap.address());
            assertEquals(8 * PAGE, unmap.length(), "the bytes unmapped come back");
            assertThrows(IllegalArgumentException.class, () -> dev.dma().hostAddress(0x10_0000, 8),
                    "unmapped: an IOMMU fault");
            unmap.prepare(ioas, 0, -1L);
            kernel.ioctl(iommufd, IommufdIoctls.IOMMU_IOAS_UNMAP, unmap.address());
            assertEquals(PAGE, unmap.length(), "(0, U64_MAX) unmaps everything left");
        }
    }

    @Test
    void aBoundDeviceKeepsItsIommufdAliveAfterItsFdCloses() {
        int[] b = boundCdev();
        try (IommuIoasMap map = new IommuIoasMap(); VfioDeviceAttachIommufdPt attach = new VfioDeviceAttachIommufdPt()) {
            attach.prepare(b[2]);
            kernel.ioctl(b[0], VfioIoctls.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach.address());
            map.prepareFixed(b[2], ram, PAGE, 0);
            kernel.ioctl(b[1], IommufdIoctls.IOMMU_IOAS_MAP, map.address());
        }
        kernel.close(b[1]);
        assertEquals(ram, dev.dma().hostAddress(0, 8), "the IOAS lives while the device holds the iommufd");
        kernel.close(b[0]);
        assertThrows(IllegalArgumentException.class, () -> dev.dma().hostAddress(0, 8));
    }

    // ------------------------------------------------------------------------------------------
    // Container and group

    @Test
    void theContainerKeepsTheKernelsOrder() {
        int container = kernel.open(KernelVfioDeviceFactory.VFIO_CONTAINER, 0);
        assertEquals(1, kernel.ioctl(container, VfioIoctls.VFIO_CHECK_EXTENSION, VfioIoctls.VFIO_TYPE1v2_IOMMU));
        assertEquals(0, kernel.ioctl(container, VfioIoctls.VFIO_CHECK_EXTENSION, 99));
        failsWith(EINVAL, () -> kernel.ioctl(container, VfioIoctls.VFIO_SET_IOMMU, VfioIoctls.VFIO_TYPE1v2_IOMMU));
        try (VfioIommuType1DmaMap map = new VfioIommuType1DmaMap()) {
            map.prepare(ram, 0, PAGE);
            failsWith(EINVAL, () -> kernel.ioctl(container, VfioIoctls.VFIO_IOMMU_MAP_DMA, map.address()));
        }
        int group = kernel.open(dev.groupPath(), 0);
        failsWith(EBUSY, () -> kernel.open(dev.groupPath(), 0));
        failsWith(EINVAL, () -> kernel.ioctl(group, VfioIoctls.VFIO_GROUP_GET_DEVICE_FD, name(dev.pciAddress())));
        failsWith(EBADF, () -> kernel.ioctl(group, VfioIoctls.VFIO_GROUP_SET_CONTAINER, intArg(4242)));
        int iommufd = kernel.open(KernelVfioDeviceFactory.IOMMUFD, 0);
        failsWith(FakeVfioKernel.EBADFD, () -> kernel.ioctl(group, VfioIoctls.VFIO_GROUP_SET_CONTAINER, intArg(iommufd)));
        try (VfioGroupStatus status = new VfioGroupStatus()) {
            status.prepare();
            kernel.ioctl(group, VfioIoctls.VFIO_GROUP_GET_STATUS, status.address());
            assertTrue(status.viable() && !status.containerSet());
            kernel.ioctl(group, VfioIoctls.VFIO_GROUP_SET_CONTAINER, intArg(container));
            failsWith(EINVAL, () -> kernel.ioctl(group, VfioIoctls.VFIO_GROUP_SET_CONTAINER, intArg(container)));
            kernel.ioctl(group, VfioIoctls.VFIO_GROUP_GET_STATUS, status.address());
            assertTrue(status.viable() && status.containerSet());
            NativeMemory.putInt(status.address(), 4);
            failsWith(EINVAL, () -> kernel.ioctl(group, VfioIoctls.VFIO_GROUP_GET_STATUS, status.address()));
        }
        failsWith(EINVAL, () -> kernel.ioctl(group, VfioIoctls.VFIO_GROUP_GET_DEVICE_FD, name(dev.pciAddress())));
        failsWith(ENODEV, () -> kernel.ioctl(container, VfioIoctls.VFIO_SET_IOMMU, VfioIoctls.VFIO_TYPE1_IOMMU));
        kernel.ioctl(container, VfioIoctls.VFIO_SET_IOMMU, VfioIoctls.VFIO_TYPE1v2_IOMMU);
        failsWith(EINVAL, () -> kernel.ioctl(container, VfioIoctls.VFIO_SET_IOMMU, VfioIoctls.VFIO_TYPE1v2_IOMMU));
        failsWith(ENODEV, () -> kernel.ioctl(group, VfioIoctls.VFIO_GROUP_GET_DEVICE_FD, name("0000:03:00.2")));
        int device = kernel.ioctl(group, VfioIoctls.VFIO_GROUP_GET_DEVICE_FD, name(dev.pciAddress()));
        failsWith(EBUSY, () -> kernel.ioctl(group, VfioIoctls.VFIO_GROUP_UNSET_CONTAINER, 0));
        failsWith(ENOTTY, () -> kernel.ioctl(group, VfioIoctls.VFIO_DEVICE_GET_INFO, ram));
        failsWith(ENOTTY, () -> kernel.ioctl(container, VfioIoctls.VFIO_DEVICE_GET_INFO, ram));
        try (VfioDeviceBindIommufd bind = new VfioDeviceBindIommufd()) {
            bind.prepare(iommufd);
            failsWith(EINVAL, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_BIND_IOMMUFD, bind.address()));
        }
        kernel.close(device);
        kernel.ioctl(group, VfioIoctls.VFIO_GROUP_UNSET_CONTAINER, 0);
        failsWith(EINVAL, () -> kernel.ioctl(group, VfioIoctls.VFIO_GROUP_UNSET_CONTAINER, 0));
    }

    @Test
    void aNonViableGroupCannotJoinAContainer() {
        kernel.setViable(12, false);
        int container = kernel.open(KernelVfioDeviceFactory.VFIO_CONTAINER, 0);
        int group = kernel.open(dev.groupPath(), 0);
        try (VfioGroupStatus status = new VfioGroupStatus()) {
            status.prepare();
            kernel.ioctl(group, VfioIoctls.VFIO_GROUP_GET_STATUS, status.address());
            assertEquals(0, status.flags());
        }
        failsWith(EPERM, () -> kernel.ioctl(group, VfioIoctls.VFIO_GROUP_SET_CONTAINER, intArg(container)));
    }

    @Test
    void type1MappingsKeepTheKernelsRules() {
        int[] g = groupDevice();
        int container = g[0];
        try (VfioIommuType1DmaMap map = new VfioIommuType1DmaMap(); VfioIommuType1DmaUnmap unmap = new VfioIommuType1DmaUnmap()) {
            map.prepare(ram, 0x20_0000, 8 * PAGE);
            NativeMemory.putInt(map.address(), 31);
            failsWith(EINVAL, () -> kernel.ioctl(container, VfioIoctls.VFIO_IOMMU_MAP_DMA, map.address()));
            map.prepare(ram + 8, 0x20_0000, 8 * PAGE);
            failsWith(EINVAL, () -> kernel.ioctl(container, VfioIoctls.VFIO_IOMMU_MAP_DMA, map.address()));
            map.prepare(ram, 0x20_0000, 8 * PAGE);
            NativeMemory.putInt(map.address() + 4, 0);
            failsWith(EINVAL, () -> kernel.ioctl(container, VfioIoctls.VFIO_IOMMU_MAP_DMA, map.address()));
            NativeMemory.putInt(map.address() + 4, 1 << 5);
            failsWith(EINVAL, () -> kernel.ioctl(container, VfioIoctls.VFIO_IOMMU_MAP_DMA, map.address()));
            map.prepare(ram, 0x20_0000, 8 * PAGE);
            kernel.ioctl(container, VfioIoctls.VFIO_IOMMU_MAP_DMA, map.address());
            map.prepare(ram, 0x20_0000 - PAGE, 2 * PAGE);
            failsWith(EEXIST, () -> kernel.ioctl(container, VfioIoctls.VFIO_IOMMU_MAP_DMA, map.address()));
            assertEquals(ram + PAGE, dev.dma().hostAddress(0x20_0000 + PAGE, 8));
            unmap.prepare(0x20_0000, 4 * PAGE);
            failsWith(EINVAL, () -> kernel.ioctl(container, VfioIoctls.VFIO_IOMMU_UNMAP_DMA, unmap.address()));
            unmap.prepare(0x30_0000, 4 * PAGE);
            kernel.ioctl(container, VfioIoctls.VFIO_IOMMU_UNMAP_DMA, unmap.address());
            assertEquals(0, unmap.unmapSize(), "a range with no mapping unmaps nothing and succeeds");
            unmap.prepare(0, 0x40_0000);
            kernel.ioctl(container, VfioIoctls.VFIO_IOMMU_UNMAP_DMA, unmap.address());
            assertEquals(8 * PAGE, unmap.unmapSize());
        }
    }

    @Test
    void theContainerOutlivesItsFdWhileAGroupIsIn() {
        int[] g = groupDevice();
        try (VfioIommuType1DmaMap map = new VfioIommuType1DmaMap()) {
            map.prepare(ram, 0, PAGE);
            kernel.ioctl(g[0], VfioIoctls.VFIO_IOMMU_MAP_DMA, map.address());
        }
        kernel.close(g[0]);
        kernel.close(g[1]);
        assertEquals(ram, dev.dma().hostAddress(0, 8), "the device fd holds the group, the group the container");
        kernel.close(g[2]);
        assertThrows(IllegalArgumentException.class, () -> dev.dma().hostAddress(0, 8));
        assertEquals(java.util.Map.of(), kernel.openFds());
    }

    // ------------------------------------------------------------------------------------------
    // VFIO_DEVICE_FEATURE and data fds

    @Test
    void featureFlagsKeepTheKernelsRules() {
        int device = groupDevice()[2];
        long f = raw(64);
        NativeMemory.putInt(f, 16);
        NativeMemory.putInt(f + 4, FEATURE_GET | FEATURE_SET | VfioIoctls.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE);
        failsWith(EINVAL, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_FEATURE, f));
        NativeMemory.putInt(f + 4, (1 << 20) | FEATURE_GET | VfioIoctls.VFIO_DEVICE_FEATURE_MIGRATION);
        failsWith(EINVAL, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_FEATURE, f));
        NativeMemory.putInt(f + 4, FEATURE_GET | 10);
        failsWith(ENOTTY, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_FEATURE, f));
        NativeMemory.putInt(f + 4, FEATURE_SET | VfioIoctls.VFIO_DEVICE_FEATURE_MIGRATION);
        failsWith(EINVAL, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_FEATURE, f));
        NativeMemory.putInt(f + 4, VfioIoctls.VFIO_DEVICE_FEATURE_MIGRATION);
        failsWith(EINVAL, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_FEATURE, f));
        NativeMemory.putInt(f, 12);
        NativeMemory.putInt(f + 4, FEATURE_GET | VfioIoctls.VFIO_DEVICE_FEATURE_MIGRATION);
        failsWith(EINVAL, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_FEATURE, f));
        NativeMemory.putInt(f, 7);
        failsWith(EINVAL, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_FEATURE, f));
        assertEquals(2, kernel.argszRejections());
        try (VfioDeviceFeature probe = new VfioDeviceFeature()) {
            probe.prepareProbe(VfioIoctls.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, FEATURE_GET | FEATURE_SET);
            assertEquals(0, kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_FEATURE, probe.address()));
            probe.prepareProbe(VfioIoctls.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, FEATURE_SET);
            failsWith(EINVAL, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_FEATURE, probe.address()));
        }
        try (VfioDeviceFeatureMigState state = new VfioDeviceFeatureMigState()) {
            state.prepareSet(VfioDeviceState.STOP);
            NativeMemory.putInt(state.address() + 8, 9);
            NativeMemory.putInt(state.address() + 12, 1234);
            failsWith(EINVAL, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_FEATURE, state.address()));
            assertEquals(9, state.deviceStateValue(), "the requested state is echoed");
            assertEquals(-1, state.dataFd(), "a failed SET answers data_fd -1");
        }
    }

    @Test
    void aDeviceWithoutMigrationAnswersEnottyFirst() {
        FakeHostDevice bare = kernel.addDevice("0000:04:00.0", 30,
                EmulatedVfSpec.parse("state=64K,dirty-rate=0,no-migration,no-dma-log"));
        int container = kernel.open(KernelVfioDeviceFactory.VFIO_CONTAINER, 0);
        int group = kernel.open(bare.groupPath(), 0);
        kernel.ioctl(group, VfioIoctls.VFIO_GROUP_SET_CONTAINER, intArg(container));
        kernel.ioctl(container, VfioIoctls.VFIO_SET_IOMMU, VfioIoctls.VFIO_TYPE1v2_IOMMU);
        int device = kernel.ioctl(group, VfioIoctls.VFIO_GROUP_GET_DEVICE_FD, name(bare.pciAddress()));
        long f = raw(64);
        NativeMemory.putInt(f, 8); // even a short argsz: !mig_ops comes first
        for (int feature : new int[] {1, 2, 9}) {
            NativeMemory.putInt(f + 4, FEATURE_GET | feature);
            failsWith(ENOTTY, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_FEATURE, f));
        }
        for (int feature : new int[] {6, 7, 8}) {
            NativeMemory.putInt(f + 4, FEATURE_PROBE | feature);
            failsWith(ENOTTY, () -> kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_FEATURE, f));
        }
    }

    @Test
    void dataFdsKeepTheirDirectionAndOutliveTheirSession() {
        int device = groupDevice()[2];
        try (VfioDeviceFeatureMigState state = new VfioDeviceFeatureMigState(); VfioPrecopyInfo info = new VfioPrecopyInfo()) {
            state.prepareSet(VfioDeviceState.PRE_COPY);
            kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_FEATURE, state.address());
            int save = state.dataFd();
            assertTrue(save > device, "a data fd is a new fd: " + save);
            info.prepare();
            kernel.ioctl(save, VfioIoctls.VFIO_MIG_GET_PRECOPY_INFO, info.address());
            assertTrue(info.initialBytes() > 0);
            NativeMemory.putInt(info.address(), 16);
            failsWith(EINVAL, () -> kernel.ioctl(save, VfioIoctls.VFIO_MIG_GET_PRECOPY_INFO, info.address()));
            failsWith(ENOTTY, () -> kernel.ioctl(save, VfioIoctls.VFIO_DEVICE_RESET, 0));
            failsWith(EBADF, () -> kernel.write(save, ram, 8));
            long total = 0;
            for (int i = 0; i < 100; i++) { // the initial data: 256 KiB of state in records
                total += kernel.read(save, ram, 64 << 10);
                if (total > 256 << 10) {
                    break;
                }
            }
            failsWith(ENOMSG, () -> kernel.read(save, ram, 1 << 20));
            state.prepareSet(VfioDeviceState.RUNNING);
            kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_FEATURE, state.address());
            assertEquals(-1, state.dataFd());
            failsWith(ENODEV, () -> kernel.read(save, ram, 8));
            assertTrue(kernel.openFds().containsKey(save), "the fd stays open until closed");
            state.prepareSet(VfioDeviceState.STOP);
            kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_FEATURE, state.address());
            state.prepareSet(VfioDeviceState.RESUMING);
            kernel.ioctl(device, VfioIoctls.VFIO_DEVICE_FEATURE, state.address());
            int resume = state.dataFd();
            failsWith(EBADF, () -> kernel.read(resume, ram, 8));
            kernel.close(save);
            kernel.close(resume);
        }
    }

    @Test
    void injectedFailuresHitOnlyTheNamedStepOnce() {
        kernel.failNext("VFIO_GET_API_VERSION", EBUSY);
        int container = kernel.open(KernelVfioDeviceFactory.VFIO_CONTAINER, 0);
        failsWith(EBUSY, () -> kernel.ioctl(container, VfioIoctls.VFIO_GET_API_VERSION, 0));
        assertEquals(0, kernel.ioctl(container, VfioIoctls.VFIO_GET_API_VERSION, 0));
        kernel.failNext("open /dev/iommu", Errno.EACCES);
        failsWith(Errno.EACCES, () -> kernel.open(KernelVfioDeviceFactory.IOMMUFD, 0));
    }
}
