package dev.ferry.migration.testing;

import dev.ferry.core.migration.VmStateDescription;

import java.util.Arrays;
import java.util.HexFormat;

/**
 * A small device whose state migrates as a {@link VmStateDescription}, for stream tests. Its
 * layout on the wire (section "test-dev", instance 0, version 1):
 * <pre>
 * be32 id | be64 counter | 6 bytes mac | u8 enabled (0 or 1)
 * [ 0x05 | u8 14 | "test-dev/extra" | be32 1 | be16 extra ]     only when extra != 0
 * </pre>
 * Not thread-safe: the test sets it up before a migration and reads it after.
 */
public final class TestDevice {
    public static final String IDSTR = "test-dev";
    public static final String EXTRA = "test-dev/extra";
    public static final int MAC_LENGTH = 6;

    public static final VmStateDescription<TestDevice> EXTRA_VMSD = VmStateDescription.<TestDevice>builder(EXTRA, 1)
            .u16("extra", TestDevice::extra, TestDevice::extra)
            .build();

    public static final VmStateDescription<TestDevice> VMSD = VmStateDescription.<TestDevice>builder(IDSTR, 1)
            .u32("id", TestDevice::id, TestDevice::id)
            .u64("counter", TestDevice::counter, TestDevice::counter)
            .buffer("mac", MAC_LENGTH, TestDevice::mac, TestDevice::mac)
            .bool("enabled", TestDevice::enabled, TestDevice::enabled)
            .subsection(EXTRA_VMSD, d -> d.extra != 0)
            .build();

    private int id;
    private long counter;
    private byte[] mac = new byte[MAC_LENGTH];
    private boolean enabled;
    private int extra;

    /** A device in its reset state (all zero, subsection not needed). */
    public TestDevice() {
    }

    /** The device the stream tests migrate: every field non-zero and the subsection present. */
    public static TestDevice sample() {
        return new TestDevice().id(0x12345678).counter(0x0123456789abcdefL)
                .mac(new byte[] {0x52, 0x54, 0x00, 0x12, 0x34, 0x56}).enabled(true).extra(0xbeef);
    }

    public int id() {
        return id;
    }

    public TestDevice id(int v) {
        id = v;
        return this;
    }

    public long counter() {
        return counter;
    }

    public TestDevice counter(long v) {
        counter = v;
        return this;
    }

    public byte[] mac() {
        return mac.clone();
    }

    public TestDevice mac(byte[] v) {
        if (v.length != MAC_LENGTH) {
            throw new IllegalArgumentException("mac must be " + MAC_LENGTH + " bytes, got " + v.length);
        }
        mac = v.clone();
        return this;
    }

    public boolean enabled() {
        return enabled;
    }

    public TestDevice enabled(boolean v) {
        enabled = v;
        return this;
    }

    public int extra() {
        return extra;
    }

    public TestDevice extra(int v) {
        if (v < 0 || v > 0xffff) {
            throw new IllegalArgumentException("extra is a u16, got " + v);
        }
        extra = v;
        return this;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TestDevice d && d.id == id && d.counter == counter && Arrays.equals(d.mac, mac)
                && d.enabled == enabled && d.extra == extra;
    }

    @Override
    public int hashCode() {
        return Long.hashCode(counter) * 31 + id;
    }

    @Override
    public String toString() {
        return String.format("test-dev{id=0x%x, counter=0x%x, mac=%s, enabled=%b, extra=0x%x}", id, counter,
                HexFormat.of().formatHex(mac), enabled, extra);
    }
}
