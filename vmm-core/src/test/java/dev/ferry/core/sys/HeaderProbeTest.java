package dev.ferry.core.sys;

import dev.ferry.core.testing.CProbe;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.LongSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Checks every constant of {@link Linux}, {@link Errno} and {@link Ioctl} and the ioctl encoding
 * against the host's C headers (probes in {@code src/test/resources/probes/}). A Java constant
 * without an entry in the mappings below fails the test: a new constant needs its C
 * counterpart in {@code linux_constants.c}.
 */
class HeaderProbeTest {
    /** Linux field → key printed by linux_constants.c. */
    private static final Map<String, String> LINUX = new LinkedHashMap<>();
    /** Errno field → key printed by linux_constants.c. */
    private static final Map<String, String> ERRNO = new LinkedHashMap<>();
    /** Ioctl field → key printed by ioctl_encoding.c. */
    private static final Map<String, String> IOCTL = Map.of("NONE", "_IOC_NONE", "WRITE", "_IOC_WRITE",
            "READ", "_IOC_READ");

    /** struct pollfd: int fd @0; short events @4; short revents @6 — how event loops fill the array. */
    private static final Map<String, Long> POLLFD_LAYOUT = Map.of(
            "offsetof(struct_pollfd,fd)", 0L, "sizeof(pollfd.fd)", 4L,
            "offsetof(struct_pollfd,events)", 4L, "sizeof(pollfd.events)", 2L,
            "offsetof(struct_pollfd,revents)", 6L, "sizeof(pollfd.revents)", 2L);

    /**
     * The field widths Epoll and TimerFd read and write at Linux's offsets: epoll_event's u32 events
     * and u64 data (packed: 4 + 8 = 12), and timespec's two 8-byte fields (16 bytes, two per
     * itimerspec).
     */
    private static final Map<String, Long> EPOLL_TIMER_LAYOUT = Map.of(
            "sizeof(epoll_event.events)", 4L, "sizeof(epoll_event.data)", 8L,
            "sizeof(struct_timespec)", 16L, "sizeof(timespec.tv_sec)", 8L, "sizeof(timespec.tv_nsec)", 8L);

    static {
        for (String same : List.of("MFD_CLOEXEC", "MFD_ALLOW_SEALING", "MFD_HUGETLB", "MFD_HUGE_2MB", "PROT_NONE", "PROT_READ", "PROT_WRITE",
                "MAP_SHARED", "MAP_PRIVATE", "MAP_ANONYMOUS", "MAP_NORESERVE", "MAP_POPULATE", "MAP_HUGETLB", "MAP_FAILED", "MADV_DONTNEED",
                "MADV_REMOVE", "MADV_POPULATE_WRITE", "SEEK_DATA", "SEEK_HOLE", "EFD_CLOEXEC", "EFD_NONBLOCK", "EFD_SEMAPHORE", "POLLIN", "POLLOUT", "POLLERR",
                "POLLHUP", "POLLNVAL", "O_RDONLY", "O_WRONLY", "O_RDWR", "O_NONBLOCK", "O_CLOEXEC", "F_GETFD",
                "F_GETFL", "F_SETFL", "PAGE_SIZE", "EPOLL_CLOEXEC", "EPOLL_CTL_ADD", "EPOLL_CTL_DEL", "EPOLL_CTL_MOD",
                "EPOLLIN", "EPOLLOUT", "EPOLLERR", "EPOLLHUP", "EPOLLRDHUP", "EPOLLONESHOT", "EPOLLET",
                "CLOCK_MONOTONIC", "TFD_NONBLOCK", "TFD_CLOEXEC")) {
            LINUX.put(same, same);
        }
        LINUX.put("POLLFD_SIZE", "sizeof(struct_pollfd)");
        LINUX.put("EPOLL_EVENT_SIZE", "sizeof(struct_epoll_event)");
        LINUX.put("EPOLL_EVENT_EVENTS_OFFSET", "offsetof(struct_epoll_event,events)");
        LINUX.put("EPOLL_EVENT_DATA_OFFSET", "offsetof(struct_epoll_event,data)");
        LINUX.put("ITIMERSPEC_SIZE", "sizeof(struct_itimerspec)");
        LINUX.put("ITIMERSPEC_INTERVAL_OFFSET", "offsetof(struct_itimerspec,it_interval)");
        LINUX.put("ITIMERSPEC_VALUE_OFFSET", "offsetof(struct_itimerspec,it_value)");
        LINUX.put("TIMESPEC_SEC_OFFSET", "offsetof(struct_timespec,tv_sec)");
        LINUX.put("TIMESPEC_NSEC_OFFSET", "offsetof(struct_timespec,tv_nsec)");
        for (String same : List.of("EPERM", "ENOENT", "EINTR", "EIO", "ENXIO", "ESRCH", "E2BIG", "EBADF", "EAGAIN", "ENOMEM", "EACCES",
                "EFAULT", "EBUSY", "EEXIST", "ENODEV", "EINVAL", "ENOTTY", "ENOSPC", "ERANGE", "ENOSYS", "ENOMSG",
                "EOPNOTSUPP")) {
            ERRNO.put(same, same);
        }
    }

    private static Map<String, Long> constants;
    private static Map<String, Long> ioctls;

    @BeforeAll
    static void probe() {
        assumeTrue(CProbe.gccAvailable(), CProbe.NO_GCC);
        assumeTrue(CProbe.headerAvailable("linux/memfd.h"),
                "linux/memfd.h not found: the kernel's uAPI headers are needed (apt-get install linux-libc-dev)");
        constants = CProbe.runResource("/probes/linux_constants.c");
        ioctls = CProbe.runResource("/probes/ioctl_encoding.c");
    }

    @Test
    void linuxConstantsMatchTheHeaders() {
        assertNoProblems(CProbe.compareConstants(Linux.class, LINUX, constants));
    }

    @Test
    void errnoValuesMatchTheHeaders() {
        assertNoProblems(CProbe.compareConstants(Errno.class, ERRNO, constants));
    }

    @Test
    void errnoNameKnowsEveryConstant() throws IllegalAccessException {
        for (var f : Errno.class.getDeclaredFields()) {
            if (java.lang.reflect.Modifier.isPublic(f.getModifiers()) && f.getType() == int.class) {
                assertEquals(f.getName(), Errno.name(f.getInt(null)), "Errno.name(" + f.getName() + ")");
            }
        }
    }

    @Test
    void pollfdLayoutMatchesTheHeaders() {
        List<String> problems = new ArrayList<>();
        POLLFD_LAYOUT.forEach((key, expected) -> {
            Long c = constants.get(key);
            if (!expected.equals(c)) {
                problems.add(key + ": expected " + expected + ", headers say " + c);
            }
        });
        assertNoProblems(problems);
        assertEquals(8L, constants.get("sizeof(struct_pollfd)"));
    }

    @Test
    void epollEventAndItimerspecFieldWidthsMatchTheHeaders() {
        List<String> problems = new ArrayList<>();
        EPOLL_TIMER_LAYOUT.forEach((key, expected) -> {
            Long c = constants.get(key);
            if (!expected.equals(c)) {
                problems.add(key + ": expected " + expected + ", headers say " + c);
            }
        });
        assertNoProblems(problems);
        // the packed layout the Java side walks: events, then data right after it, no padding
        assertEquals(Linux.EPOLL_EVENT_DATA_OFFSET + 8L, (long) Linux.EPOLL_EVENT_SIZE);
        assertEquals(Linux.ITIMERSPEC_VALUE_OFFSET + 16L, (long) Linux.ITIMERSPEC_SIZE);
    }

    @Test
    void everyProbedConstantIsChecked() {
        Set<String> checked = new HashSet<>(LINUX.values());
        checked.addAll(ERRNO.values());
        checked.addAll(POLLFD_LAYOUT.keySet());
        checked.addAll(EPOLL_TIMER_LAYOUT.keySet());
        Set<String> unchecked = new TreeSet<>(constants.keySet());
        unchecked.removeAll(checked);
        assertTrue(unchecked.isEmpty(), "linux_constants.c prints values no test compares: " + unchecked);
    }

    @Test
    void ioctlDirectionsMatchTheHeaders() {
        assertNoProblems(CProbe.compareConstants(Ioctl.class, IOCTL, ioctls));
        assertEquals(8L, ioctls.get("_IOC_NRBITS"));
        assertEquals(8L, ioctls.get("_IOC_TYPEBITS"));
        assertEquals(14L, ioctls.get("_IOC_SIZEBITS"));
        assertEquals(2L, ioctls.get("_IOC_DIRBITS"));
    }

    @Test
    void ioctlEncodingMatchesTheKernelMacros() {
        Map<String, LongSupplier> java = new LinkedHashMap<>();
        java.put("KVM_GET_API_VERSION", () -> Ioctl.io(0xAE, 0x00));
        java.put("KVM_CREATE_VM", () -> Ioctl.io(0xAE, 0x01));
        java.put("KVM_RUN", () -> Ioctl.io(0xAE, 0x80));
        java.put("KVM_GET_REGS", () -> Ioctl.ior(0xAE, 0x81, 144));
        java.put("KVM_SET_USER_MEMORY_REGION", () -> Ioctl.iow(0xAE, 0x46, 32));
        java.put("KVM_GET_SUPPORTED_CPUID", () -> Ioctl.iowr(0xAE, 0x05, 8));
        java.put("VFIO_GET_API_VERSION", () -> Ioctl.io(';', 100));
        java.put("_IO(0x00,0x00)", () -> Ioctl.io(0x00, 0x00));
        java.put("_IO(0xff,0xff)", () -> Ioctl.io(0xff, 0xff));
        java.put("_IOR(0xAE,0x00,int)", () -> Ioctl.ior(0xAE, 0x00, 4));
        java.put("_IOW(0xAE,0x01,long)", () -> Ioctl.iow(0xAE, 0x01, 8));
        java.put("_IOWR(0xAE,0x02,short)", () -> Ioctl.iowr(0xAE, 0x02, 2));
        java.put("_IOR(0xff,0xff,char[1])", () -> Ioctl.ior(0xff, 0xff, 1));
        java.put("_IOW(0x3b,0x7f,char[256])", () -> Ioctl.iow(0x3b, 0x7f, 256));
        java.put("_IOWR(0x12,0x34,char[4096])", () -> Ioctl.iowr(0x12, 0x34, 4096));
        java.put("_IOR(0x80,0x81,char[16383])", () -> Ioctl.ior(0x80, 0x81, 16383));
        java.put("_IOWR(0xff,0xff,char[16383])", () -> Ioctl.iowr(0xff, 0xff, 16383));

        List<String> problems = new ArrayList<>();
        java.forEach((key, value) -> {
            Long c = ioctls.get(key);
            long j = value.getAsLong();
            if (c == null) {
                problems.add("ioctl_encoding.c did not print " + key);
            } else if (c != j) {
                problems.add(key + ": Ioctl gives 0x" + Long.toHexString(j) + ", the kernel macro 0x"
                        + Long.toHexString(c));
            }
        });
        Set<String> unchecked = new TreeSet<>(ioctls.keySet());
        unchecked.removeAll(java.keySet());
        unchecked.removeAll(IOCTL.values());
        unchecked.removeAll(List.of("_IOC_NRBITS", "_IOC_TYPEBITS", "_IOC_SIZEBITS", "_IOC_DIRBITS"));
        if (!unchecked.isEmpty()) {
            problems.add("ioctl_encoding.c prints values no test compares: " + unchecked);
        }
        assertNoProblems(problems);
    }

    @Test
    void ioctlSizeLimitIsTheKernelsSizeField() {
        int max = (1 << ioctls.get("_IOC_SIZEBITS").intValue()) - 1;
        Ioctl.iowr(0xAE, 0, max);
        assertThrows(IllegalArgumentException.class, () -> Ioctl.iowr(0xAE, 0, max + 1));
    }

    /** Stands in for a constants class that drifted from the headers. */
    @SuppressWarnings("unused")
    private static final class Drifted {
        public static final int MAP_SHARED = 0x01;
        public static final int PROT_WRITE = 0x4;
        public static final short POLLNVAL = (short) 0x8020;
        public static final int ADDED_WITHOUT_C_COUNTERPART = 7;
        public static final String NOT_A_NUMBER = "x";
        static final int PACKAGE_PRIVATE_IS_NOT_A_CONSTANT_WE_CHECK = 1;
    }

    @Test
    void driftUnmappedFieldsAndStaleMappingsAreAllReported() {
        Map<String, String> mapping = Map.of("MAP_SHARED", "MAP_SHARED", "PROT_WRITE", "PROT_WRITE",
                "POLLNVAL", "POLLNVAL", "NOT_A_NUMBER", "MAP_SHARED", "REMOVED_FROM_JAVA", "PROT_READ");
        Map<String, Long> probed = Map.of("MAP_SHARED", 1L, "PROT_WRITE", 2L, "POLLNVAL", 0x8020L, "PROT_READ", 1L);
        List<String> problems = CProbe.compareConstants(Drifted.class, mapping, probed);
        assertEquals(4, problems.size(), problems::toString);
        assertTrue(problems.stream().anyMatch(p -> p.startsWith("Drifted.PROT_WRITE = 4 (0x4)") && p.contains("= 2")),
                problems::toString);
        assertTrue(problems.stream().anyMatch(p -> p.startsWith("Drifted.ADDED_WITHOUT_C_COUNTERPART has no C counterpart")),
                problems::toString);
        assertTrue(problems.stream().anyMatch(p -> p.contains("Drifted.REMOVED_FROM_JAVA, which does not exist")),
                problems::toString);
        assertTrue(problems.stream().anyMatch(p -> p.startsWith("Drifted.NOT_A_NUMBER is a String")),
                problems::toString);
    }

    private static void assertNoProblems(List<String> problems) {
        assertTrue(problems.isEmpty(), () -> problems.size() + " mismatch(es) with the host's headers:\n  "
                + String.join("\n  ", problems));
    }
}
