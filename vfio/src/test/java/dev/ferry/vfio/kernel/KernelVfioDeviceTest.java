package dev.ferry.vfio.kernel;

import dev.ferry.core.memory.GuestMemory;
import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.testing.FdLeakCheck;
import dev.ferry.vfio.device.DmaSpace;
import dev.ferry.vfio.device.GuestDmaSpace;
import dev.ferry.vfio.device.IovaRange;
import dev.ferry.vfio.device.PrecopyInfo;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.device.VfioException;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;
import dev.ferry.vfio.fsm.MigCapabilities;
import dev.ferry.vfio.kernel.KernelTestBed.Interface;
import dev.ferry.vfio.uapi.VfioDeviceState;
import dev.ferry.vfio.uapi.VfioIoctls;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static dev.ferry.vfio.uapi.VfioDeviceState.ERROR;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY;
import static dev.ferry.vfio.uapi.VfioDeviceState.PRE_COPY_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.RESUMING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING;
import static dev.ferry.vfio.uapi.VfioDeviceState.RUNNING_P2P;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP;
import static dev.ferry.vfio.uapi.VfioDeviceState.STOP_COPY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link KernelVfioDevice} against the {@link FakeVfioKernel}: opening through the cdev/iommufd
 * interface and the group/container interface (the exact call sequence, guest RAM mapped at
 * IOVA = GPA and reachable by the device's DMA), every migration call round-tripping to the
 * emulated driver, errors naming their step, and every fd closed once whatever fails.
 */
class KernelVfioDeviceTest {
    private static final long RAM = 4L << 20;
    private static final long HIGH = 1L << 32;
    private static final String SMALL = "state=512K,dirty-rate=0";

    private KernelTestBed bed;
    private GuestMemory memory;
    private DmaSpace dma;
    private final List<AutoCloseable> owned = new ArrayList<>();

    @BeforeEach
    void setUp() {
        bed = new KernelTestBed();
        memory = GuestMemory.builder().region("low", 0, RAM).region("high", HIGH, RAM).build();
        dma = new GuestDmaSpace(memory);
    }

    @AfterEach
    void tearDown() throws Exception {
        for (int i = owned.size() - 1; i >= 0; i--) {
            owned.get(i).close();
        }
        assertEquals(Map.of(), bed.kernel.openFds(), "every fd is closed at the end of a test");
        bed.close();
        memory.close();
    }

    private <T extends AutoCloseable> T own(T c) {
        owned.add(c);
        return c;
    }

    private KernelVfioDevice open(Interface how, FakeHostDevice d) throws VfioException {
        return own(bed.factory.open("vf0", how.deviceName(d), dma));
    }

    private List<String> requests() {
        return bed.kernel.calls().stream().map(FakeVfioKernel.Call::request).toList();
    }

    private static VfioException failsWith(int errno, Executable call) {
        VfioException e = assertThrows(VfioException.class, call);
        assertEquals(Errno.name(errno), Errno.name(e.errno()), e.getMessage());
        return e;
    }

    // ------------------------------------------------------------------------------------------
    // Opening

    @Test
    void opensThroughTheCdevAndMapsGuestRamAtGpa() throws Exception {
        FakeHostDevice host = bed.host(EmulatedVfSpec.parse(SMALL));
        KernelVfioDevice d = open(Interface.CDEV, host);
        assertEquals(List.of("IOMMU_IOAS_ALLOC", "VFIO_DEVICE_BIND_IOMMUFD", "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
                "IOMMU_IOAS_MAP", "IOMMU_IOAS_MAP", "VFIO_DEVICE_GET_INFO"), requests());
        assertEquals(List.of(host.cdevPath(), KernelVfioDeviceFactory.IOMMUFD),
                List.copyOf(bed.kernel.openFds().values()));
        assertMappedAtGpa(host);
        assertEquals("vf0", d.name());
        assertTrue(d.canReset());
        assertEquals(9, d.numRegions());
        d.close();
        assertEquals(Map.of(), bed.kernel.openFds());
        assertFalse(host.attached(), "closing the device detaches it from the IOAS");
    }

    @Test
    void opensThroughTheGroupAndContainer() throws Exception {
        FakeHostDevice host = bed.host(EmulatedVfSpec.parse(SMALL));
        KernelVfioDevice d = open(Interface.GROUP, host);
        assertEquals(List.of("VFIO_GET_API_VERSION", "VFIO_CHECK_EXTENSION", "VFIO_GROUP_GET_STATUS",
                "VFIO_GROUP_SET_CONTAINER", "VFIO_SET_IOMMU", "VFIO_IOMMU_MAP_DMA", "VFIO_IOMMU_MAP_DMA",
                "VFIO_GROUP_GET_DEVICE_FD", "VFIO_DEVICE_GET_INFO"), requests());
        assertEquals(List.of(KernelVfioDeviceFactory.VFIO_CONTAINER, host.groupPath(),
                "[vfio-device] " + host.pciAddress()), List.copyOf(bed.kernel.openFds().values()));
        assertMappedAtGpa(host);
        d.close();
        assertEquals(Map.of(), bed.kernel.openFds());
        assertFalse(host.attached(), "the last group leaving the container takes the IOMMU with it");
    }

    /** The device's DMA, through the fake IOMMU, lands in guest RAM at the GPA it names. */
    private void assertMappedAtGpa(FakeHostDevice host) {
        assertEquals(List.of(new IovaRange(0, RAM), new IovaRange(HIGH, RAM)), host.mappedRanges());
        for (long gpa : new long[] {0, RAM - 8, HIGH, HIGH + 12345 * 8}) {
            assertEquals(dma.hostAddress(gpa, 8), host.dma().hostAddress(gpa, 8), "GPA 0x" + Long.toHexString(gpa));
        }
        assertThrows(IllegalArgumentException.class, () -> host.dma().hostAddress(RAM, 8),
                "an IOVA no mapping covers is an IOMMU fault");
    }

    @ParameterizedTest
    @EnumSource(Interface.class)
    void closesItsFdsNewestFirst(Interface how) throws Exception {
        FakeHostDevice host = bed.host(EmulatedVfSpec.parse(SMALL));
        KernelVfioDevice d = open(how, host);
        List<Integer> opened = List.copyOf(bed.kernel.openFds().keySet());
        d.close();
        d.close();
        List<Integer> closed = bed.kernel.closeLog();
        assertEquals(opened.size(), closed.size(), "each fd closed exactly once: " + closed);
        List<Integer> reversed = new ArrayList<>(opened);
        java.util.Collections.reverse(reversed);
        assertEquals(reversed, closed);
    }

    static Stream<Arguments> openingSteps() {
        return Stream.of(
                Arguments.of(Interface.CDEV, "open /dev/vfio/devices/vfio0", 0),
                Arguments.of(Interface.CDEV, "open /dev/iommu", 1),
                Arguments.of(Interface.CDEV, "IOMMU_IOAS_ALLOC", 2),
                Arguments.of(Interface.CDEV, "VFIO_DEVICE_BIND_IOMMUFD", 2),
                Arguments.of(Interface.CDEV, "VFIO_DEVICE_ATTACH_IOMMUFD_PT", 2),
                Arguments.of(Interface.CDEV, "IOMMU_IOAS_MAP", 2),
                Arguments.of(Interface.CDEV, "VFIO_DEVICE_GET_INFO", 2),
                Arguments.of(Interface.GROUP, "open /dev/vfio/vfio", 0),
                Arguments.of(Interface.GROUP, "VFIO_GET_API_VERSION", 1),
                Arguments.of(Interface.GROUP, "VFIO_CHECK_EXTENSION", 1),
                Arguments.of(Interface.GROUP, "open /dev/vfio/12", 1),
                Arguments.of(Interface.GROUP, "VFIO_GROUP_GET_STATUS", 2),
                Arguments.of(Interface.GROUP, "VFIO_GROUP_SET_CONTAINER", 2),
                Arguments.of(Interface.GROUP, "VFIO_SET_IOMMU", 2),
                Arguments.of(Interface.GROUP, "VFIO_IOMMU_MAP_DMA", 2),
                Arguments.of(Interface.GROUP, "VFIO_GROUP_GET_DEVICE_FD", 2),
                Arguments.of(Interface.GROUP, "VFIO_DEVICE_GET_INFO", 3));
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("openingSteps")
    void aFailingStepClosesEverythingOpenedAndNamesItself(Interface how, String step, int openAtFailure)
            throws Exception {
        FakeHostDevice host = bed.host(EmulatedVfSpec.parse(SMALL));
        bed.kernel.failNext(step, Errno.EBUSY);
        VfioException e = failsWith(Errno.EBUSY, () -> bed.factory.open("vf0", how.deviceName(host), dma));
        assertTrue(e.getMessage().contains("vf0") && e.getMessage().contains(step), e.getMessage());
        assertEquals(Map.of(), bed.kernel.openFds(), "fds left open after " + step + " failed");
        assertEquals(openAtFailure, bed.kernel.closeLog().size(), "fds opened before " + step);
        assertFalse(host.attached());
        // nothing is left half-done: the same device opens cleanly now
        KernelVfioDevice d = open(how, host);
        assertEquals(RUNNING, d.deviceState());
    }

    @Test
    void aNonViableGroupIsRefusedWithItsReason() throws Exception {
        FakeHostDevice host = bed.host(EmulatedVfSpec.parse(SMALL));
        bed.kernel.setViable(host.iommuGroup(), false);
        VfioException e = failsWith(Errno.EPERM, () -> bed.factory.open("vf0", host.pciAddress(), dma));
        assertTrue(e.getMessage().contains("not viable"), e.getMessage());
        assertEquals(Map.of(), bed.kernel.openFds());
    }

    @Test
    void unknownDevicesAreClearErrors() throws Exception {
        bed.host(EmulatedVfSpec.parse(SMALL));
        VfioException missing = failsWith(Errno.ENOENT, () -> bed.factory.open("/dev/vfio/devices/vfio7", dma));
        assertTrue(missing.getMessage().contains("open /dev/vfio/devices/vfio7"), missing.getMessage());
        VfioException noPci = failsWith(Errno.ENOENT, () -> bed.factory.open("0000:09:00.0", dma));
        assertTrue(noPci.getMessage().contains("no PCI device 0000:09:00.0"), noPci.getMessage());
        VfioException what = failsWith(Errno.EINVAL, () -> bed.factory.open("eth0", dma));
        assertTrue(what.getMessage().contains("neither"), what.getMessage());
        assertEquals(Map.of(), bed.kernel.openFds());
    }

    @Test
    void aGroupAndACdevOfOneDeviceExcludeEachOther() throws Exception {
        FakeHostDevice host = bed.host(EmulatedVfSpec.parse(SMALL));
        KernelVfioDevice viaCdev = open(Interface.CDEV, host);
        failsWith(Errno.EBUSY, () -> bed.factory.open("again", host.pciAddress(), dma));
        viaCdev.close();
        KernelVfioDevice viaGroup = open(Interface.GROUP, host);
        failsWith(Errno.EBUSY, () -> bed.factory.open("again", host.cdevPath(), dma));
        viaGroup.close();
        assertEquals(Map.of(), bed.kernel.openFds());
    }

    // ------------------------------------------------------------------------------------------
    // Migration calls

    @ParameterizedTest
    @EnumSource(Interface.class)
    void aDeviceMigratesThroughKernelFds(Interface how) throws Exception {
        FakeHostDevice srcHost = bed.host(EmulatedVfSpec.parse("state=2M,initial=1M,dirty-rate=0,seed=7"));
        FakeHostDevice dstHost = bed.host(EmulatedVfSpec.parse("state=2M,initial=1M,dirty-rate=0,seed=99"));
        KernelVfioDevice src = open(how, srcHost);
        KernelVfioDevice dst = open(how, dstHost);
        EmulatedVfioDevice srcDev = srcHost.emulated();
        assertEquals(MigCapabilities.ALL, src.migrationFlags());
        assertEquals(RUNNING, src.deviceState());
        assertEquals(srcDev.stopCopyLength(), src.stopCopyLength());
        Mapping buf = own(Mapping.anonymous(16L << 20));
        long length = 0;

        VfioDataFd pre = own(src.setDeviceState(PRE_COPY));
        assertNotNull(pre, "RUNNING->PRE_COPY opens the saving session");
        assertEquals(PRE_COPY, src.deviceState());
        PrecopyInfo info = pre.precopyInfo();
        assertEquals(srcDev.spec().initialBytes() > 0, info.initialBytes() > 0);
        long n;
        while ((n = pre.read(buf.address() + length, 100_000)) > 0) {
            length += n;
        }
        assertEquals(VfioDataFd.NO_DATA, n, "PRE_COPY has nothing more now: -1/ENOMSG");
        assertEquals(0, pre.precopyInfo().initialBytes());
        srcDev.advance(50);
        assertTrue(pre.precopyInfo().dirtyBytes() > 0, "the device changed its state during pre-copy");
        assertNull(src.setDeviceState(PRE_COPY_P2P), "the saving group keeps its one data fd");
        assertNull(src.setDeviceState(STOP_COPY));
        failsWith(Errno.EINVAL, pre::precopyInfo);
        while ((n = pre.read(buf.address() + length, 1 << 20)) > 0) {
            length += n;
        }
        assertEquals(0, n, "STOP_COPY ends with read() == 0");
        assertEquals(0, pre.read(buf.address(), 1), "and stays there");
        assertNull(src.setDeviceState(STOP));
        failsWith(Errno.ENODEV, () -> pre.read(buf.address(), 1));
        pre.close();

        assertNull(dst.setDeviceState(STOP));
        VfioDataFd resume = own(dst.setDeviceState(RESUMING));
        assertNotNull(resume);
        long done = 0;
        while (done < length) {
            done += resume.write(buf.address() + done, Math.min(300_001, length - done));
        }
        assertNull(dst.setDeviceState(STOP), "RESUMING->STOP validates and applies the image");
        assertNull(dst.setDeviceState(RUNNING));
        assertEquals(srcDev.stateDigest(), dstHost.emulated().stateDigest(), "the destination has the source's state");
        assertEquals(List.of(RUNNING, PRE_COPY, PRE_COPY_P2P, STOP_COPY, STOP), srcDev.stateHistory().subList(0, 5));
        resume.close();
        assertArgszExact();
    }

    @ParameterizedTest
    @EnumSource(Interface.class)
    void refusedRequestsComeBackWithTheKernelsErrno(Interface how) throws Exception {
        KernelVfioDevice d = open(how, bed.host(EmulatedVfSpec.parse(SMALL + ",stop-copy")));
        int fds = bed.kernel.openFds().size();
        failsWith(Errno.EINVAL, () -> d.setDeviceState(PRE_COPY)); // not supported by a STOP_COPY-only device
        failsWith(Errno.EINVAL, () -> d.setDeviceState(RUNNING_P2P));
        failsWith(Errno.EINVAL, () -> d.setDeviceState(ERROR));
        assertEquals(fds, bed.kernel.openFds().size(), "a refused SET opens no data fd");
        assertEquals(RUNNING, d.deviceState());
        VfioDataFd save = own(d.setDeviceState(STOP_COPY));
        assertNotNull(save);
        assertEquals(fds + 1, bed.kernel.openFds().size(), "the data fd is an fd of its own");
        failsWith(Errno.EINVAL, save::precopyInfo);
        Mapping buf = own(Mapping.anonymous(4096));
        failsWith(Errno.EBADF, () -> save.write(buf.address(), 16)); // the saving file is read-only
        save.close();
        failsWith(Errno.EBADF, () -> save.read(buf.address(), 16));
        assertEquals(fds, bed.kernel.openFds().size());
    }

    @ParameterizedTest
    @EnumSource(Interface.class)
    void errorIsLeftByResetOnly(Interface how) throws Exception {
        FakeHostDevice host = bed.host(EmulatedVfSpec.parse(SMALL + ",fault=error-set:STOP"));
        KernelVfioDevice d = open(how, host);
        VfioException e = failsWith(Errno.EIO, () -> d.setDeviceState(STOP));
        assertTrue(e.getMessage().contains("SET MIG_DEVICE_STATE"), e.getMessage());
        assertEquals(ERROR, d.deviceState());
        failsWith(Errno.EINVAL, () -> d.setDeviceState(RUNNING));
        d.reset();
        assertEquals(RUNNING, d.deviceState());
        assertEquals(1, host.emulated().resets());
    }

    @Test
    void resetWithoutResetSupportIsEinval() throws Exception {
        FakeHostDevice host = bed.kernel.addDevice("0000:05:00.0", 40, false,
                dmaSpace -> new EmulatedVfioDevice("0000:05:00.0", EmulatedVfSpec.parse(SMALL), dmaSpace));
        bed.writeSysfs();
        KernelVfioDevice d = open(Interface.CDEV, host);
        assertFalse(d.canReset());
        VfioException e = failsWith(Errno.EINVAL, d::reset);
        assertTrue(e.getMessage().contains("does not report VFIO_DEVICE_FLAGS_RESET"), e.getMessage());
    }

    @ParameterizedTest
    @EnumSource(Interface.class)
    void aDeviceWithoutMigrationAnswersEnotty(Interface how) throws Exception {
        KernelVfioDevice d = open(how, bed.host(EmulatedVfSpec.parse(SMALL + ",no-migration,no-dma-log")));
        failsWith(Errno.ENOTTY, d::migrationFlags);
        failsWith(Errno.ENOTTY, d::deviceState);
        failsWith(Errno.ENOTTY, () -> d.setDeviceState(STOP));
        failsWith(Errno.ENOTTY, d::stopCopyLength);
        assertFalse(d.dmaLoggingSupported());
        failsWith(Errno.ENOTTY, () -> d.dmaLoggingStart(4096, List.of(new IovaRange(0, RAM))));
        failsWith(Errno.ENOTTY, d::dmaLoggingStop);
    }

    /** A device whose driver DMA-writes on request, so that its writes can be logged and seen. */
    private static final class DmaWriter extends EmulatedVfioDevice {
        DmaWriter(String name, DmaSpace dma) {
            super(name, EmulatedVfSpec.parse(SMALL), dma);
        }

        void put(long iova, long value) {
            synchronized (lock) {
                dmaPutLong(iova, value);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Interface.class)
    void dmaLoggingReportsWhatTheDeviceWroteThroughTheIommu(Interface how) throws Exception {
        FakeHostDevice host = bed.kernel.addDevice("0000:06:00.0", 50, true,
                dmaSpace -> new DmaWriter("0000:06:00.0", dmaSpace));
        bed.writeSysfs();
        DmaWriter writer = (DmaWriter) host.emulated();
        KernelVfioDevice d = open(how, host);
        assertTrue(d.dmaLoggingSupported());
        d.dmaLoggingStart(4096, dma.mappedRanges());
        failsWith(Errno.EBUSY, () -> d.dmaLoggingStart(4096, dma.mappedRanges()));
        writer.put(HIGH + 5 * 4096 + 16, 0x1122334455667788L);
        assertEquals(0x1122334455667788L, NativeMemory.getLong(dma.hostAddress(HIGH + 5 * 4096 + 16, 8)),
                "the write reached guest RAM at its GPA");
        Mapping bitmap = own(Mapping.anonymous(4096));
        d.dmaLoggingReport(HIGH, RAM, 4096, bitmap.address());
        assertEquals(1L << 5, NativeMemory.getLong(bitmap.address()));
        NativeMemory.putLong(bitmap.address(), 0);
        d.dmaLoggingReport(HIGH, RAM, 4096, bitmap.address());
        assertEquals(0, NativeMemory.getLong(bitmap.address()), "a report clears what it reported");
        failsWith(Errno.EINVAL, () -> d.dmaLoggingReport(HIGH, RAM, 2048, bitmap.address()));
        failsWith(Errno.EINVAL, () -> d.dmaLoggingStart(4096, List.of()));
        d.dmaLoggingStop();
        assertArgszExact();
    }

    @ParameterizedTest
    @EnumSource(Interface.class)
    void closingTheDeviceClosesDataFdsAndLeavesNoFd(Interface how) throws Exception {
        FdLeakCheck leaks = FdLeakCheck.start();
        FakeHostDevice host = bed.host(EmulatedVfSpec.parse(SMALL));
        KernelVfioDevice d = bed.factory.open("vf0", how.deviceName(host), dma);
        d.setDeviceState(STOP);
        VfioDataFd save = d.setDeviceState(STOP_COPY);
        assertNotNull(save);
        d.close();
        assertEquals(Map.of(), bed.kernel.openFds(), "the forgotten data fd went with the device");
        failsWith(Errno.EBADF, d::deviceState);
        failsWith(Errno.EBADF, () -> d.setDeviceState(RUNNING));
        assertFalse(d.dmaLoggingSupported());
        save.close();
        assertEquals(RUNNING, host.emulated().currentState(), "the driver's close_device reset the function");
        leaks.assertNoLeaks();
    }

    /**
     * Every ioctl KernelVfioDevice and the factory issued carried exactly its struct's size: the
     * fake kernel would refuse a smaller one, and a larger one is never needed.
     */
    private void assertArgszExact() {
        assertEquals(0, bed.kernel.argszRejections());
        for (FakeVfioKernel.Call c : bed.kernel.calls()) {
            int expected = switch (c.request()) {
                case "IOMMU_IOAS_ALLOC", "VFIO_DEVICE_ATTACH_IOMMUFD_PT" -> 12;
                case "IOMMU_IOAS_MAP" -> 40;
                case "VFIO_DEVICE_BIND_IOMMUFD" -> 16;
                case "VFIO_DEVICE_GET_INFO", "VFIO_MIG_GET_PRECOPY_INFO" -> 24;
                case "VFIO_GROUP_GET_STATUS" -> 8;
                case "VFIO_IOMMU_MAP_DMA" -> 32;
                case "VFIO_DEVICE_FEATURE" -> featureArgsz(c.featureFlags());
                default -> -1;
            };
            assertEquals(expected, c.argsz(), c.toString());
        }
    }

    private static int featureArgsz(int flags) {
        if ((flags & VfioIoctls.VFIO_DEVICE_FEATURE_PROBE) != 0) {
            return 8;
        }
        return switch (flags & VfioIoctls.VFIO_DEVICE_FEATURE_MASK) {
            case VfioIoctls.VFIO_DEVICE_FEATURE_MIGRATION, VfioIoctls.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
                    VfioIoctls.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE -> 16;
            case VfioIoctls.VFIO_DEVICE_FEATURE_DMA_LOGGING_START -> 32;
            case VfioIoctls.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP -> 8;
            case VfioIoctls.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT -> 40;
            default -> -2;
        };
    }

    @Test
    void theFakeKernelRefusesAShortArgsz() throws Exception {
        // the check above has teeth: a struct one byte short is EINVAL and counted
        FakeHostDevice host = bed.host(EmulatedVfSpec.parse(SMALL));
        KernelVfioDevice d = open(Interface.CDEV, host);
        int deviceFd = bed.kernel.openFds().keySet().iterator().next();
        try (var state = new dev.ferry.vfio.uapi.VfioDeviceFeatureMigState()) {
            state.prepareGet();
            NativeMemory.putInt(state.address(), 15);
            NativeCallExceptionAssert.failsWith(Errno.EINVAL,
                    () -> bed.kernel.ioctl(deviceFd, VfioIoctls.VFIO_DEVICE_FEATURE, state.address()));
        }
        assertEquals(1, bed.kernel.argszRejections());
        assertEquals(RUNNING, d.deviceState());
        assertNotEquals(0, bed.kernel.calls().size());
    }
}
