package dev.ferry.migration.transport;

import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.NetLinux;

/**
 * A reusable native {@code iovec} array and the {@code msghdr} that points at it, for one gathered
 * write or scattered read of native memory (a packet's header and the guest pages it carries)
 * through a {@link DetachedSocket}. Adjacent ranges merge into one entry. Built and consumed by
 * one thread; allocates nothing after construction.
 */
public final class IoVector implements AutoCloseable {
    /** The kernel's UIO_MAXIOV: the most entries one sendmsg or recvmsg takes. */
    static final int IOV_MAX = 1024;
    private final int capacity;
    private final long msghdr;
    private final long iovs;
    private int first;
    private int count;
    private long remaining;
    private boolean closed;

    /** Room for {@code capacity} separate ranges. */
    public IoVector(int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity " + capacity);
        }
        this.capacity = capacity;
        this.msghdr = NativeMemory.allocate(NetLinux.MSGHDR_SIZE + (long) capacity * NetLinux.IOVEC_SIZE);
        this.iovs = msghdr + NetLinux.MSGHDR_SIZE;
        NativeMemory.fill(msghdr, NetLinux.MSGHDR_SIZE, (byte) 0);
    }

    /** Forgets every range. */
    public void clear() {
        first = 0;
        count = 0;
        remaining = 0;
    }

    /** Appends {@code [address, address + length)}; merges it with the last range when they touch. */
    public void add(long address, long length) {
        if (length <= 0) {
            if (length < 0) {
                throw new IllegalArgumentException("negative length " + length);
            }
            return;
        }
        if (count > first) {
            long last = iovs + (long) (count - 1) * NetLinux.IOVEC_SIZE;
            long lastLen = NativeMemory.getLong(last + 8);
            if (NativeMemory.getLong(last) + lastLen == address) {
                NativeMemory.putLong(last + 8, lastLen + length);
                remaining += length;
                return;
            }
        }
        if (count == capacity) {
            throw new IllegalStateException("iovec array full (" + capacity + " ranges)");
        }
        long e = iovs + (long) count * NetLinux.IOVEC_SIZE;
        NativeMemory.putLong(e, address);
        NativeMemory.putLong(e + 8, length);
        count++;
        remaining += length;
    }

    /** Bytes not yet transferred. */
    public long remaining() {
        return remaining;
    }

    /** Entries not yet (fully) transferred; for tests. */
    int entries() {
        return count - first;
    }

    /** The msghdr for the next call: the untransferred entries, at most {@link #IOV_MAX}. */
    long msghdr() {
        NativeMemory.putLong(msghdr + NetLinux.MSG_IOV_OFFSET, iovs + (long) first * NetLinux.IOVEC_SIZE);
        NativeMemory.putLong(msghdr + NetLinux.MSG_IOVLEN_OFFSET, Math.min(count - first, IOV_MAX));
        return msghdr;
    }

    /** Drops the first {@code n} bytes (a call transferred them). */
    void advance(long n) {
        if (n < 0 || n > remaining) {
            throw new IllegalArgumentException("advance " + n + " of " + remaining);
        }
        remaining -= n;
        while (n > 0) {
            long e = iovs + (long) first * NetLinux.IOVEC_SIZE;
            long len = NativeMemory.getLong(e + 8);
            if (n < len) {
                NativeMemory.putLong(e, NativeMemory.getLong(e) + n);
                NativeMemory.putLong(e + 8, len - n);
                return;
            }
            n -= len;
            first++;
        }
    }

    /** Copies {@code n} bytes from native {@code src} into the next ranges and drops them. */
    void fillFrom(long src, long n) {
        if (n > remaining) {
            throw new IllegalArgumentException("fill " + n + " of " + remaining);
        }
        long done = 0;
        while (done < n) {
            long e = iovs + (long) first * NetLinux.IOVEC_SIZE;
            long k = Math.min(n - done, NativeMemory.getLong(e + 8));
            NativeMemory.copy(src + done, NativeMemory.getLong(e), k);
            advance(k);
            done += k;
        }
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            NativeMemory.free(msghdr);
        }
    }
}
