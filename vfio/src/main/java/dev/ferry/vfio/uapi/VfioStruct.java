package dev.ferry.vfio.uapi;

import dev.ferry.core.sys.NativeMemory;

/**
 * Base of every VFIO struct flyweight: one block of zeroed native memory, allocated when the
 * object is made and freed exactly once by {@link #close()}. An ioctl takes {@link #address()};
 * a caller that keeps its flyweights allocates nothing per call.
 *
 * <p>Every top-level VFIO struct starts with {@code u32 argsz} — the number of bytes the kernel
 * may read and write — so the base class keeps it: {@link #argsz()} is what the struct says now,
 * {@link #size()} what was allocated. The kernel trusts {@code argsz}, never {@code size()}, so
 * subclasses set it in their constructors and builders and never above {@code size()}.
 *
 * <p>Native byte order (little-endian on x86-64), as the kernel reads it. Not thread-safe: one
 * thread owns a flyweight at a time. Use after {@code close()} is an
 * {@link IllegalStateException}, never a read of freed memory.
 */
public abstract class VfioStruct implements AutoCloseable {
    /** Offset of {@code argsz} in every top-level VFIO struct. */
    protected static final int ARGSZ_AT = 0;

    private final int size;
    private long address;

    /** Allocates {@code size} zeroed bytes and sets {@code argsz} to {@code argsz}. */
    protected VfioStruct(int size, int argsz) {
        if (size <= 0) {
            throw new IllegalArgumentException("struct size must be positive: " + size);
        }
        this.size = size;
        this.address = NativeMemory.allocate(size);
        setArgsz(argsz);
    }

    /** The native address of the struct's first byte, for an ioctl argument. */
    public final long address() {
        long a = address;
        if (a == 0) {
            throw new IllegalStateException(getClass().getSimpleName() + " already closed");
        }
        return a;
    }

    /** Bytes allocated. */
    public final int size() {
        return size;
    }

    /** The {@code argsz} field: how many bytes the kernel will look at. */
    public final int argsz() {
        return u32(ARGSZ_AT);
    }

    /** Sets {@code argsz}; refuses a value the allocation cannot back (the kernel would read past it). */
    protected final void setArgsz(int argsz) {
        if (argsz < 8 || argsz > size) {
            throw new IllegalArgumentException(getClass().getSimpleName() + ": argsz " + argsz + " outside 8.."
                    + size);
        }
        u32(ARGSZ_AT, argsz);
    }

    /** A copy of the first {@link #argsz()} bytes: exactly what the kernel sees. */
    public final byte[] toBytes() {
        byte[] b = new byte[argsz()];
        NativeMemory.copyToArray(address(), b, 0, b.length);
        return b;
    }

    /**
     * Zeroes bytes 4 up to {@code argsz} — what the kernel will see — keeping {@code argsz}. Bytes
     * past {@code argsz} (a range array reached through a pointer) are left alone.
     */
    protected final void clearAfterArgsz() {
        NativeMemory.fill(address() + 4, argsz() - 4, (byte) 0);
    }

    protected final int u8(int offset) {
        return NativeMemory.getByte(at(offset, 1)) & 0xff;
    }

    protected final void u8(int offset, int v) {
        NativeMemory.putByte(at(offset, 1), (byte) v);
    }

    protected final int u32(int offset) {
        return NativeMemory.getInt(at(offset, 4));
    }

    protected final void u32(int offset, int v) {
        NativeMemory.putInt(at(offset, 4), v);
    }

    protected final long u64(int offset) {
        return NativeMemory.getLong(at(offset, 8));
    }

    protected final void u64(int offset, long v) {
        NativeMemory.putLong(at(offset, 8), v);
    }

    private long at(int offset, int width) {
        if (offset < 0 || offset > size - width) {
            throw new IndexOutOfBoundsException(getClass().getSimpleName() + ": " + width + " bytes at " + offset
                    + " outside its " + size);
        }
        return address() + offset;
    }

    /** Frees the memory. Idempotent. */
    @Override
    public void close() {
        long a = address;
        address = 0;
        if (a != 0) {
            NativeMemory.free(a);
        }
    }
}
