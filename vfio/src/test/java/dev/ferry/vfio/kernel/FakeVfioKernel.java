package dev.ferry.vfio.kernel;

import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.vfio.device.DmaSpace;
import dev.ferry.vfio.device.VfioDataFd;
import dev.ferry.vfio.emulated.EmulatedVfSpec;
import dev.ferry.vfio.emulated.EmulatedVfioDevice;
import dev.ferry.vfio.uapi.VfioIoctls;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;

import static dev.ferry.core.sys.Errno.EBADF;
import static dev.ferry.core.sys.Errno.EBUSY;
import static dev.ferry.core.sys.Errno.EEXIST;
import static dev.ferry.core.sys.Errno.EFAULT;
import static dev.ferry.core.sys.Errno.EINVAL;
import static dev.ferry.core.sys.Errno.ENODEV;
import static dev.ferry.core.sys.Errno.ENOENT;
import static dev.ferry.core.sys.Errno.ENOTTY;
import static dev.ferry.core.sys.Errno.EOPNOTSUPP;
import static dev.ferry.core.sys.Errno.EPERM;

/**
 * A fake of the kernel's VFIO and iommufd layers at the syscall seam: {@link VfioSyscalls} over an
 * fd table, hosting {@link EmulatedVfioDevice}s as the vfio-pci migration drivers behind
 * {@code /dev/vfio/devices/vfioN} and {@code /dev/vfio/<group>}. It reads and writes the ioctl
 * structs in native memory byte by byte and refuses what the kernel refuses, with the kernel's
 * errno, so that {@link KernelVfioDevice} is proven against the uAPI's rules, not against a mock.
 *
 * <h2>Rules enforced, with the source they were read from (torvalds/linux)</h2>
 * <b>Files</b>: fds come from one table; an fd not in it (never opened, or closed) is EBADF for
 * every call. Fd numbers are never reused, so a use after close is always EBADF (the kernel reuses
 * the lowest free number, which turns the same bug into silent misdirection). Paths:
 * {@code /dev/vfio/vfio} (container), {@code /dev/vfio/<n>} (group), {@code /dev/vfio/devices/vfioN}
 * (cdev), {@code /dev/iommu}; anything else ENOENT. Objects outlive their fd while referenced,
 * as the kernel's do: a device fd holds its group file, a group in a container holds the
 * container, a bound cdev holds its iommufd.
 * <ul>
 *   <li>{@code drivers/vfio/container.c}: GET_API_VERSION answers 0; CHECK_EXTENSION answers 1 for
 *       TYPE1v2 (the fake's type1 driver offers only v2) and 0 otherwise; SET_IOMMU with no group in
 *       the container or an IOMMU already set is EINVAL, an unknown model ENODEV; any other ioctl
 *       before SET_IOMMU is EINVAL, after it goes to the type1 driver (unknown: ENOTTY).</li>
 *   <li>{@code drivers/vfio/vfio_iommu_type1.c}: MAP_DMA argsz &lt; 32 or unknown flags is EINVAL;
 *       neither READ nor WRITE is EINVAL; size 0, or iova/vaddr/size not 4 KiB aligned, or a
 *       wrapping range is EINVAL; an overlap with an existing mapping is EEXIST (VADDR remapping is
 *       not modelled: EOPNOTSUPP). UNMAP_DMA argsz &lt; 24 or unknown flags is EINVAL; unaligned or
 *       empty is EINVAL; cutting a mapping is EINVAL (v2); the bytes unmapped are written back.</li>
 *   <li>{@code drivers/vfio/group.c}: a group opens once (EBUSY), and not while one of its devices
 *       is bound through its cdev (EBUSY); GET_STATUS argsz &lt; 8 is EINVAL and reports VIABLE
 *       (and CONTAINER_SET once in a container); SET_CONTAINER reads an {@code int} fd: unknown fd
 *       EBADF, group already in a container EINVAL, a non-viable group EPERM (iommu.c's DMA owner
 *       claim), a file that is no container EBADFD (iommufd as a container is not modelled);
 *       UNSET_CONTAINER without one EINVAL, with device fds open EBUSY; GET_DEVICE_FD reads a
 *       NUL-terminated name: unknown ENODEV, no container EINVAL, a container without IOMMU
 *       EINVAL (vfio_group_use_container); unknown ioctls ENOTTY.</li>
 *   <li>{@code drivers/vfio/device_cdev.c} and {@code vfio_main.c}: on a cdev fd every call but
 *       BIND_IOMMUFD — ioctl, read, write — is EINVAL until bound. BIND: argsz &lt; 16, flags, or a
 *       negative fd EINVAL; bound already EINVAL; the group open elsewhere EBUSY; the iommufd fd
 *       unknown EBADF, not an iommufd EBADFD; the device open by another file EINVAL (cdev opens
 *       are exclusive); out_devid is an object id of the iommufd. ATTACH: argsz &lt; 12 or unknown
 *       flags EINVAL, PASID EOPNOTSUPP, an unknown id ENOENT, an id that is no IOAS EINVAL; answers
 *       the id of the hardware page table made for the IOAS. DETACH: argsz &lt; 8 EINVAL. On a
 *       group-path device fd BIND is EINVAL and ATTACH/DETACH go to vfio-pci (ENOTTY).</li>
 *   <li>{@code drivers/iommu/iommufd/main.c}: a command number past the table, or not matching it,
 *       is ENOTTY; {@code size} below the command's last mandatory field is EINVAL; above the
 *       kernel's struct with non-zero excess bytes is E2BIG. {@code ioas.c}: IOAS_ALLOC flags
 *       EOPNOTSUPP; IOAS_MAP unknown flags or {@code __reserved} EOPNOTSUPP, iova/length at
 *       ULONG_MAX EOVERFLOW, neither READABLE nor WRITEABLE EINVAL, an unknown IOAS ENOENT, without
 *       FIXED_IOVA the kernel picks the IOVA; {@code io_pagetable.c}: length 0 EINVAL, iova not
 *       aligned to the attached domain's page (4 KiB; 1 while no device is attached) EINVAL,
 *       overflow EOVERFLOW, an overlap EEXIST; IOAS_UNMAP cutting a mapping ENOENT, length 0
 *       EINVAL, (0, U64_MAX) everything; DESTROY of an unknown id ENOENT, of an IOAS in use or a
 *       device EBUSY. Other iommufd commands are not modelled and answer ENOTTY.</li>
 *   <li>{@code vfio_main.c} VFIO_DEVICE_FEATURE: argsz &lt; 8 or unknown flag bits EINVAL; GET with
 *       SET without PROBE EINVAL; a device without migration support (its spec says
 *       no-migration) answers ENOTTY to MIGRATION, MIG_DEVICE_STATE and MIG_DATA_SIZE, one without
 *       DMA tracking ENOTTY to DMA_LOGGING_*, before anything else is checked; then
 *       {@code include/linux/vfio.h} vfio_check_feature: an op the feature lacks EINVAL, PROBE
 *       succeeds with nothing done, neither GET nor SET EINVAL, a payload shorter than the
 *       feature's struct EINVAL. MIG_DEVICE_STATE SET answers a new data fd (its own fd number)
 *       or -1, and on failure echoes the requested state with -1; a state number past the enum is
 *       EINVAL. DMA_LOGGING_START: no ranges EINVAL, more than 256 E2BIG, a range not aligned to
 *       page_size EINVAL, wrapping EOVERFLOW, overlapping EINVAL (and, the fake's own choice, an
 *       empty range EINVAL: the kernel hands it to the driver). REPORT: page_size below 4 KiB or
 *       not a power of two EINVAL, wrapping EOVERFLOW. Other features: vfio-pci's own (VF token,
 *       low power) are not modelled and answer ENOTTY like unknown ones.</li>
 *   <li>{@code drivers/vfio/pci/vfio_pci_core.c}: GET_INFO argsz &lt; 16 EINVAL, answers PCI (and
 *       RESET when the device can), 9 regions, 5 IRQs, writes min(argsz, 24) bytes; RESET without
 *       reset support EINVAL; REGION_INFO, IRQ_INFO and SET_IRQS are not modelled (ENOTTY), nor
 *       is any other unknown device ioctl.</li>
 *   <li>Data fds (mlx5 {@code main.c}): the saving file is read-only and the resuming file
 *       write-only, as anon_inode_getfile gives them (the wrong direction is EBADF from
 *       {@code fs/read_write.c}); reads answer the driver's bytes, 0, or -1/ENOMSG; ioctls other
 *       than MIG_GET_PRECOPY_INFO are ENOTTY, PRECOPY_INFO argsz &lt; 24 EINVAL. Closing the last
 *       device fd is the driver's close_device: data sessions end (mlx5vf_cmd_close_migratable)
 *       and the function is reset to RUNNING (vfio_pci_core_close_device); the fake also stops
 *       DMA logging there, on the reasoning that a reset function tracks nothing.</li>
 * </ul>
 * Everything a device does is its emulated driver's business: the arc table, data sessions,
 * ENODEV after a session, PRECOPY_INFO outside PRE_COPY, DMA logging contents.
 *
 * <h2>For tests</h2>
 * {@link #calls()} logs every ioctl with its {@code argsz}, {@link #argszRejections()} counts
 * calls refused for a short {@code argsz}, {@link #openFds()} is the fd table,
 * {@link #failNext} makes one named step fail with a given errno (a kernel can: EBUSY, ENOMEM,
 * EACCES), {@link #writeSysfs} lays out {@code bus/pci/devices/<addr>/iommu_group}.
 * Thread-safe: every call holds the kernel's lock; a device's DMA only takes its domain's lock.
 */
public final class FakeVfioKernel implements VfioSyscalls, AutoCloseable {
    static final int EOVERFLOW = 75;
    static final int EBADFD = 77;
    static final int E2BIG = Errno.E2BIG;
    static final long PAGE = 4096;
    static final long ULONG_MAX = -1L;
    static final int NUM_REGIONS = 9; // VFIO_PCI_NUM_REGIONS
    static final int NUM_IRQS = 5; // VFIO_PCI_NUM_IRQS

    /** One ioctl as the fake saw it: the fd's file, the request, argsz (-1: not a struct), feature flags, errno (0: ok). */
    public record Call(int fd, String file, String request, int argsz, int featureFlags, int errno) {
    }

    private final List<FakeHostDevice> devices = new ArrayList<>();
    private final Map<Integer, FakeGroup> groups = new TreeMap<>();
    private final TreeMap<Integer, FakeFile> fds = new TreeMap<>();
    private final List<Call> calls = new ArrayList<>();
    private final List<Integer> closeLog = new ArrayList<>();
    private final Map<String, Integer> failNext = new HashMap<>();
    private int nextFd = 3;
    private int argszRejections;
    private boolean closed;

    // ------------------------------------------------------------------------------------------
    // Host configuration

    /** Hosts an emulated device built from {@code spec} at {@code pciAddress} in IOMMU group {@code group}. */
    public FakeHostDevice addDevice(String pciAddress, int group, EmulatedVfSpec spec) {
        return addDevice(pciAddress, group, true, dma -> new EmulatedVfioDevice(pciAddress, spec, dma));
    }

    /**
     * Hosts the device {@code driver} makes from the device's DMA view (an emulated device or a
     * subclass such as the NIC); {@code resetWorks} is vfio-pci's reset_works.
     */
    public synchronized FakeHostDevice addDevice(String pciAddress, int group, boolean resetWorks,
                                                 Function<DmaSpace, EmulatedVfioDevice> driver) {
        for (FakeHostDevice d : devices) {
            if (d.pciAddress().equals(pciAddress)) {
                throw new IllegalArgumentException(pciAddress + " is already hosted");
            }
        }
        FakeHostDevice d = new FakeHostDevice(pciAddress, group, devices.size(), resetWorks);
        d.driver(driver.apply(d.dma()));
        devices.add(d);
        groups.computeIfAbsent(group, FakeGroup::new).devices.add(d);
        return d;
    }

    /** A group is viable unless some device in it is driven by a host driver; this says it is. */
    public synchronized void setViable(int group, boolean viable) {
        groups.get(group).viable = viable;
    }

    /**
     * Lays out {@code <root>/bus/pci/devices/<addr>/iommu_group} as links to
     * {@code <root>/kernel/iommu_groups/<group>}, as sysfs does, for every hosted device not yet
     * there.
     */
    public synchronized void writeSysfs(Path root) throws IOException {
        for (FakeHostDevice d : devices) {
            Path groupDir = Files.createDirectories(root.resolve("kernel/iommu_groups/" + d.iommuGroup()));
            Path dev = Files.createDirectories(root.resolve("bus/pci/devices/" + d.pciAddress()));
            Path link = dev.resolve("iommu_group");
            if (!Files.isSymbolicLink(link)) {
                Files.createSymbolicLink(link, dev.relativize(groupDir));
            }
        }
    }

    public synchronized List<FakeHostDevice> devices() {
        return List.copyOf(devices);
    }

    // ------------------------------------------------------------------------------------------
    // Observation and fault injection

    /** Open fds and what each is. */
    public synchronized Map<Integer, String> openFds() {
        Map<Integer, String> out = new LinkedHashMap<>();
        fds.forEach((fd, f) -> out.put(fd, f.what));
        return out;
    }

    public synchronized List<Call> calls() {
        return List.copyOf(calls);
    }

    /** Every fd closed successfully, in the order close(2) was called. */
    public synchronized List<Integer> closeLog() {
        return List.copyOf(closeLog);
    }

    /** How many calls were refused (EINVAL) for an argsz below the kernel's minimum. */
    public synchronized int argszRejections() {
        return argszRejections;
    }

    /**
     * Makes the next call of {@code step} fail with {@code errno} before the fake looks at it:
     * an ioctl name ({@code "VFIO_DEVICE_ATTACH_IOMMUFD_PT"}) or {@code "open <path>"}.
     */
    public synchronized void failNext(String step, int errno) {
        failNext.put(step, errno);
    }

    /** Closes every hosted emulated device (the host shutting down); open fds are the caller's leak. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (FakeHostDevice d : devices) {
            d.emulated().close();
        }
    }

    // ------------------------------------------------------------------------------------------
    // The syscalls

    @Override
    public synchronized int open(String path, int flags) {
        injected("open " + path);
        FakeFile f;
        if (path.equals(KernelVfioDeviceFactory.VFIO_CONTAINER)) {
            f = new FakeContainer(this);
        } else if (path.equals(KernelVfioDeviceFactory.IOMMUFD)) {
            f = new FakeIommufd(this);
        } else if (path.startsWith(KernelVfioDeviceFactory.VFIO_CDEV_DIR)) {
            FakeHostDevice d = devices.stream().filter(x -> x.cdevPath().equals(path)).findFirst()
                    .orElseThrow(() -> fail("open", ENOENT, path));
            f = new FakeDeviceFile(this, d, null);
        } else if (path.startsWith(KernelVfioDeviceFactory.VFIO_GROUP_DIR)
                && path.substring(KernelVfioDeviceFactory.VFIO_GROUP_DIR.length()).matches("[0-9]+")) {
            FakeGroup g = groups.get(Integer.parseInt(path.substring(KernelVfioDeviceFactory.VFIO_GROUP_DIR.length())));
            if (g == null) {
                throw fail("open", ENOENT, path);
            }
            if (g.opened != null || g.cdevBound > 0) {
                throw fail("open", EBUSY, path + (g.opened != null ? " is open already" : " has a device bound by cdev"));
            }
            g.opened = new FakeGroupFile(this, g);
            f = g.opened;
        } else {
            throw fail("open", ENOENT, path);
        }
        return install(f);
    }

    @Override
    public synchronized void close(int fd) {
        FakeFile f = fds.remove(fd);
        if (f == null) {
            throw fail("close", EBADF, "fd " + fd);
        }
        closeLog.add(fd);
        unref(f);
    }

    @Override
    public synchronized int ioctl(int fd, long request, long arg) {
        String name = KernelIoctlNames.of(request);
        FakeFile f = fds.get(fd);
        int argsz = -1;
        int featureFlags = 0;
        if (f != null && arg != 0 && f.takesStruct(request)) {
            argsz = NativeMemory.getInt(arg);
            if (request == VfioIoctls.VFIO_DEVICE_FEATURE) {
                featureFlags = NativeMemory.getInt(arg + 4);
            }
        }
        try {
            if (f == null) {
                throw fail(name, EBADF, "fd " + fd + " is not open");
            }
            injected(name);
            int r = f.ioctl(request, arg);
            calls.add(new Call(fd, f.what, name, argsz, featureFlags, 0));
            return r;
        } catch (NativeCallException e) {
            calls.add(new Call(fd, f == null ? "?" : f.what, name, argsz, featureFlags, e.errno()));
            throw e;
        }
    }

    @Override
    public synchronized long read(int fd, long address, long length) {
        FakeFile f = fds.get(fd);
        if (f == null) {
            throw fail("read", EBADF, "fd " + fd);
        }
        return f.read(address, length);
    }

    @Override
    public synchronized long write(int fd, long address, long length) {
        FakeFile f = fds.get(fd);
        if (f == null) {
            throw fail("write", EBADF, "fd " + fd);
        }
        return f.write(address, length);
    }

    // ------------------------------------------------------------------------------------------
    // Plumbing

    static NativeCallException fail(String call, int errno, String detail) {
        return new NativeCallException(call, errno, detail);
    }

    private void injected(String step) {
        Integer errno = failNext.remove(step);
        if (errno != null) {
            throw fail(step, errno, "injected by the test");
        }
    }

    int install(FakeFile f) {
        int fd = nextFd++;
        fds.put(fd, f);
        return fd;
    }

    void unref(FakeFile f) {
        if (--f.refs == 0) {
            f.release();
        }
    }

    /** EINVAL for an argsz below {@code minsz}, counted. */
    NativeCallException shortArgsz(String call, long argsz, long minsz) {
        argszRejections++;
        return fail(call, EINVAL, "argsz " + argsz + " < " + minsz);
    }

    static void need(long address, String call) {
        if (address == 0) {
            throw fail(call, EFAULT, "NULL argument");
        }
    }

    static long u64(long a, int off) {
        return NativeMemory.getLong(a + off);
    }

    static int u32(long a, int off) {
        return NativeMemory.getInt(a + off);
    }

    /** Whether {@code [start, start + length)} wraps past the top of the 64-bit space. */
    static boolean wraps(long start, long length) {
        return length != 0 && Long.compareUnsigned(start + length - 1, start) < 0;
    }

    /** The file {@code fd} points to, or null. */
    FakeFile file(int fd) {
        return fds.get(fd);
    }

    FakeGroup group(int number) {
        return groups.get(number);
    }

    /**
     * Takes {@code g} out of its container: its devices lose their IOMMU domain, and the last
     * group out deprivileges the container, whose type1 IOMMU goes with its mappings.
     */
    void detachContainer(FakeGroup g) {
        FakeContainer c = g.container;
        c.groups.remove(g);
        g.container = null;
        g.containerUsers = 0;
        g.devices.forEach(d -> d.domain(null));
        if (c.groups.isEmpty() && c.iommuSet) {
            c.iommuSet = false;
            c.table.clear();
        }
        unref(c);
    }

    // ------------------------------------------------------------------------------------------
    // Data fds

    /** Installs a data fd for a session the driver opened. */
    int openDataFd(FakeHostDevice device, VfioDataFd session, boolean saving) {
        return install(new FakeDataFile(this, device, session, saving));
    }
}
