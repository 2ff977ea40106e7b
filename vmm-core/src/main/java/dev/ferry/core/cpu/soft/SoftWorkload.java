package dev.ferry.core.cpu.soft;

/**
 * What the soft guest does: {@code vcpus} threads dirty {@code dirtyRateBytesPerSec} bytes per
 * second in total (whole 4 KiB pages) over the working set {@code [workingSetBase, workingSetBase +
 * workingSetBytes)}, with page contents derived from {@code seed}.
 *
 * <p>The working set is split into one contiguous partition of pages per vCPU: vCPU {@code i}
 * owns working-set pages {@code [i*P/N, (i+1)*P/N)} ({@code P} pages, {@code N} vCPUs), so every
 * page has exactly one writer and its stamp only grows. The partition layout, the seed and the
 * working set are the workload's <em>identity</em>: migrated vCPU state only loads into an engine
 * with the same identity. The dirty rate is not part of it; a destination may run slower.
 *
 * <p>Immutable; validated on construction (whether the working set is RAM of a particular guest
 * is checked when an engine is created).
 *
 * @param vcpus                number of vCPU threads, {@code 1..}{@link #MAX_VCPUS}
 * @param dirtyRateBytesPerSec total dirty rate of all vCPUs together, bytes per second, {@code > 0}
 * @param workingSetBytes      size of the working set, a non-zero multiple of 4 KiB, at least one
 *                             page per vCPU
 * @param workingSetBase       guest-physical address of the working set, 4 KiB aligned
 * @param seed                 the seed every page's content is derived from
 */
public record SoftWorkload(int vcpus, long dirtyRateBytesPerSec, long workingSetBytes, long workingSetBase,
                           long seed) {
    /** The page size the workload dirties in. */
    public static final int PAGE_SIZE = 4096;
    /** Upper bound on vCPUs; keeps the partition arithmetic well inside a {@code long}. */
    public static final int MAX_VCPUS = 1024;

    public SoftWorkload {
        if (vcpus < 1 || vcpus > MAX_VCPUS) {
            throw new IllegalArgumentException("soft workload: vcpus must be 1.." + MAX_VCPUS + ", got " + vcpus);
        }
        if (dirtyRateBytesPerSec <= 0) {
            throw new IllegalArgumentException("soft workload: dirty rate must be > 0 bytes/s, got "
                    + dirtyRateBytesPerSec);
        }
        if (workingSetBytes <= 0 || workingSetBytes % PAGE_SIZE != 0) {
            throw new IllegalArgumentException("soft workload: working set must be a non-zero multiple of 4096 bytes,"
                    + " got " + workingSetBytes);
        }
        if (workingSetBase < 0 || workingSetBase % PAGE_SIZE != 0) {
            throw new IllegalArgumentException("soft workload: working set base must be a 4 KiB aligned guest-physical"
                    + " address, got 0x" + Long.toHexString(workingSetBase));
        }
        if (workingSetBase + workingSetBytes < 0) {
            throw new IllegalArgumentException("soft workload: working set [0x" + Long.toHexString(workingSetBase)
                    + ", +" + workingSetBytes + ") wraps around the address space");
        }
        if (workingSetBytes / PAGE_SIZE < vcpus) {
            throw new IllegalArgumentException("soft workload: a working set of " + workingSetBytes / PAGE_SIZE
                    + " pages cannot give each of " + vcpus + " vCPUs a page; enlarge it or use fewer vCPUs");
        }
    }

    /** A working set at guest-physical 0. */
    public static SoftWorkload of(int vcpus, long dirtyRateBytesPerSec, long workingSetBytes, long seed) {
        return new SoftWorkload(vcpus, dirtyRateBytesPerSec, workingSetBytes, 0, seed);
    }

    /** The same workload at another dirty rate (same identity: migrated state still loads). */
    public SoftWorkload withDirtyRate(long bytesPerSec) {
        return new SoftWorkload(vcpus, bytesPerSec, workingSetBytes, workingSetBase, seed);
    }

    /** Pages in the working set ({@code P}). */
    public long pages() {
        return workingSetBytes / PAGE_SIZE;
    }

    /** First working-set page of vCPU {@code vcpu}'s partition. */
    public long partitionStart(int vcpu) {
        checkVcpu(vcpu);
        return vcpu * pages() / vcpus;
    }

    /** Number of pages in vCPU {@code vcpu}'s partition (at least one). */
    public long partitionSize(int vcpu) {
        checkVcpu(vcpu);
        return (vcpu + 1) * pages() / vcpus - vcpu * pages() / vcpus;
    }

    /** The vCPU whose partition holds working-set page {@code page}. */
    public int ownerOf(long page) {
        if (page < 0 || page >= pages()) {
            throw new IndexOutOfBoundsException("page " + page + " outside working set of " + pages() + " pages");
        }
        // the largest i with floor(i*P/N) <= page, i.e. i*P < (page+1)*N
        return (int) (((page + 1) * vcpus - 1) / pages());
    }

    /** Guest-physical address of working-set page {@code page}. */
    public long gpaOf(long page) {
        return workingSetBase + page * PAGE_SIZE;
    }

    /** True when migrated vCPU state of {@code other} may load into an engine running this workload. */
    public boolean sameIdentity(SoftWorkload other) {
        return vcpus == other.vcpus && workingSetBytes == other.workingSetBytes
                && workingSetBase == other.workingSetBase && seed == other.seed;
    }

    private void checkVcpu(int vcpu) {
        if (vcpu < 0 || vcpu >= vcpus) {
            throw new IndexOutOfBoundsException("vCPU " + vcpu + " outside 0.." + (vcpus - 1));
        }
    }
}
