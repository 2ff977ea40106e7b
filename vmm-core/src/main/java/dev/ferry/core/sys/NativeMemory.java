package dev.ferry.core.sys;

import java.lang.reflect.Field;
import java.nio.ByteOrder;

/**
 * Raw access to native memory by absolute address. Callers own the bounds: {@code GuestMemory}
 * checks every guest address before it reaches here. Nothing here allocates.
 *
 * <p>Safe because every address passed in comes from a live {@link Mapping} (or a Netty direct
 * buffer) whose length the caller has checked; the methods are otherwise the JDK's own
 * intrinsics.
 */
@SuppressWarnings("restriction")
public final class NativeMemory {
    private static final sun.misc.Unsafe U;
    private static final long BYTE_ARRAY_BASE;
    /** True on a big-endian host: guest-visible little-endian values need a byte swap there. */
    public static final boolean BIG_ENDIAN_HOST = ByteOrder.nativeOrder() == ByteOrder.BIG_ENDIAN;

    static {
        try {
            Field f = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");
            f.setAccessible(true);
            U = (sun.misc.Unsafe) f.get(null);
            BYTE_ARRAY_BASE = U.arrayBaseOffset(byte[].class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private NativeMemory() {
    }

    public static byte getByte(long address) {
        return U.getByte(address);
    }

    public static void putByte(long address, byte v) {
        U.putByte(address, v);
    }

    public static int getInt(long address) {
        return U.getInt(address);
    }

    public static void putInt(long address, int v) {
        U.putInt(address, v);
    }

    public static long getLong(long address) {
        return U.getLong(address);
    }

    public static void putLong(long address, long v) {
        U.putLong(address, v);
    }

    public static short getShort(long address) {
        return U.getShort(address);
    }

    public static void putShort(long address, short v) {
        U.putShort(address, v);
    }

    public static long getLongVolatile(long address) {
        return U.getLongVolatile(null, address);
    }

    public static void putLongVolatile(long address, long v) {
        U.putLongVolatile(null, address, v);
    }

    /** Atomic OR, as the kernel and vhost-user peers set dirty bits. Returns the previous value. */
    public static long getAndOrLong(long address, long bits) {
        long prev;
        do {
            prev = U.getLongVolatile(null, address);
            if ((prev & bits) == bits) {
                return prev;
            }
        } while (!U.compareAndSwapLong(null, address, prev, prev | bits));
        return prev;
    }

    /**
     * A write access that changes nothing: a locked add of 0 to the long at {@code address}. It
     * faults the page in for writing like a store, yet cannot lose a store another thread makes
     * to it at the same time (the read and the write are one atomic operation).
     */
    public static void touchForWrite(long address) {
        U.getAndAddLong(null, address, 0L);
    }

    /** Atomic AND: clears bits another thread may be setting. Returns the previous value. */
    public static long getAndAndLong(long address, long mask) {
        long prev;
        do {
            prev = U.getLongVolatile(null, address);
            if ((prev & mask) == prev) {
                return prev;
            }
        } while (!U.compareAndSwapLong(null, address, prev, prev & mask));
        return prev;
    }

    /** Atomic exchange: harvests a bitmap word and clears it in one step. */
    public static long getAndSetLong(long address, long v) {
        return U.getAndSetLong(null, address, v);
    }

    public static void copy(long src, long dst, long length) {
        U.copyMemory(src, dst, length);
    }

    public static void copyToArray(long src, byte[] dst, int dstOffset, int length) {
        java.util.Objects.checkFromIndexSize(dstOffset, length, dst.length);
        U.copyMemory(null, src, dst, BYTE_ARRAY_BASE + dstOffset, length);
    }

    public static void copyFromArray(byte[] src, int srcOffset, long dst, int length) {
        java.util.Objects.checkFromIndexSize(srcOffset, length, src.length);
        U.copyMemory(src, BYTE_ARRAY_BASE + srcOffset, null, dst, length);
    }

    public static void fill(long address, long length, byte value) {
        U.setMemory(address, length, value);
    }

    /** True when {@code length} bytes (a multiple of 32) at {@code address} are all zero. */
    public static boolean isZero(long address, long length) {
        long end = address + length;
        for (long p = address; p < end; p += 32) {
            if ((U.getLong(p) | U.getLong(p + 8) | U.getLong(p + 16) | U.getLong(p + 24)) != 0) {
                return false;
            }
        }
        return true;
    }

    /** Off-heap memory from malloc, for small native structs; free with {@link #free}. */
    public static long allocate(long size) {
        long a = U.allocateMemory(size);
        U.setMemory(a, size, (byte) 0);
        return a;
    }

    public static void free(long address) {
        U.freeMemory(address);
    }
}
