package dev.ferry.core.memory;

import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.Mapping;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.Sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Guest RAM from the host's pool of 2 MiB huge pages (hugetlbfs through {@code memfd_create}).
 * The pool is the host administrator's: {@code vm.nr_hugepages} sets its size, and a region
 * reserves its pages when it is mapped, so a short pool fails at VM creation with the numbers,
 * never later with a SIGBUS on the guest's first touch.
 */
public final class HugePages {
    /** The only huge page size offered: 2 MiB (x86-64's PMD size). */
    public static final long SIZE = 2L << 20;

    private HugePages() {
    }

    /**
     * Pages of the pool a new region can still reserve: free ({@code HugePages_Free} of
     * /proc/meminfo) minus those already reserved by mappings not yet touched
     * ({@code HugePages_Rsvd}); -1 when unknown.
     */
    public static long available() {
        long free = meminfo("HugePages_Free:");
        long reserved = meminfo("HugePages_Rsvd:");
        return free < 0 || reserved < 0 ? -1 : free - reserved;
    }

    /** Pages in the pool now ({@code HugePages_Total}), or -1 when unknown. */
    public static long total() {
        return meminfo("HugePages_Total:");
    }

    private static long meminfo(String key) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith(key)) {
                    return Long.parseLong(line.substring(key.length()).trim().split("\\s+")[0]);
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    static void checkGeometry(String name, long gpaBase, long size) {
        if ((size & (SIZE - 1)) != 0 || (gpaBase & (SIZE - 1)) != 0) {
            throw new IllegalArgumentException(name + ": with huge pages, base and size must be multiples of 2 MiB (base 0x"
                    + Long.toHexString(gpaBase) + ", size " + size + ")");
        }
    }

    static Fd memfd(String name) {
        try {
            return Sys.memfdCreate(name, Linux.MFD_CLOEXEC | Linux.MFD_HUGETLB | Linux.MFD_HUGE_2MB);
        } catch (NativeCallException e) {
            throw new GuestMemoryException(name + ": this host offers no 2 MiB hugetlbfs memory (memfd_create: "
                    + Errno.name(e.errno()) + ")");
        }
    }

    /** Maps the whole memfd, reserving its pages in the pool; ENOMEM becomes the pool's numbers. */
    static Mapping map(String name, Fd fd, long size) {
        try {
            return Mapping.shared(fd, 0, size);
        } catch (NativeCallException e) {
            if (e.errno() != Errno.ENOMEM) {
                throw e;
            }
            long need = size / SIZE;
            throw new GuestMemoryException(name + ": " + need + " huge pages of 2 MiB needed, the pool has "
                    + describe(available()) + " available of " + describe(total())
                    + " (raise vm.nr_hugepages, e.g. sysctl vm.nr_hugepages=N, or run without hugetlb)");
        }
    }

    private static String describe(long pages) {
        return pages < 0 ? "an unknown number" : Long.toString(pages);
    }
}
