package dev.ferry.vfio.kernel;

import dev.ferry.vfio.uapi.IommuIoasAlloc;
import dev.ferry.vfio.uapi.IommuIoasMap;
import dev.ferry.vfio.uapi.IommuIoasUnmap;
import dev.ferry.vfio.uapi.VfioDeviceAttachIommufdPt;
import dev.ferry.vfio.uapi.VfioDeviceBindIommufd;
import dev.ferry.vfio.uapi.VfioGroupStatus;
import dev.ferry.vfio.uapi.VfioIommuType1DmaMap;
import dev.ferry.vfio.uapi.VfioIommuType1DmaUnmap;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The opening structs leave their builders byte-exact: what the kernel reads is what Ferry meant. */
class OpeningStructsTest {
    private static ByteBuffer le(int size) {
        return ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
    }

    @Test
    void iommufdStructs() {
        try (IommuIoasAlloc alloc = new IommuIoasAlloc(); IommuIoasMap map = new IommuIoasMap();
             IommuIoasUnmap unmap = new IommuIoasUnmap()) {
            alloc.prepare();
            assertArrayEquals(le(12).putInt(12).array(), alloc.toBytes());
            map.prepareFixed(3, 0x7f00_1234_0000L, 0x20_0000, 0x1_0000_0000L);
            assertArrayEquals(le(40).putInt(40).putInt(1 | 2 | 4).putInt(3).putInt(0).putLong(0x7f00_1234_0000L)
                    .putLong(0x20_0000).putLong(0x1_0000_0000L).array(), map.toBytes());
            unmap.prepare(3, 0x4000, 0x8000);
            assertArrayEquals(le(24).putInt(24).putInt(3).putLong(0x4000).putLong(0x8000).array(), unmap.toBytes());
            assertThrows(IllegalArgumentException.class, () -> map.prepareFixed(3, 0, 4096, 0));
            assertThrows(IllegalArgumentException.class, () -> map.prepareFixed(3, 4096, 0, 0));
        }
    }

    @Test
    void cdevStructs() {
        try (VfioDeviceBindIommufd bind = new VfioDeviceBindIommufd();
             VfioDeviceAttachIommufdPt attach = new VfioDeviceAttachIommufdPt()) {
            bind.prepare(7);
            assertArrayEquals(le(16).putInt(16).putInt(0).putInt(7).putInt(0).array(), bind.toBytes());
            attach.prepare(2);
            assertArrayEquals(le(12).putInt(12).putInt(0).putInt(2).array(), attach.toBytes());
            assertThrows(IllegalArgumentException.class, () -> bind.prepare(-1));
        }
    }

    @Test
    void groupAndContainerStructs() {
        try (VfioGroupStatus status = new VfioGroupStatus(); VfioIommuType1DmaMap map = new VfioIommuType1DmaMap();
             VfioIommuType1DmaUnmap unmap = new VfioIommuType1DmaUnmap()) {
            status.prepare();
            assertArrayEquals(le(8).putInt(8).array(), status.toBytes());
            map.prepare(0x7f00_0000_0000L, 0x10_0000, 0x40_0000);
            assertArrayEquals(le(32).putInt(32).putInt(3).putLong(0x7f00_0000_0000L).putLong(0x10_0000)
                    .putLong(0x40_0000).array(), map.toBytes());
            unmap.prepare(0x10_0000, 0x40_0000);
            assertArrayEquals(le(24).putInt(24).putInt(0).putLong(0x10_0000).putLong(0x40_0000).array(), unmap.toBytes());
        }
    }
}
