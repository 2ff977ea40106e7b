package dev.ferry.core.cpu.kvm.bindings;

import dev.ferry.core.sys.NativeMemory;

/**
 * Base of every KVM struct flyweight: a fixed block of native memory that an ioctl reads or
 * writes, with typed accessors in the subclass. The memory is allocated once, zeroed, when the
 * object is made, and freed exactly once by {@link #close()}; ioctls take {@link #address()}, so
 * a vCPU loop that reuses its flyweights allocates nothing per call.
 *
 * <p>A view ({@link KvmRun}) covers memory it does not own and frees nothing.
 *
 * <p>Not thread-safe: one thread (usually the vCPU's) owns a flyweight at a time. Using one after
 * {@code close()} is an {@link IllegalStateException}, never a read of freed memory.
 */
public abstract class KvmStruct implements AutoCloseable {
    private final int size;
    private final boolean owned;
    private long address;

    /** Allocates {@code size} zeroed bytes owned by this object. */
    protected KvmStruct(int size) {
        if (size <= 0) {
            throw new IllegalArgumentException("struct size must be positive: " + size);
        }
        this.size = size;
        this.owned = true;
        this.address = NativeMemory.allocate(size);
    }

    /** A view of {@code size} bytes at {@code address}, owned by someone else (a mapping). */
    protected KvmStruct(long address, int size) {
        if (address == 0 || size <= 0) {
            throw new IllegalArgumentException("bad view: address 0x" + Long.toHexString(address) + ", size " + size);
        }
        this.size = size;
        this.owned = false;
        this.address = address;
    }

    /** The native address of the struct's first byte, for an ioctl argument. */
    public final long address() {
        long a = address;
        if (a == 0) {
            throw new IllegalStateException(getClass().getSimpleName() + " already closed");
        }
        return a;
    }

    /** The bytes this object covers (for variable-length structs: header plus capacity). */
    public final int size() {
        return size;
    }

    /**
     * The bytes that hold meaning now and that {@link #toBytes()} saves. Fixed structs: their
     * size. Variable-length ones: header plus the entries in use.
     */
    public int byteLength() {
        return size;
    }

    /** Zeroes the whole struct. */
    public final void clear() {
        NativeMemory.fill(address(), size, (byte) 0);
    }

    /** A copy of the first {@link #byteLength()} bytes, for a migration stream or snapshot. */
    public final byte[] toBytes() {
        byte[] b = new byte[byteLength()];
        NativeMemory.copyToArray(address(), b, 0, b.length);
        return b;
    }

    /**
     * Loads bytes saved by {@link #toBytes()} (from a stream: treated as hostile). Checks the
     * length against the layout before any byte is copied; the rest of the struct is zeroed.
     */
    public final void fromBytes(byte[] b) {
        checkLoadable(b);
        long a = address();
        NativeMemory.fill(a, size, (byte) 0);
        NativeMemory.copyFromArray(b, 0, a, b.length);
    }

    /** Throws {@link IllegalArgumentException} when {@code b} cannot be this struct's contents. */
    protected void checkLoadable(byte[] b) {
        if (b.length != size) {
            throw new IllegalArgumentException(getClass().getSimpleName() + ": expected " + size + " bytes, got "
                    + b.length);
        }
    }

    /** Copies every byte of {@code other} (same type and size) into this struct. */
    public final void copyFrom(KvmStruct other) {
        if (other.getClass() != getClass() || other.size != size) {
            throw new IllegalArgumentException("cannot copy " + other.getClass().getSimpleName() + " (" + other.size
                    + " bytes) into " + getClass().getSimpleName() + " (" + size + " bytes)");
        }
        NativeMemory.copy(other.address(), address(), size);
    }

    protected final int u8(int offset) {
        return NativeMemory.getByte(address() + offset) & 0xff;
    }

    protected final void u8(int offset, int v) {
        NativeMemory.putByte(address() + offset, (byte) v);
    }

    protected final int u16(int offset) {
        return NativeMemory.getShort(address() + offset) & 0xffff;
    }

    protected final void u16(int offset, int v) {
        NativeMemory.putShort(address() + offset, (short) v);
    }

    protected final int u32(int offset) {
        return NativeMemory.getInt(address() + offset);
    }

    protected final void u32(int offset, int v) {
        NativeMemory.putInt(address() + offset, v);
    }

    protected final long u64(int offset) {
        return NativeMemory.getLong(address() + offset);
    }

    protected final void u64(int offset, long v) {
        NativeMemory.putLong(address() + offset, v);
    }

    /** Checks {@code index} against {@code count} entries of an array field. */
    protected static int checkIndex(int index, int count, String field) {
        if (index < 0 || index >= count) {
            throw new IndexOutOfBoundsException(field + "[" + index + "] outside 0.." + (count - 1));
        }
        return index;
    }

    /** Frees the memory this object owns (views free nothing). Idempotent. */
    @Override
    public void close() {
        long a = address;
        address = 0;
        if (a != 0 && owned) {
            NativeMemory.free(a);
        }
    }
}
