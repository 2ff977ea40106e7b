package dev.ferry.vmm.config;

import java.util.List;

/**
 * A VM as {@code ferry run --config vm.json} describes it. Example:
 * <pre>
 * {
 *   "name": "vm0",
 *   "memory": { "size": "1G", "prealloc": false },
 *   "vcpus": 2,
 *   "engine": "auto",
 *   "workload": { "dirty-rate": "50M", "working-set": "256M", "seed": 1, "populate": 1.0 },
 *   "devices": []
 * }
 * </pre>
 * Sizes take K/M/G/T suffixes (powers of two). {@code engine} is {@code auto} (KVM when the host
 * has it, else soft), {@code kvm} or {@code soft}. {@code workload} drives the soft engine:
 * {@code populate} is the fraction of the working set filled with data before the guest starts.
 * {@code memory.prealloc}: {@code false} (pages allocated on first touch), {@code true} (all
 * allocated before the VM exists, QEMU's {@code prealloc=on}) or {@code "background"} (allocated by
 * a background thread from the start, so an incoming migration rarely waits for a page fault;
 * Ferry's own). {@code memory.hugetlb}: {@code true} backs guest RAM with 2 MiB pages from the
 * host's huge page pool ({@code vm.nr_hugepages}; QEMU's {@code memory-backend-memfd,hugetlb=on}),
 * the size then a multiple of 2M; a pool too small to hold it fails the VM's creation with the
 * pool's numbers. Default {@code false}.
 */
public record VmConfig(String name, long memoryBytes, boolean prealloc, boolean preallocBackground, boolean hugetlb,
                       int vcpus,
                       Engine engine, Workload workload, List<DeviceConfig> devices) {

    public enum Engine { AUTO, KVM, SOFT }

    public record Workload(long dirtyRateBytesPerSec, long workingSetBytes, long seed, double populate) {
    }

    /** A device entry; the device issues (virtio, vhost-user, VFIO) give kinds their meaning. */
    public record DeviceConfig(String id, String kind, com.fasterxml.jackson.databind.node.ObjectNode options) {
    }
}
