package dev.ferry.vfio.uapi;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Builders set the argsz the kernel expects, fields round-trip, and a SET buffer is byte-exact. */
class VfioFlyweightTest {
    @Test
    void migDeviceStateSetBufferIsByteExact() {
        try (var f = new VfioDeviceFeatureMigState()) {
            f.prepareSet(VfioDeviceState.STOP_COPY);
            assertArrayEquals(new byte[] {
                    16, 0, 0, 0,          // argsz
                    2, 0, 2, 0,           // flags: MIG_DEVICE_STATE | SET (1 << 17)
                    3, 0, 0, 0,           // device_state STOP_COPY
                    -1, -1, -1, -1},      // data_fd -1 until the kernel returns one
                    f.toBytes());
        }
    }

    @Test
    void featureBuildersSetArgsz() {
        try (var mig = new VfioDeviceFeatureMigration(); var size = new VfioDeviceFeatureMigDataSize();
             var report = new VfioDeviceFeatureDmaLoggingReport(); var control = new VfioDeviceFeatureDmaLoggingControl(4);
             var header = new VfioDeviceFeature()) {
            mig.prepareGet();
            assertEquals(16, mig.argsz());
            assertEquals(VfioIoctls.VFIO_DEVICE_FEATURE_GET | 1, mig.flags());
            size.prepareGet();
            assertEquals(16, size.argsz());
            assertEquals(9, size.feature());
            report.prepareGet(0x10000, 1 << 20, 4096, 0x7f00_0000_0000L);
            assertEquals(40, report.argsz());
            control.setRange(0, 0, 1 << 20);
            control.prepareStart(4096, 1);
            assertEquals(32, control.argsz());
            header.prepare(VfioIoctls.VFIO_DEVICE_FEATURE_SET, VfioIoctls.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP);
            assertEquals(8, header.argsz());
            assertArrayEquals(new byte[] {8, 0, 0, 0, 7, 0, 2, 0}, header.toBytes());
            header.prepareProbe(VfioIoctls.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
                    VfioIoctls.VFIO_DEVICE_FEATURE_GET | VfioIoctls.VFIO_DEVICE_FEATURE_SET);
            assertEquals(8, header.argsz());
            assertEquals(0x7_0002, header.flags());
        }
    }

    @Test
    void dmaLoggingControlPointsAtItsOwnRanges() {
        try (var c = new VfioDeviceFeatureDmaLoggingControl(2)) {
            c.setRange(0, 0x0, 0x8000_0000L);
            c.setRange(1, 0x1_0000_0000L, 0x4000_0000L);
            c.prepareStart(4096, 2);
            assertEquals(4096, c.pageSize());
            assertEquals(2, c.numRanges());
            assertEquals(c.address() + VfioDeviceFeatureDmaLoggingControl.ARGSZ, c.rangesAddress());
            assertEquals(0x1_0000_0000L, c.rangeIova(1));
            assertEquals(0x4000_0000L, c.rangeLength(1));
            assertThrows(IllegalArgumentException.class, () -> c.prepareStart(4096, 3));
            assertThrows(IllegalArgumentException.class, () -> c.prepareStart(4095, 1));
        }
    }

    @Test
    void reportRoundTripsAndRejectsSmallPages() {
        try (var r = new VfioDeviceFeatureDmaLoggingReport()) {
            r.prepareGet(0x2000, 0x40_0000, 8192, 0xdead_0000L);
            assertEquals(0x2000, r.iova());
            assertEquals(0x40_0000, r.length());
            assertEquals(8192, r.pageSize());
            assertEquals(0xdead_0000L, r.bitmapAddress());
            assertThrows(IllegalArgumentException.class, () -> r.prepareGet(0, 4096, 2048, 1));
        }
    }

    @Test
    void migStateRefusesErrorAndReadsBack() {
        try (var f = new VfioDeviceFeatureMigState()) {
            assertThrows(IllegalArgumentException.class, () -> f.prepareSet(VfioDeviceState.ERROR));
            for (VfioDeviceState s : VfioDeviceState.values()) {
                if (s != VfioDeviceState.ERROR) {
                    f.prepareSet(s);
                    assertEquals(s, f.deviceState());
                    assertEquals(-1, f.dataFd());
                }
            }
            f.prepareGet();
            assertEquals(VfioIoctls.VFIO_DEVICE_FEATURE_GET | 2, f.flags());
            assertEquals(VfioDeviceState.ERROR, f.deviceState()); // zeroed until the kernel answers
        }
    }

    @Test
    void infoStructsCarryTheirSize() {
        try (var d = new VfioDeviceInfo(); var r = new VfioRegionInfo(); var i = new VfioIrqInfo();
             var p = new VfioPrecopyInfo()) {
            d.prepare();
            assertEquals(24, d.argsz());
            r.prepare(7);
            assertEquals(32, r.argsz());
            assertEquals(7, r.index());
            i.prepare(2);
            assertEquals(16, i.argsz());
            assertEquals(2, i.index());
            p.prepare();
            assertArrayEquals(new byte[] {24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
                    p.toBytes());
        }
    }

    @Test
    void irqSetArgszFollowsItsData() {
        try (var s = new VfioIrqSet(4)) {
            s.prepareEventfds(2, 0, VfioIoctls.VFIO_IRQ_SET_ACTION_TRIGGER, 11, -1, 13);
            assertEquals(20 + 12, s.argsz());
            assertEquals(VfioIoctls.VFIO_IRQ_SET_DATA_EVENTFD | VfioIoctls.VFIO_IRQ_SET_ACTION_TRIGGER, s.flags());
            assertEquals(3, s.count());
            assertEquals(-1, s.eventfd(1));
            s.prepareBools(0, 1, VfioIoctls.VFIO_IRQ_SET_ACTION_MASK, true, false, true);
            assertEquals(23, s.argsz());
            s.prepareNone(2, 0, 0, VfioIoctls.VFIO_IRQ_SET_ACTION_TRIGGER);
            assertArrayEquals(new byte[] {20, 0, 0, 0, 33, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, s.toBytes());
            assertThrows(IllegalArgumentException.class,
                    () -> s.prepareEventfds(0, 0, VfioIoctls.VFIO_IRQ_SET_ACTION_TRIGGER, 1, 2, 3, 4, 5));
        }
    }

    @Test
    void deviceStateValuesAndRequirements() {
        for (VfioDeviceState s : VfioDeviceState.values()) {
            assertEquals(s, VfioDeviceState.fromValue(s.value()));
        }
        assertThrows(IllegalArgumentException.class, () -> VfioDeviceState.fromValue(8));
        long stopCopy = VfioIoctls.VFIO_MIGRATION_STOP_COPY;
        long all = stopCopy | VfioIoctls.VFIO_MIGRATION_P2P | VfioIoctls.VFIO_MIGRATION_PRE_COPY;
        assertTrue(VfioDeviceState.RESUMING.supportedBy(stopCopy));
        assertFalse(VfioDeviceState.RUNNING_P2P.supportedBy(stopCopy));
        assertFalse(VfioDeviceState.PRE_COPY_P2P.supportedBy(stopCopy | VfioIoctls.VFIO_MIGRATION_PRE_COPY));
        assertTrue(VfioDeviceState.PRE_COPY_P2P.supportedBy(all));
        assertFalse(VfioDeviceState.PRE_COPY.supportedBy(VfioIoctls.VFIO_MIGRATION_PRE_COPY)); // no STOP_COPY
        assertFalse(VfioDeviceState.ERROR.supportedBy(all));
    }

    @Test
    void closedStructRefusesUse() {
        var f = new VfioDeviceFeatureMigState();
        f.close();
        f.close();
        assertThrows(IllegalStateException.class, f::address);
    }
}
