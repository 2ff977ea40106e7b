package dev.ferry.virtio.queue;

/**
 * One buffer of a descriptor chain: {@code length} bytes of guest RAM from {@code gpa}, checked
 * to lie inside one RAM region when the chain was popped. {@code length} is a descriptor's u32
 * {@code len}, 1 to 2^32 − 1.
 */
public record Segment(long gpa, long length) {
    @Override
    public String toString() {
        return "[0x" + Long.toHexString(gpa) + ", +0x" + Long.toHexString(length) + ")";
    }
}
