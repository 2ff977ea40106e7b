package dev.ferry.virtio.queue;

import org.junit.jupiter.api.Test;

import java.util.List;

import static dev.ferry.virtio.queue.RingFixture.buf;
import static dev.ferry.virtio.queue.RingFixture.data;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link SplitVirtqueue#resubmit}: chains a previous device instance held come back first, then the ring goes on. */
class ResubmitTest {
    @Test
    void resubmittedHeadsComeFirstAndCountAsInFlight() {
        try (RingFixture f = RingFixture.plain(8)) {
            int a = f.driver.add(List.of(buf(data(0), 16)), List.of(buf(data(1), 16)), false);
            int b = f.driver.add(List.of(buf(data(2), 16)), List.of(buf(data(3), 16)), false);
            int c = f.driver.add(List.of(buf(data(4), 16)), List.of(buf(data(5), 16)), false);
            // a fresh device instance: nothing published yet, the predecessor held b then a
            f.device.restore(0, 0);
            f.device.resubmit(new int[] {b, a});
            assertEquals(2, f.device.lastAvailIdx(), "used 0 + 2 held");
            assertEquals(2, f.device.inFlight());
            assertEquals(b, f.device.pop().head());
            assertEquals(a, f.device.pop().head());
            assertEquals(c, f.device.pop().head(), "then the ring from last_avail_idx");
            assertNull(f.device.pop());
        }
    }

    @Test
    void outOfRangeOrRepeatedHeadsBreakTheQueue() {
        try (RingFixture f = RingFixture.plain(8)) {
            assertThrows(VirtqueueError.class, () -> f.device.resubmit(new int[] {8}));
            assertTrue(f.device.isBroken());
        }
        try (RingFixture f = RingFixture.plain(8)) {
            assertThrows(VirtqueueError.class, () -> f.device.resubmit(new int[] {1, 1}));
            assertTrue(f.device.isBroken());
        }
    }
}
