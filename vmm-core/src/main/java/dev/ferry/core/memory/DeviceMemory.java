package dev.ferry.core.memory;

import dev.ferry.core.sys.Fd;
import dev.ferry.core.sys.NativeMemory;
import dev.ferry.core.sys.Sys;

import java.lang.invoke.VarHandle;

/**
 * Guest RAM as a device model sees it: bounds-checked, little-endian, with the orderings a shared
 * ring needs, and with every write recorded in the VMM's write log (the dirty log migration
 * reads). This is the only access to guest memory a device is given; it has no host address and
 * no unlogged write, so a device write that bypasses dirty tracking cannot be expressed.
 *
 * <pre>
 *   plain      readU16/32/64, writeU16/32/64       device-private fields, descriptor bodies
 *   acquire    loadU16Acquire, loadU32Acquire     an index the driver publishes (avail.idx)
 *   release    storeU16Release, storeU32Release   an index the device publishes (used.idx)
 *   fence      fullFence()                        between publishing used.idx and reading
 *                                                 the driver's notification suppression
 *   bulk       read/write(byte[]), copyToFile,    payloads; file I/O goes straight between
 *              copyFromFile                       the image and guest RAM (pread/pwrite)
 * </pre>
 * Every address is a guest-physical address the caller got from the guest (a descriptor, a ring
 * address) and is therefore hostile: an access outside RAM, or one that crosses a region's end,
 * is a {@link GuestMemoryException} naming the address; nothing is read or written then.
 *
 * <p>Thread-safe for concurrent access to distinct bytes, like real RAM. Stateless apart from the
 * memory it wraps; does not own it.
 */
public final class DeviceMemory {
    private final GuestMemory memory;

    public DeviceMemory(GuestMemory memory) {
        this.memory = memory;
    }

    /** True when {@code [gpa, gpa + length)} lies inside one RAM region. */
    public boolean isRam(long gpa, long length) {
        if (length < 0) {
            return false;
        }
        for (GuestRegion r : memory.regions()) {
            if (r.contains(gpa)) {
                return length <= r.size() - (gpa - r.gpaBase());
            }
        }
        return false;
    }

    /** The guest's RAM as QEMU counts it ({@link GuestMemory#ramBytes()}). */
    public long ramBytes() {
        return memory.ramBytes();
    }

    /** Total RAM, for sizing checks. */
    public long totalSize() {
        return memory.totalSize();
    }

    private long at(long gpa, long length) {
        return memory.hostAddress(new Gpa(gpa), length);
    }

    // ---- plain little-endian access ----

    public int readU8(long gpa) {
        return NativeMemory.getByte(at(gpa, 1)) & 0xff;
    }

    public int readU16(long gpa) {
        return Short.toUnsignedInt(le(NativeMemory.getShort(at(gpa, 2))));
    }

    public int readU32(long gpa) {
        return le(NativeMemory.getInt(at(gpa, 4)));
    }

    public long readU64(long gpa) {
        return le(NativeMemory.getLong(at(gpa, 8)));
    }

    public void writeU8(long gpa, int v) {
        NativeMemory.putByte(at(gpa, 1), (byte) v);
        memory.markWritten(new Gpa(gpa), 1);
    }

    public void writeU16(long gpa, int v) {
        NativeMemory.putShort(at(gpa, 2), le((short) v));
        memory.markWritten(new Gpa(gpa), 2);
    }

    public void writeU32(long gpa, int v) {
        NativeMemory.putInt(at(gpa, 4), le(v));
        memory.markWritten(new Gpa(gpa), 4);
    }

    public void writeU64(long gpa, long v) {
        NativeMemory.putLong(at(gpa, 8), le(v));
        memory.markWritten(new Gpa(gpa), 8);
    }

    // ---- ordered access for ring indices ----

    /** Reads a u16 the driver published; later reads see what the driver wrote before it. */
    public int loadU16Acquire(long gpa) {
        long a = at(gpa, 2);
        int v = Short.toUnsignedInt(le(NativeMemory.getShort(a)));
        VarHandle.acquireFence();
        return v;
    }

    public int loadU32Acquire(long gpa) {
        long a = at(gpa, 4);
        int v = le(NativeMemory.getInt(a));
        VarHandle.acquireFence();
        return v;
    }

    /** Publishes a u16: every write before it is visible to a reader that sees it. */
    public void storeU16Release(long gpa, int v) {
        long a = at(gpa, 2);
        VarHandle.releaseFence();
        NativeMemory.putShort(a, le((short) v));
        memory.markWritten(new Gpa(gpa), 2);
    }

    public void storeU32Release(long gpa, int v) {
        long a = at(gpa, 4);
        VarHandle.releaseFence();
        NativeMemory.putInt(a, le(v));
        memory.markWritten(new Gpa(gpa), 4);
    }

    /**
     * A full barrier (virtio's {@code virtio_mb}): stores before it are visible before loads
     * after it — between publishing {@code used.idx} and reading {@code avail.flags} or
     * {@code used_event}, so a notification the driver asked for is never missed.
     */
    public void fullFence() {
        VarHandle.fullFence();
    }

    // ---- bulk ----

    public void read(long gpa, byte[] dst, int offset, int length) {
        memory.read(new Gpa(gpa), dst, offset, length);
    }

    public void write(long gpa, byte[] src, int offset, int length) {
        memory.write(new Gpa(gpa), src, offset, length);
    }

    public void fill(long gpa, long length, byte value) {
        memory.fill(new Gpa(gpa), length, value);
    }

    /**
     * {@code pread(fd, guest[gpa, gpa + length), fileOffset)}: reads file data straight into
     * guest RAM and marks it written. Returns the bytes read (short at the end of the file).
     */
    public long readFromFile(Fd fd, long fileOffset, long gpa, int length) {
        long a = at(gpa, length);
        long n = Sys.pread(fd, a, length, fileOffset);
        if (n > 0) {
            memory.markWritten(new Gpa(gpa), n);
        }
        return n;
    }

    /** {@code pwrite(fd, guest[gpa, gpa + length), fileOffset)}: guest RAM straight to the file. */
    public long writeToFile(Fd fd, long fileOffset, long gpa, int length) {
        return Sys.pwrite(fd, at(gpa, length), length, fileOffset);
    }

    /**
     * Copies guest {@code [gpa, gpa + length)} to native memory at {@code dst} (a device's frame
     * buffer on its way to a socket or TAP): no heap copy.
     */
    public void copyToNative(long gpa, long dst, int length) {
        NativeMemory.copy(at(gpa, length), dst, length);
    }

    /** Copies {@code length} bytes from native {@code src} into guest RAM at {@code gpa} and marks them written. */
    public void copyFromNative(long src, long gpa, int length) {
        NativeMemory.copy(src, at(gpa, length), length);
        memory.markWritten(new Gpa(gpa), length);
    }

    private static short le(short v) {
        return NativeMemory.BIG_ENDIAN_HOST ? Short.reverseBytes(v) : v;
    }

    private static int le(int v) {
        return NativeMemory.BIG_ENDIAN_HOST ? Integer.reverseBytes(v) : v;
    }

    private static long le(long v) {
        return NativeMemory.BIG_ENDIAN_HOST ? Long.reverseBytes(v) : v;
    }
}
