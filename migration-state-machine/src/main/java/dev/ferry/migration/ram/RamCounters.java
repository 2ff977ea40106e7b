package dev.ferry.migration.ram;

/**
 * RAM migration counters as {@code query-migrate}'s "ram" object reports them. Written by the
 * migration thread, read by any thread (QMP); fields are volatile, each read is a consistent value
 * but not a consistent set.
 */
public final class RamCounters {
    volatile long total;
    volatile long normalPages;
    volatile long zeroPages;
    volatile long bytesTransferred;
    volatile long precopyBytes;
    volatile long downtimeBytes;
    volatile long remainingPages;
    volatile long dirtySyncCount;
    volatile long multifdBytes;

    /** Zeroes everything at the start of a migration, as QEMU does. Migration thread. */
    void reset() {
        total = 0;
        normalPages = 0;
        zeroPages = 0;
        bytesTransferred = 0;
        precopyBytes = 0;
        downtimeBytes = 0;
        remainingPages = 0;
        dirtySyncCount = 0;
        multifdBytes = 0;
    }

    /** Bytes the multifd channels carried (part of {@link #transferred()}), as QEMU's multifd-bytes. */
    public long multifdBytes() {
        return multifdBytes;
    }

    public long total() {
        return total;
    }

    public long normal() {
        return normalPages;
    }

    public long normalBytes() {
        return normalPages * RamFlags.PAGE_SIZE;
    }

    /** Zero pages sent as ZERO records (QEMU's "duplicate"). */
    public long duplicate() {
        return zeroPages;
    }

    public long transferred() {
        return bytesTransferred;
    }

    public long precopyBytes() {
        return precopyBytes;
    }

    public long downtimeBytes() {
        return downtimeBytes;
    }

    public long remaining() {
        return remainingPages * RamFlags.PAGE_SIZE;
    }

    public long dirtySyncCount() {
        return dirtySyncCount;
    }


    public long pageSize() {
        return RamFlags.PAGE_SIZE;
    }
}
