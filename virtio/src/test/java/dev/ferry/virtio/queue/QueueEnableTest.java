package dev.ferry.virtio.queue;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.memory.GuestMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** What {@link SplitVirtqueue#enable} refuses when the driver sets a queue ready. */
class QueueEnableTest {
    private static final long RAM = 1 << 20;
    private final GuestMemory guest = GuestMemory.builder().region("pc.ram", 0, RAM).build();
    private final DeviceMemory memory = new DeviceMemory(guest);

    @AfterEach
    void close() {
        guest.close();
    }

    private void refused(QueueConfig c, String reason) {
        VirtqueueError e = assertThrows(VirtqueueError.class, () -> SplitVirtqueue.enable(memory, "blk0 vq0", 0, c));
        assertEquals(reason, e.reason());
        assertEquals("blk0 vq0: " + reason, e.getMessage());
    }

    @Test
    void aWellPlacedQueueStartsAtIndexZero() {
        SplitVirtqueue q = SplitVirtqueue.enable(memory, "blk0 vq0", 0, QueueConfig.contiguous(256, 0x1000, 0));
        assertEquals(0, q.lastAvailIdx());
        assertEquals(0, q.usedIdx());
        assertEquals(0, q.inUse());
        assertEquals(null, q.pop());
    }

    @Test
    void theTransportFormNamesTheQueueByIndex() {
        SplitVirtqueue q = new SplitVirtqueue(memory, 3, 8, 0x1000, 0x1080, 0x10a0, 0);
        assertEquals("vq3", q.name());
        assertEquals(3, q.index());
        VirtqueueError e = assertThrows(VirtqueueError.class, () -> new SplitVirtqueue(memory, 2, 8, 0x1004, 0x1080, 0x10a0, 0));
        assertEquals("vq2: descriptor table at 0x1004 is not 16-byte aligned", e.getMessage());
    }

    @Test
    void sizeMustBeAPowerOfTwoUpTo32768() {
        for (int n : new int[] {0, 3, 255, 65536, -1}) {
            refused(new QueueConfig(n, 0x1000, 0x20000, 0x30000, 0),
                    "queue size " + n + " is not a power of two from 1 to 32768");
        }
    }

    @Test
    void descriptorTableMustBe16ByteAligned() {
        refused(new QueueConfig(8, 0x1008, 0x2000, 0x3000, 0), "descriptor table at 0x1008 is not 16-byte aligned");
    }

    @Test
    void availRingMustBe2ByteAligned() {
        refused(new QueueConfig(8, 0x1000, 0x2001, 0x3000, 0), "available ring at 0x2001 is not 2-byte aligned");
    }

    @Test
    void usedRingMustBe4ByteAligned() {
        refused(new QueueConfig(8, 0x1000, 0x2000, 0x3002, 0), "used ring at 0x3002 is not 4-byte aligned");
    }

    @Test
    void descriptorTableMustBeInRam() {
        refused(new QueueConfig(8, 0x100000, 0x2000, 0x3000, 0), "descriptor table [0x100000, +0x80) is not in RAM");
    }

    @Test
    void availRingMustNotCrossTheEndOfRam() {
        long avail = RAM - 16;
        refused(new QueueConfig(8, 0x1000, avail, 0x3000, 0), "available ring [0xffff0, +0x16) is not in RAM");
    }

    @Test
    void usedRingMustBeInRam() {
        refused(new QueueConfig(8, 0x1000, 0x2000, 0xffff_ffff_ffff_f000L, 0),
                "used ring [0xfffffffffffff000, +0x46) is not in RAM");
    }
}
