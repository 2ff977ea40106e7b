package dev.ferry.virtio.transport;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.QueueConfig;
import dev.ferry.virtio.queue.SplitRing;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import static dev.ferry.virtio.transport.MmioGuest.small;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A hostile driver's rings reach a started device through a kick: the device refuses the chain,
 * sets NEEDS_RESET with the reason, raises the config interrupt, writes nothing to guest RAM and
 * lets no exception out; after a reset and a new negotiation it serves again.
 */
@Timeout(60)
class HostileDriverTest {
    static final int SIZE = 8;
    static final long FEATURES = Virtio.bit(Virtio.F_VERSION_1) | Virtio.bit(Virtio.F_INDIRECT_DESC);

    enum Ring {
        DESCRIPTOR_OUTSIDE_RAM("not in RAM") {
            @Override
            void write(DeviceMemory m, QueueConfig c) {
                desc(m, c.descGpa(), 0, MmioGuest.RAM - 8, 64, SplitRing.DESC_F_WRITE, 0);
                offer(m, c, 0, 1);
            }
        },
        LOOP("loop") {
            @Override
            void write(DeviceMemory m, QueueConfig c) {
                desc(m, c.descGpa(), 0, small(0), 16, SplitRing.DESC_F_NEXT, 1);
                desc(m, c.descGpa(), 1, small(1), 16, SplitRing.DESC_F_NEXT, 0);
                offer(m, c, 0, 1);
            }
        },
        INDIRECT_IN_INDIRECT("inside an indirect table") {
            @Override
            void write(DeviceMemory m, QueueConfig c) {
                long table = small(4);
                desc(m, table, 0, small(8), 16, SplitRing.DESC_F_INDIRECT, 0);
                desc(m, table, 1, small(9), 16, SplitRing.DESC_F_WRITE, 0);
                desc(m, c.descGpa(), 0, table, 32, SplitRing.DESC_F_INDIRECT, 0);
                offer(m, c, 0, 1);
            }
        },
        AVAIL_IDX_FAR_AHEAD("ahead") {
            @Override
            void write(DeviceMemory m, QueueConfig c) {
                m.storeU16Release(SplitRing.availIdx(c.availGpa()), SIZE + 1);
            }
        };

        final String reason;

        Ring(String reason) {
            this.reason = reason;
        }

        abstract void write(DeviceMemory m, QueueConfig c);

        static void desc(DeviceMemory m, long table, int i, long addr, long len, int flags, int next) {
            m.writeU64(SplitRing.descAddr(table, i), addr);
            m.writeU32(SplitRing.descLen(table, i), (int) len);
            m.writeU16(SplitRing.descFlags(table, i), flags);
            m.writeU16(SplitRing.descNext(table, i), next);
        }

        static void offer(DeviceMemory m, QueueConfig c, int head, int newIdx) {
            m.writeU16(SplitRing.availRing(c.availGpa(), c.size(), newIdx - 1), head);
            m.storeU16Release(SplitRing.availIdx(c.availGpa()), newIdx);
        }
    }

    @ParameterizedTest
    @EnumSource(Ring.class)
    void deviceNeedsResetTouchesNothingAndRecovers(Ring ring) throws Exception {
        EchoModel model = new EchoModel();
        try (MmioGuest g = MmioGuest.running("vm", model)) {
            g.bringUp(FEATURES, SIZE);
            ring.write(g.mem, MmioGuest.layout(0, SIZE, FEATURES));
            long before = g.ramDigest();

            g.kick(0);
            g.awaitStatus(Virtio.STATUS_NEEDS_RESET);
            String reason = g.transport.brokenReason();
            assertNotNull(reason);
            assertTrue(reason.contains(ring.reason), reason);
            assertEquals(before, g.ramDigest(), "the device wrote nothing to guest RAM");
            g.awaitInterrupt();
            assertEquals(Virtio.ISR_QUEUE | Virtio.ISR_CONFIG, g.read(0x060), "the config interrupt tells the driver (QEMU sets both bits)");
            assertTrue((g.status() & Virtio.STATUS_DRIVER_OK) != 0, "the driver's bits stay");

            g.kick(0);
            g.settle();
            assertEquals(before, g.ramDigest(), "a broken device ignores further kicks");

            g.write(0x070, 0);
            assertNull(g.transport.brokenReason());
            assertEquals(0, g.status());
            DriverQueue q = g.bringUp(FEATURES, SIZE);
            int head = VirtioMmioTest.echo(g, q, "works ok");
            g.kick(0);
            VirtioMmioTest.assertEchoed(g, q, head, "works ok");
        }
    }
}
