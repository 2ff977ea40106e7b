package dev.ferry.virtio.queue;

import org.junit.jupiter.api.Test;

import java.util.List;

import static dev.ferry.virtio.queue.RingFixture.buf;
import static dev.ferry.virtio.queue.RingFixture.data;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The driver side's own rules: ring setup, its free list, and what it refuses from a device. */
class DriverQueueTest {

    @Test
    void buildLaysOutTheRingsAtTheInitialIndex() {
        try (RingFixture f = new RingFixture(8, true, true, 65530)) {
            QueueConfig c = f.config;
            assertEquals(65530, f.memory.readU16(SplitRing.availIdx(c.availGpa())));
            assertEquals(65530, f.memory.readU16(SplitRing.usedIdx(c.usedGpa())));
            assertEquals(65530, f.memory.readU16(SplitRing.usedEvent(c.availGpa(), 8)));
            assertEquals(65530, f.memory.readU16(SplitRing.availEvent(c.usedGpa(), 8)));
            assertEquals(0, f.memory.readU16(SplitRing.availFlags(c.availGpa())));
            assertEquals(0, f.memory.readU16(SplitRing.usedFlags(c.usedGpa())));
            assertEquals(65530, f.driver.availIdx());
            assertEquals(65530, f.driver.lastUsedIdx());
            assertEquals(8, f.driver.freeDescriptors());
        }
    }

    @Test
    void addPublishesTheHeadInTheNextAvailSlot() {
        try (RingFixture f = new RingFixture(8, false, false, 65535)) {
            int head = f.driver.add(List.of(buf(data(0), 4)), List.of(), false);
            assertEquals(0, f.availIdxInRam());
            assertEquals(head, f.memory.readU16(SplitRing.availRing(f.config.availGpa(), 8, 65535)));
            assertEquals(1, f.driver.inFlight());
        }
    }

    @Test
    void aFullQueueRefusesMoreUntilDescriptorsComeBack() {
        try (RingFixture f = RingFixture.plain(4)) {
            f.driver.add(List.of(buf(data(0), 4)), List.of(buf(data(1), 4), buf(data(2), 4)), false);
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> f.driver.add(List.of(buf(data(3), 4), buf(data(4), 4)), List.of(), false));
            assertEquals("queue full: 2 descriptors needed, 1 free", e.getMessage());
            f.device.push(f.device.pop(), 0);
            f.device.publish();
            f.driver.pollUsed();
            f.driver.add(List.of(buf(data(3), 4), buf(data(4), 4)), List.of(buf(data(5), 4), buf(data(6), 4)), false);
            assertEquals(0, f.driver.freeDescriptors());
        }
    }

    @Test
    void indirectNeedsTheFeatureAndFitsTheTable() {
        try (RingFixture f = RingFixture.plain(4)) {
            assertThrows(IllegalStateException.class, () -> f.driver.add(List.of(buf(data(0), 4)), List.of(), true));
        }
        try (RingFixture f = new RingFixture(4, false, true, 0)) {
            List<DriverQueue.Buffer> many = new java.util.ArrayList<>();
            for (int i = 0; i <= RingFixture.INDIRECT_ENTRIES; i++) {
                many.add(buf(data(i), 4));
            }
            assertThrows(IllegalArgumentException.class, () -> f.driver.add(many, List.of(), true));
        }
    }

    @Test
    void anEmptyChainIsRefused() {
        try (RingFixture f = RingFixture.plain(4)) {
            assertThrows(IllegalArgumentException.class, () -> f.driver.add(List.of(), List.of(), false));
        }
    }

    @Test
    void aUsedIdThatIsNotInFlightIsADeviceBug() {
        try (RingFixture f = RingFixture.plain(4)) {
            f.driver.add(List.of(buf(data(0), 4)), List.of(), false);
            f.memory.writeU32(SplitRing.usedElem(f.config.usedGpa(), 4, 0), 3);
            f.memory.writeU16(SplitRing.usedIdx(f.config.usedGpa()), 1);
            IllegalStateException e = assertThrows(IllegalStateException.class, f.driver::pollUsed);
            assertEquals("device returned id 3, which is not an in-flight head", e.getMessage());
        }
    }

    @Test
    void aUsedIdxTooFarAheadIsADeviceBug() {
        try (RingFixture f = RingFixture.plain(4)) {
            f.memory.writeU16(SplitRing.usedIdx(f.config.usedGpa()), 5);
            assertThrows(IllegalStateException.class, f.driver::pollUsed);
        }
    }

    @Test
    void nothingUsedIsNull() {
        try (RingFixture f = RingFixture.plain(4)) {
            assertNull(f.driver.pollUsed());
        }
    }

    @Test
    void buffersAreU32Lengths() {
        assertThrows(IllegalArgumentException.class, () -> buf(0, -1));
        assertThrows(IllegalArgumentException.class, () -> buf(0, 1L << 32));
        assertEquals(0xffff_ffffL, buf(0, 0xffff_ffffL).length());
    }
}
