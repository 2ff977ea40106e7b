package dev.ferry.core.sys;

import java.util.concurrent.atomic.AtomicLong;

/** An owned memory mapping: unmapped exactly once by {@link #close()}. */
public final class Mapping implements AutoCloseable {
    private final AtomicLong address;
    private final long length;

    private Mapping(long address, long length) {
        this.address = new AtomicLong(address);
        this.length = length;
    }

    /** Maps {@code length} bytes of {@code fd} from {@code offset}, shared, read-write. */
    public static Mapping shared(Fd fd, long offset, long length) {
        return new Mapping(Sys.mmap(0, length, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_SHARED,
                fd.get(), offset), length);
    }

    /** Anonymous private zero-filled memory that does not count against the Java heap. */
    public static Mapping anonymous(long length) {
        return new Mapping(Sys.mmap(0, length, Linux.PROT_READ | Linux.PROT_WRITE,
                Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS | Linux.MAP_NORESERVE, -1, 0), length);
    }

    public long address() {
        long a = address.get();
        if (a == 0) {
            throw new IllegalStateException("mapping already unmapped");
        }
        return a;
    }

    public long length() {
        return length;
    }

    public boolean isMapped() {
        return address.get() != 0;
    }

    @Override
    public void close() {
        long a = address.getAndSet(0);
        if (a != 0) {
            Sys.munmap(a, length);
        }
    }
}
