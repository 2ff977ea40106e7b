package dev.ferry.core.cpu.kvm.ioctls;

import dev.ferry.core.cpu.kvm.bindings.KvmConstants;
import dev.ferry.core.cpu.kvm.bindings.KvmCpuid2;
import dev.ferry.core.cpu.kvm.bindings.KvmIoctls;
import dev.ferry.core.cpu.kvm.bindings.KvmMsrList;
import dev.ferry.core.sys.Errno;
import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.Linux;
import dev.ferry.core.sys.NativeCallException;
import dev.ferry.core.sys.Sys;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * The KVM system fd ({@code /dev/kvm}): API version, capabilities, what the host supports
 * (CPUID, MSRs), and VM creation. Owns its fd; a {@link KvmVm} made here keeps working after
 * this object is closed (the kernel holds its own reference).
 *
 * <p>Thread-safe: every method is a stateless ioctl on the system fd.
 */
public final class Kvm implements AutoCloseable {
    /** The device node. */
    public static final String DEVICE = "/dev/kvm";
    private static final int MAX_CPUID_ENTRIES = 4096;

    private final Fd fd;
    private final int apiVersion;
    private final int vcpuMmapSize;

    private Kvm(Fd fd) {
        this.fd = fd;
        this.apiVersion = Sys.ioctl(fd, KvmIoctls.KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION");
        if (apiVersion != KvmConstants.KVM_API_VERSION) {
            throw new KvmUnsupportedException(DEVICE + " speaks KVM API version " + apiVersion + "; Ferry needs "
                    + KvmConstants.KVM_API_VERSION);
        }
        this.vcpuMmapSize = Sys.ioctl(fd, KvmIoctls.KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
    }

    /**
     * Opens {@code /dev/kvm} read-write, close-on-exec, and checks the API version.
     *
     * @throws NativeCallException naming {@code open} or the ioctl that failed
     * @throws KvmUnsupportedException when the API version is not 12
     */
    public static Kvm open() {
        Fd fd = Sys.open(DEVICE, Linux.O_RDWR | Linux.O_CLOEXEC);
        try {
            return new Kvm(fd);
        } catch (RuntimeException e) {
            fd.close();
            throw e;
        }
    }

    /**
     * Why KVM cannot be used here, or empty when it can: {@code /dev/kvm} exists, opens, speaks
     * API 12 and creates a VM. For tests ({@code assumeTrue(Kvm.available().isEmpty(), ...)}) and
     * for choosing the {@code soft} engine with a reason the user can act on.
     */
    public static Optional<String> available() {
        if (!Files.exists(Path.of(DEVICE))) {
            return Optional.of(DEVICE + " does not exist: this host offers no KVM (no VMX/SVM, the kvm module is not "
                    + "loaded, or a container without the device); use the soft engine");
        }
        try (Kvm kvm = open(); KvmVm vm = kvm.createVm()) {
            return Optional.empty();
        } catch (NativeCallException e) {
            if (e.errno() == Errno.EACCES || e.errno() == Errno.EPERM) {
                return Optional.of(DEVICE + " is not accessible to this user (" + Errno.name(e.errno())
                        + "): add the user to the kvm group or run with access to the device");
            }
            return Optional.of(DEVICE + " is present but unusable: " + e.getMessage());
        } catch (KvmUnsupportedException e) {
            return Optional.of(e.getMessage());
        }
    }

    public int apiVersion() {
        return apiVersion;
    }

    /**
     * KVM_CHECK_EXTENSION on the system fd: 0 when {@code cap} (a {@code KvmCaps} number) is
     * absent, otherwise 1 or a capability-specific value (a count, a flag mask).
     */
    public int checkExtension(int cap) {
        return Sys.ioctl(fd, KvmIoctls.KVM_CHECK_EXTENSION, cap, "KVM_CHECK_EXTENSION");
    }

    public boolean hasExtension(int cap) {
        return checkExtension(cap) > 0;
    }

    /** Bytes to map from each vCPU fd: {@code struct kvm_run} and the pages that follow it. */
    public int vcpuMmapSize() {
        return vcpuMmapSize;
    }

    /**
     * KVM_GET_SUPPORTED_CPUID: every CPUID leaf KVM can present to a guest on this host, as a new
     * struct the caller owns (and closes). Retries with a larger buffer while KVM says E2BIG.
     */
    public KvmCpuid2 supportedCpuid() {
        for (int capacity = 128; ; capacity *= 2) {
            KvmCpuid2 cpuid = new KvmCpuid2(capacity);
            cpuid.setNent(capacity);
            int r = Sys.ioctlErrno(fd, KvmIoctls.KVM_GET_SUPPORTED_CPUID, cpuid.address());
            if (r >= 0) {
                return cpuid;
            }
            cpuid.close();
            if (-r != Errno.E2BIG || capacity >= MAX_CPUID_ENTRIES) {
                throw new NativeCallException("KVM_GET_SUPPORTED_CPUID", -r, fd + ", nent=" + capacity);
            }
        }
    }

    /**
     * KVM_GET_MSR_INDEX_LIST: the MSRs a VMM should save and restore (the host's
     * {@code msrs_to_save} plus KVM's emulated ones). Some may not be readable on a given vCPU:
     * see {@link KvmVcpu#probeMsrs}.
     */
    public int[] msrIndexList() {
        int needed;
        try (KvmMsrList probe = new KvmMsrList(0)) {
            int r = Sys.ioctlErrno(fd, KvmIoctls.KVM_GET_MSR_INDEX_LIST, probe.address());
            if (r >= 0) {
                return new int[0];
            }
            if (-r != Errno.E2BIG) {
                throw new NativeCallException("KVM_GET_MSR_INDEX_LIST", -r, fd + ", nmsrs=0");
            }
            needed = probe.nmsrs();
        }
        try (KvmMsrList list = new KvmMsrList(needed)) {
            Sys.ioctl(fd, KvmIoctls.KVM_GET_MSR_INDEX_LIST, list.address(), "KVM_GET_MSR_INDEX_LIST");
            return list.indices();
        }
    }

    /** KVM_CREATE_VM (machine type 0): a new, empty VM the caller owns. */
    public KvmVm createVm() {
        int vmFd = Sys.ioctl(fd, KvmIoctls.KVM_CREATE_VM, 0, "KVM_CREATE_VM");
        return new KvmVm(new Fd(vmFd, "kvm-vm"), vcpuMmapSize);
    }

    @Override
    public void close() {
        fd.close();
    }

    @Override
    public String toString() {
        return "kvm " + fd + ", API " + apiVersion;
    }
}
