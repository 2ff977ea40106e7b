package dev.ferry.virtio.queue;

import org.junit.jupiter.api.Test;

import java.util.Set;

import static dev.ferry.virtio.queue.RingFixture.POOL;
import static dev.ferry.virtio.queue.RingFixture.RAM;
import static dev.ferry.virtio.queue.RingFixture.data;
import static dev.ferry.virtio.queue.SplitRing.DESC_F_INDIRECT;
import static dev.ferry.virtio.queue.SplitRing.DESC_F_NEXT;
import static dev.ferry.virtio.queue.SplitRing.DESC_F_WRITE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A hostile driver writes the rings by hand. Every refusal names what was wrong, breaks the
 * queue, leaves the indices as they were, and writes nothing at all to guest memory (digest and
 * write log unchanged — stronger than "nothing outside the used ring"). EVENT_IDX is negotiated,
 * so a pop that wrongly went ahead would show as a write of {@code avail_event}.
 */
class HostileRingTest {
    private static final long ALL = QueueConfig.features(true, true);

    private static RingFixture ring(int size) {
        return new RingFixture(size, ALL, 0, RAM);
    }

    private static void refused(RingFixture f, String reason) {
        long digest = f.digest();
        int lastAvail = f.device.lastAvailIdx();
        int used = f.device.usedIdx();
        f.startWriteLog();
        VirtqueueError e = assertThrows(VirtqueueError.class, f.device::pop);
        assertEquals(reason, e.reason());
        assertEquals("test-vq0: " + reason, e.getMessage());
        assertEquals(Set.of(), f.dirtyPages(), "a refused chain writes nothing");
        assertEquals(digest, f.digest(), "guest memory unchanged");
        assertEquals(lastAvail, f.device.lastAvailIdx());
        assertEquals(used, f.device.usedIdx());
        assertTrue(f.device.isBroken());
        assertEquals(reason, f.device.brokenReason());
        VirtqueueError again = assertThrows(VirtqueueError.class, f.device::pop);
        assertEquals("queue is broken (" + reason + "); the driver must reset the device", again.reason());
    }

    // ---- the available ring ----

    @Test
    void availIdxMoreThanTheQueueSizeAhead() {
        try (RingFixture f = new RingFixture(256, ALL, 0x0f34, RAM)) {
            f.rawAvailIdx(0x1234);
            refused(f, "avail.idx 0x1234 is 0x300 ahead of last_avail_idx 0x0f34 in a queue of 256");
        }
    }

    @Test
    void availIdxBehindLastAvailIdxLooksFarAhead() {
        try (RingFixture f = new RingFixture(8, ALL, 10, RAM)) {
            f.rawAvailIdx(9); // the driver moved avail.idx backwards
            refused(f, "avail.idx 0x0009 is 0xffff ahead of last_avail_idx 0x000a in a queue of 8");
        }
    }

    @Test
    void headIndexNotBelowTheQueueSize() {
        try (RingFixture f = ring(8)) {
            f.rawOffer(8);
            refused(f, "avail.ring[0] (avail index 0x0000) names head 8, not below the queue size 8");
        }
    }

    @Test
    void moreChainsInFlightThanTheQueueHolds() {
        try (RingFixture f = ring(4)) {
            for (int i = 0; i < 4; i++) {
                f.rawDesc(i, data(i), 16, 0, 0);
                f.rawOffer(i);
                assertNotNull(f.device.pop());
            }
            f.rawOffer(0); // head 0 again while it is still in flight
            refused(f, "4 chains are already in flight in a queue of 4 and the driver offers more (Virtqueue size exceeded)");
        }
    }

    // ---- direct descriptors ----

    @Test
    void nextIndexNotBelowTheQueueSize() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(0, data(0), 16, DESC_F_NEXT, 9);
            f.rawOffer(0);
            refused(f, "descriptor 0 (head 0): next 9 is beyond the queue size 8");
        }
    }

    @Test
    void bufferOutsideRam() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(2, RAM, 16, 0, 0);
            f.rawOffer(2);
            refused(f, "descriptor 2 (head 2): buffer [0x1000000, +0x10) is not in RAM");
        }
    }

    @Test
    void bufferCrossingTheEndOfRam() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(0, RAM - 8, 16, DESC_F_WRITE, 0);
            f.rawOffer(0);
            refused(f, "descriptor 0 (head 0): buffer [0xfffff8, +0x10) is not in RAM");
        }
    }

    @Test
    void bufferWrappingPastTheEndOfTheAddressSpace() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(0, 0xffff_ffff_ffff_fff0L, 0x20, 0, 0);
            f.rawOffer(0);
            refused(f, "descriptor 0 (head 0): buffer [0xfffffffffffffff0, +0x20) wraps past the end of the address space");
        }
    }

    @Test
    void zeroLengthBuffer() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(0, data(0), 16, DESC_F_NEXT, 1);
            f.rawDesc(1, data(1), 0, 0, 0);
            f.rawOffer(0);
            refused(f, "descriptor 1 (head 0) has length 0 (zero-sized buffers are not allowed)");
        }
    }

    @Test
    void chainThatLoops() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(0, data(0), 16, DESC_F_NEXT, 1);
            f.rawDesc(1, data(1), 16, DESC_F_NEXT, 2);
            f.rawDesc(2, data(2), 16, DESC_F_NEXT, 0);
            f.rawOffer(0);
            refused(f, "descriptor chain from head 0 loops or is longer than the queue size 8");
        }
    }

    @Test
    void descriptorThatIsItsOwnNext() {
        try (RingFixture f = ring(32768)) {
            f.rawDesc(5, data(0), 16, DESC_F_NEXT, 5);
            f.rawOffer(5);
            refused(f, "descriptor chain from head 5 loops or is longer than the queue size 32768");
        }
    }

    @Test
    void readableDescriptorAfterAWritableOne() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(0, data(0), 16, DESC_F_NEXT, 1);
            f.rawDesc(1, data(1), 16, DESC_F_WRITE | DESC_F_NEXT, 2);
            f.rawDesc(2, data(2), 16, 0, 0);
            f.rawOffer(0);
            refused(f, "descriptor 2 (head 0) is device-readable after a device-writable descriptor"
                    + " (Incorrect order for descriptors)");
        }
    }

    @Test
    void chainLongerThanAU32LengthCanHold() {
        long twoGib = 0x8000_0000L;
        try (RingFixture f = new RingFixture(8, ALL, 0, RingFixture.DATA + twoGib)) {
            f.rawDesc(0, RingFixture.DATA, twoGib, DESC_F_NEXT, 1);
            f.rawDesc(1, RingFixture.DATA, twoGib - 1, DESC_F_NEXT, 2);
            f.rawDesc(2, RingFixture.DATA, 1, DESC_F_WRITE, 0);
            f.rawOffer(0);
            refused(f, "chain from head 0 is 4294967296 bytes at descriptor 2 (head 0), more than a u32 length can hold");
        }
    }

    // ---- indirect tables ----

    @Test
    void indirectWithoutTheFeature() {
        try (RingFixture f = new RingFixture(8, QueueConfig.features(true, false), 0, RAM)) {
            f.rawDesc(0, POOL, 32, DESC_F_INDIRECT, 0);
            f.rawOffer(0);
            refused(f, "descriptor 0 (head 0) has INDIRECT but VIRTIO_RING_F_INDIRECT_DESC was not negotiated");
        }
    }

    @Test
    void indirectTogetherWithNext() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(POOL, 0, data(0), 16, 0, 0);
            f.rawDesc(0, POOL, 16, DESC_F_INDIRECT | DESC_F_NEXT, 1);
            f.rawDesc(1, data(1), 16, 0, 0);
            f.rawOffer(0);
            refused(f, "descriptor 0 (head 0) has both INDIRECT and NEXT");
        }
    }

    @Test
    void indirectTableOfLengthZero() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(0, POOL, 0, DESC_F_INDIRECT, 0);
            f.rawOffer(0);
            refused(f, "descriptor 0 (head 0): indirect table length 0 is not a non-zero multiple of 16");
        }
    }

    @Test
    void indirectTableLengthNotAMultipleOf16() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(0, POOL, 24, DESC_F_INDIRECT, 0);
            f.rawOffer(0);
            refused(f, "descriptor 0 (head 0): indirect table length 24 is not a non-zero multiple of 16");
        }
    }

    @Test
    void indirectTableOfMoreThan32768Entries() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(0, POOL, 32769L * 16, DESC_F_INDIRECT, 0);
            f.rawOffer(0);
            refused(f, "descriptor 0 (head 0): indirect table of 32769 entries exceeds 32768");
        }
    }

    @Test
    void indirectTableOutsideRam() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(0, RAM - 16, 32, DESC_F_INDIRECT, 0);
            f.rawOffer(0);
            refused(f, "descriptor 0 (head 0): indirect table [0xfffff0, +0x20) is not in RAM");
        }
    }

    @Test
    void indirectTableInsideAnIndirectTable() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(POOL, 0, data(0), 16, DESC_F_NEXT, 1);
            f.rawDesc(POOL, 1, POOL + 0x1000, 16, DESC_F_INDIRECT, 0);
            f.rawDesc(0, POOL, 32, DESC_F_INDIRECT, 0);
            f.rawOffer(0);
            refused(f, "indirect descriptor 1 of head 0 has INDIRECT: an indirect table inside an indirect table");
        }
    }

    @Test
    void indirectTableThatLoops() {
        try (RingFixture f = ring(8)) {
            for (int i = 0; i < 4; i++) {
                f.rawDesc(POOL, i, data(i), 16, DESC_F_NEXT, (i + 1) % 3);
            }
            f.rawDesc(0, POOL, 64, DESC_F_INDIRECT, 0);
            f.rawOffer(0);
            refused(f, "indirect table of head 0 loops: more than its 4 entries chained");
        }
    }

    @Test
    void indirectNextBeyondTheTable() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(POOL, 0, data(0), 16, DESC_F_NEXT, 4);
            f.rawDesc(0, POOL, 64, DESC_F_INDIRECT, 0);
            f.rawOffer(0);
            refused(f, "indirect descriptor 0 of head 0: next 4 is beyond the indirect table's 4 entries");
        }
    }

    @Test
    void indirectBufferOutsideRam() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(POOL, 0, data(0), 16, DESC_F_NEXT, 1);
            f.rawDesc(POOL, 1, RAM + 0x1000, 16, DESC_F_WRITE, 0);
            f.rawDesc(0, POOL, 32, DESC_F_INDIRECT, 0);
            f.rawOffer(0);
            refused(f, "indirect descriptor 1 of head 0: buffer [0x1001000, +0x10) is not in RAM");
        }
    }

    @Test
    void readableIndirectDescriptorAfterAWritableDirectOne() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(0, data(0), 16, DESC_F_WRITE | DESC_F_NEXT, 1);
            f.rawDesc(1, POOL, 16, DESC_F_INDIRECT, 0);
            f.rawDesc(POOL, 0, data(1), 16, 0, 0);
            f.rawOffer(0);
            refused(f, "indirect descriptor 0 of head 0 is device-readable after a device-writable descriptor"
                    + " (Incorrect order for descriptors)");
        }
    }

    // ---- what is allowed, for contrast ----

    @Test
    void directDescriptorsEndingInAnIndirectTableAreAccepted() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(3, data(0), 16, DESC_F_NEXT, 6);
            f.rawDesc(6, POOL, 32, DESC_F_INDIRECT | DESC_F_WRITE, 0); // WRITE on an indirect descriptor is ignored
            f.rawDesc(POOL, 0, data(1), 16, DESC_F_NEXT, 1);
            f.rawDesc(POOL, 1, data(2), 8, DESC_F_WRITE, 0);
            f.rawOffer(3);
            DescriptorChain c = f.device.pop();
            assertEquals(3, c.head());
            assertEquals(4, c.descriptorCount());
            assertTrue(c.indirect());
            assertEquals(java.util.List.of(new Segment(data(0), 16), new Segment(data(1), 16)), c.readable());
            assertEquals(java.util.List.of(new Segment(data(2), 8)), c.writable());
        }
    }

    @Test
    void aBrokenQueueRefusesEveryOperationUntilReset() {
        try (RingFixture f = ring(8)) {
            f.rawDesc(0, data(0), 16, 0, 0);
            f.rawOffer(0);
            DescriptorChain good = f.device.pop();
            f.rawOffer(9);
            assertThrows(VirtqueueError.class, f.device::pop);
            long digest = f.digest();
            assertThrows(VirtqueueError.class, () -> f.device.push(good, 0));
            assertThrows(VirtqueueError.class, f.device::publish);
            assertThrows(VirtqueueError.class, f.device::shouldNotify);
            assertThrows(VirtqueueError.class, () -> f.device.setNotificationEnabled(true));
            assertEquals(digest, f.digest());
            // the driver resets the device; the transport enables a fresh queue
            SplitVirtqueue fresh = SplitVirtqueue.enable(f.memory, "test-vq0", 0, f.config);
            assertEquals(false, fresh.isBroken());
        }
    }
}
