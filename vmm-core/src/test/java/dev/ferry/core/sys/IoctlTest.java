package dev.ferry.core.sys;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The ioctl encoding against request numbers copied from the kernel (no compiler needed;
 * {@link HeaderProbeTest} checks the same encoding against the macros when gcc is present).
 */
class IoctlTest {
    @Test
    void knownKvmAndVfioRequests() {
        assertEquals(0xAE00L, Ioctl.io(0xAE, 0x00), "KVM_GET_API_VERSION");
        assertEquals(0xAE01L, Ioctl.io(0xAE, 0x01), "KVM_CREATE_VM");
        assertEquals(0xAE80L, Ioctl.io(0xAE, 0x80), "KVM_RUN");
        assertEquals(0x8090AE81L, Ioctl.ior(0xAE, 0x81, 144), "KVM_GET_REGS");
        assertEquals(0x4020AE46L, Ioctl.iow(0xAE, 0x46, 32), "KVM_SET_USER_MEMORY_REGION");
        assertEquals(0xC008AE05L, Ioctl.iowr(0xAE, 0x05, 8), "KVM_GET_SUPPORTED_CPUID");
        assertEquals(0x3B64L, Ioctl.io(';', 100), "VFIO_GET_API_VERSION");
    }

    @Test
    void numbersAreUnsigned32Bit() {
        assertEquals(0xFFFFFFFFL, Ioctl.iowr(0xff, 0xff, (1 << 14) - 1));
        assertEquals(0x80000000L, Ioctl.ior(0, 0, 0));
    }

    @Test
    void typeAndNumberKeepTheirLowByteOnly() {
        assertEquals(Ioctl.io(0xAE, 0x01), Ioctl.io(0x1AE, 0x101));
    }

    @Test
    void sizeOutsideFourteenBitsIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> Ioctl.iow(0xAE, 0, 1 << 14));
        assertThrows(IllegalArgumentException.class, () -> Ioctl.iow(0xAE, 0, -1));
    }
}
