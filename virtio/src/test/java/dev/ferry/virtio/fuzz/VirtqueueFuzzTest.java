package dev.ferry.virtio.fuzz;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.virtio.queue.ChainReader;
import dev.ferry.virtio.queue.ChainWriter;
import dev.ferry.virtio.queue.DescriptorChain;
import dev.ferry.virtio.queue.QueueConfig;
import dev.ferry.virtio.queue.Segment;
import dev.ferry.virtio.queue.SplitVirtqueue;
import dev.ferry.virtio.queue.VirtqueueError;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Fuzz target: the device side of a split virtqueue against a hostile driver that controls every
 * byte of a small guest — descriptor table, avail ring, indirect tables, buffers — and the index
 * the device resumes at. The device pops what is offered, reads every readable byte, fills every
 * writable one and completes each chain. Whatever the bytes: every chain it accepts lies in RAM
 * and within the queue's rules, or the queue ends broken with a {@link VirtqueueError} (the
 * device's NEEDS_RESET) and refuses further work — never another exception.
 */
class VirtqueueFuzzTest {
    private static final long RAM = 64 << 10;
    private static final GuestMemory GUEST = GuestMemory.builder().region("pc.ram", 0, RAM).build();
    private static final DeviceMemory MEMORY = new DeviceMemory(GUEST);

    @FuzzTest(maxDuration = "30s")
    void deviceServesOrBreaks(FuzzedDataProvider data) {
        int size = 1 << data.consumeInt(0, 8);
        boolean eventIdx = data.consumeBoolean();
        boolean indirect = data.consumeBoolean();
        int lastAvail = data.consumeInt(0, 0xffff);
        int used = data.consumeBoolean() ? lastAvail : data.consumeInt(0, 0xffff);
        byte[] guest = data.consumeRemainingAsBytes();
        MEMORY.fill(0, RAM, (byte) 0);
        MEMORY.write(0, guest, 0, (int) Math.min(guest.length, RAM));

        QueueConfig config = QueueConfig.contiguous(size, 0, QueueConfig.features(eventIdx, indirect));
        SplitVirtqueue q = SplitVirtqueue.enable(MEMORY, "fuzz-vq", 0, config);
        try {
            q.restore(lastAvail, used);
        } catch (VirtqueueError e) {
            return; // refused indices: nothing served
        }
        byte[] scratch = new byte[4096];
        try {
            for (int n = 0; n < 2 * size; n++) {
                DescriptorChain c = q.pop();
                if (c == null) {
                    break;
                }
                assertChainInRam(c, size);
                ChainReader r = c.reader();
                while (r.remaining() > 0) {
                    r.readFully(scratch, 0, (int) Math.min(scratch.length, r.remaining()));
                }
                ChainWriter w = c.writer();
                while (w.remaining() > 0) {
                    w.writeFully(scratch, 0, (int) Math.min(scratch.length, w.remaining()));
                }
                q.push(c, w.written());
            }
            q.publish();
            q.shouldNotify();
        } catch (VirtqueueError e) {
            assertTrue(q.isBroken(), "a refused ring leaves the queue broken: " + e.getMessage());
            assertTrue(e.getMessage() != null && e.getMessage().length() > 10, "the refusal says why");
            assertThrows(VirtqueueError.class, q::pop, "a broken queue serves nothing more");
        }
    }

    private static void assertChainInRam(DescriptorChain c, int size) {
        assertTrue(c.head() >= 0 && c.head() < size, "head " + c.head());
        assertTrue(c.descriptorCount() >= 1, c.toString());
        long readable = 0;
        long writable = 0;
        for (List<Segment> l : List.of(c.readable(), c.writable())) {
            for (Segment s : l) {
                assertTrue(MEMORY.isRam(s.gpa(), s.length()), () -> "a segment outside RAM was accepted: " + s);
            }
        }
        for (Segment s : c.readable()) {
            readable += s.length();
        }
        for (Segment s : c.writable()) {
            writable += s.length();
        }
        assertEquals(readable, c.readableBytes());
        assertEquals(writable, c.writableBytes());
    }
}
