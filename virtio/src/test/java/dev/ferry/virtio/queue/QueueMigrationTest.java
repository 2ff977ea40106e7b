package dev.ferry.virtio.queue;

import dev.ferry.virtio.queue.DriverQueue.Used;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static dev.ferry.virtio.queue.RingFixture.buf;
import static dev.ferry.virtio.queue.RingFixture.data;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Ring indices across a migration: what the source hands over, QEMU's load-time checks on the
 * destination against the guest RAM that arrived first, and un-popping with rewind.
 */
class QueueMigrationTest {

    private static int add(RingFixture f, int k) {
        return f.driver.add(List.of(buf(data(k), 8)), List.of(buf(data(k) + 8, 8)), false);
    }

    @Test
    void aQueueRestoredFromItsIndicesCarriesOnWithRequestsInFlight() {
        try (RingFixture f = new RingFixture(16, true, false, 65533)) {
            for (int i = 0; i < 6; i++) {
                add(f, i);
            }
            List<DescriptorChain> inFlight = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                inFlight.add(f.device.pop());
            }
            for (int i = 0; i < 2; i++) {
                f.device.push(inFlight.remove(0), 4);
            }
            f.device.publish();
            assertEquals(2, countUsed(f), "the driver collects the two completed at the source");
            // the source stops: 4 popped, not completed
            int lastAvail = f.device.lastAvailIdx();
            assertEquals(3, lastAvail);
            assertEquals(65535, f.device.usedIdx());
            assertEquals(4, f.device.inUse());

            // the destination, on the same RAM
            LoadedQueue l = SplitVirtqueue.validateLoaded(f.memory, "blk0", 0, f.config, lastAvail);
            assertTrue(l.consistent());
            assertEquals(new LoadedQueue(0, 16, 3, 3, 65535, null), l);
            assertEquals(4, l.inUse());
            SplitVirtqueue dst = l.restoreQueue(f.memory, "blk0 vq0", f.config);
            assertEquals(3, dst.lastAvailIdx());
            assertEquals(65535, dst.usedIdx());
            assertNull(dst.pop(), "popped requests are not popped again");

            // the in-flight requests travel as head + segments and complete on the destination
            for (DescriptorChain c : inFlight) {
                dst.push(DescriptorChain.restored(c.head(), c.readable(), c.writable()), 8);
            }
            dst.publish();
            assertTrue(dst.shouldNotify(), "the first notify after a load is unconditional");
            assertEquals(4, countUsed(f));
            add(f, 7);
            assertNotNull(dst.pop());
            assertEquals(1, dst.inUse());
        }
    }

    private static int countUsed(RingFixture f) {
        int n = 0;
        for (Used u; (u = f.driver.pollUsed()) != null; ) {
            n++;
        }
        return n;
    }

    @Test
    void restoreFromGuestReadsUsedIdxFromRam() {
        try (RingFixture f = new RingFixture(8, false, false, 1000)) {
            add(f, 0);
            add(f, 1);
            f.device.pop();
            f.device.push(f.device.pop(), 0);
            f.device.publish();
            SplitVirtqueue dst = new SplitVirtqueue(f.memory, 0, 8, f.config.descGpa(), f.config.availGpa(),
                    f.config.usedGpa(), f.config.features());
            LoadedQueue l = dst.restoreFromGuest(1002);
            assertEquals(1001, l.usedIdx());
            assertEquals(1002, dst.lastAvailIdx());
            assertEquals(1001, dst.usedIdx());
            assertEquals(1, dst.inUse());
        }
    }

    @Test
    void availIdxInconsistentWithLastAvailIdxBreaksTheQueueButTheLoadGoesOn() {
        try (RingFixture f = new RingFixture(8, false, false, 0)) {
            f.rawAvailIdx(0x40);
            LoadedQueue l = SplitVirtqueue.validateLoaded(f.memory, "blk0", 2, f.config, 0x10);
            String msg = "VQ 2 size 0x8 Guest index 0x40 inconsistent with Host index 0x10: delta 0x30";
            assertFalse(l.consistent());
            assertEquals(msg, l.inconsistency());
            SplitVirtqueue q = l.restoreQueue(f.memory, "blk0 vq2", f.config);
            assertTrue(q.isBroken());
            assertEquals(msg, q.brokenReason());

            SplitVirtqueue dst = new SplitVirtqueue(f.memory, 2, 8, f.config.descGpa(), f.config.availGpa(),
                    f.config.usedGpa(), 0);
            VirtqueueError e = assertThrows(VirtqueueError.class, () -> dst.restoreFromGuest(0x10));
            assertFalse(e.fatalOnLoad());
            assertEquals(msg, e.reason());
            assertTrue(dst.isBroken());
            assertEquals(0x10, dst.lastAvailIdx());
        }
    }

    @Test
    void moreInUseThanTheQueueSizeFailsTheLoad() {
        try (RingFixture f = new RingFixture(8, false, false, 2)) {
            f.rawAvailIdx(0x14); // consistent with last_avail_idx: the avail check passes
            VirtqueueError e = assertThrows(VirtqueueError.class,
                    () -> SplitVirtqueue.validateLoaded(f.memory, "blk0", 0, f.config, 0x14));
            assertTrue(e.fatalOnLoad());
            assertEquals("VQ 0 size 0x8 < last_avail_idx 0x14 - used_idx 0x2", e.reason());
            assertEquals("blk0: VQ 0 size 0x8 < last_avail_idx 0x14 - used_idx 0x2", e.getMessage());

            SplitVirtqueue dst = SplitVirtqueue.enable(f.memory, "blk0", 0, f.config);
            VirtqueueError again = assertThrows(VirtqueueError.class, () -> dst.restoreFromGuest(0x14));
            assertTrue(again.fatalOnLoad());
            assertEquals(0, dst.lastAvailIdx(), "a refused load leaves the queue as it was");
            assertFalse(dst.isBroken());
        }
    }

    @Test
    void inUseAcrossTheWrapIsCountedModulo65536() {
        try (RingFixture f = new RingFixture(8, false, false, 65534)) {
            f.rawAvailIdx(3);
            LoadedQueue l = SplitVirtqueue.validateLoaded(f.memory, "blk0", 0, f.config, 3);
            assertTrue(l.consistent());
            assertEquals(5, l.inUse());
            f.device.restore(3, 65534);
            assertEquals(5, f.device.inUse());
        }
    }

    @Test
    void descriptorAddressZeroWithAnIndexFailsTheLoad() {
        try (RingFixture f = RingFixture.plain(8)) {
            QueueConfig unset = new QueueConfig(8, 0, 0, 0, 0);
            VirtqueueError e = assertThrows(VirtqueueError.class,
                    () -> SplitVirtqueue.validateLoaded(f.memory, "net0", 1, unset, 5));
            assertTrue(e.fatalOnLoad());
            assertEquals("VQ 1 address 0x0 inconsistent with Host index 0x5", e.reason());
            LoadedQueue l = SplitVirtqueue.validateLoaded(f.memory, "net0", 1, unset, 0);
            assertTrue(l.unconfigured() && l.consistent());
            assertNull(l.restoreQueue(f.memory, "net0 vq1", unset));
        }
    }

    @Test
    void ringsOutsideRamFailTheLoad() {
        try (RingFixture f = RingFixture.plain(8)) {
            QueueConfig c = new QueueConfig(8, 0x1000, 0x2000, RingFixture.RAM, 0);
            VirtqueueError e = assertThrows(VirtqueueError.class,
                    () -> SplitVirtqueue.validateLoaded(f.memory, "net0", 0, c, 0));
            assertTrue(e.fatalOnLoad());
            assertEquals("VQ 0: used ring [0x1000000, +0x46) is not in RAM", e.reason());
        }
    }

    @Test
    void rewindUnpopsTheLastChainsSoTheyArePoppedAgain() {
        try (RingFixture f = new RingFixture(8, true, false, 65535)) {
            int a = add(f, 0);
            int b = add(f, 1);
            int c = add(f, 2);
            assertEquals(a, f.device.pop().head());
            assertEquals(b, f.device.pop().head());
            assertEquals(c, f.device.pop().head());
            assertEquals(2, f.device.lastAvailIdx());
            assertTrue(f.device.rewind(2));
            assertEquals(0, f.device.lastAvailIdx());
            assertEquals(0, f.memory.readU16(SplitRing.availEvent(f.config.usedGpa(), 8)), "avail_event follows");
            assertEquals(b, f.device.pop().head());
            assertEquals(c, f.device.pop().head());
            assertNull(f.device.pop());
        }
    }

    @Test
    void rewindCannotGoPastWhatIsInFlight() {
        try (RingFixture f = RingFixture.plain(8)) {
            add(f, 0);
            add(f, 1);
            DescriptorChain first = f.device.pop();
            f.device.pop();
            f.device.push(first, 0);
            assertFalse(f.device.rewind(2), "one of the two was pushed already");
            assertFalse(f.device.rewind(-1));
            assertEquals(2, f.device.lastAvailIdx());
            assertTrue(f.device.rewind(1));
            assertEquals(1, f.device.lastAvailIdx());
            assertTrue(f.device.rewind(0));
        }
    }

    @Test
    void aRestoredChainCarriesNoMemoryAndIsCheckedWhenPushed() {
        try (RingFixture f = RingFixture.plain(8)) {
            DescriptorChain r = DescriptorChain.restored(3, List.of(new Segment(data(0), 16)),
                    List.of(new Segment(data(1), 4)));
            assertThrows(IllegalStateException.class, r::reader);
            assertThrows(IllegalStateException.class, r::writer);
            assertThrows(IllegalArgumentException.class, () -> f.device.push(r, 5), "more than its writable bytes");
            assertThrows(IllegalStateException.class, () -> f.device.push(r, 4), "no chain in flight on this queue");
            assertThrows(IllegalArgumentException.class,
                    () -> DescriptorChain.restored(3, List.of(new Segment(data(0), 0)), List.of()));
            assertThrows(IllegalArgumentException.class, () -> DescriptorChain.restored(40000, List.of(), List.of()));
        }
    }

    @Test
    void restoreRejectsIndicesThatAreNotU16() {
        try (RingFixture f = RingFixture.plain(8)) {
            assertThrows(IllegalArgumentException.class, () -> f.device.restore(65536, 0));
            assertThrows(IllegalArgumentException.class, () -> f.device.restore(0, -1));
        }
    }
}
