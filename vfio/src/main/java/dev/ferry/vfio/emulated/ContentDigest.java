package dev.ferry.vfio.emulated;

import dev.ferry.core.memory.MemoryDigest;
import dev.ferry.core.sys.NativeMemory;

/**
 * {@link MemoryDigest} for lengths that are not a multiple of 32 bytes (record payloads, packets,
 * ragged state sizes): {@code MemoryDigest.of} reads whole 32-byte blocks, so on such a length it
 * would take in whatever bytes follow the data, and two equal payloads in differently reused
 * buffers would digest differently. Only the bytes asked for count here.
 */
final class ContentDigest {
    private ContentDigest() {
    }

    /** Digest of exactly {@code length} bytes at {@code address}. */
    static long of(long address, long length) {
        long whole = length & ~31L;
        long h = MemoryDigest.of(address, whole);
        for (long p = address + whole, end = address + length; p < end; p++) {
            h = MemoryDigest.combine(h, NativeMemory.getByte(p));
        }
        return MemoryDigest.combine(h, length);
    }

    /**
     * Digest of one stream record: its head (tag, index, length) and payload, so that a changed
     * chunk index or length is caught like a changed payload byte.
     */
    static long record(int tag, int index, int length, long payload) {
        long h = MemoryDigest.combine(MemoryDigest.combine(MemoryDigest.combine(0x46525646L, tag), index), length);
        return MemoryDigest.combine(h, of(payload, length));
    }
}
