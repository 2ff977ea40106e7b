package dev.ferry.vhostuser.backend;

import dev.ferry.core.memory.DeviceMemory;
import dev.ferry.core.memory.GuestMemory;
import dev.ferry.virtio.queue.DescriptorChain;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.QueueConfig;
import dev.ferry.virtio.queue.QueueObserver;
import dev.ferry.virtio.queue.SplitRing;
import dev.ferry.virtio.queue.SplitVirtqueue;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The inflight region tells a successor the truth whatever instant the back-end dies at: the
 * test stops the world before and after every step the queue reports (pop, and each completion's
 * two halves), takes a snapshot of the region as a successor would find it, runs the
 * specification's recovery on it against the ring's {@code used.idx} in guest memory, and requires
 * the heads it would resubmit to be exactly those popped and not yet visible to the driver — none
 * lost (a request the guest waits for forever) and none visible (completed twice). Completions
 * come in batches, as a device serving several requests per wake-up makes them.
 */
class InflightCrashPointTest {
    private static final int SIZE = 16;

    @Test
    void everyInstantOfPopsAndBatchedCompletionsRecoversExactlyTheHeldRequests() {
        try (GuestMemory guest = GuestMemory.builder().region("pc.ram", 0, 1 << 20).build();
             InflightRegion region = InflightRegion.create(1, SIZE)) {
            DeviceMemory memory = new DeviceMemory(guest);
            QueueConfig config = QueueConfig.contiguous(SIZE, 0x1000, 0);
            DriverQueue driver = DriverQueue.builder(memory, config).build();
            SplitVirtqueue device = SplitVirtqueue.enable(memory, "vq0", 0, config);
            TreeSet<Integer> popped = new TreeSet<>();
            int[] checks = {0};
            Runnable crashHere = () -> {
                checks[0]++;
                int usedIdx = memory.readU16(SplitRing.usedIdx(config.usedGpa()));
                TreeSet<Integer> visible = new TreeSet<>();
                for (int i = 0; i < usedIdx; i++) {
                    visible.add(memory.readU32(SplitRing.usedElem(config.usedGpa(), SIZE, i)));
                }
                TreeSet<Integer> held = new TreeSet<>(popped);
                held.removeAll(visible);
                try (InflightRegion found = region.snapshot()) {
                    int[] resubmit = found.pendingHeads(0, usedIdx, SIZE);
                    TreeSet<Integer> got = new TreeSet<>();
                    Arrays.stream(resubmit).forEach(got::add);
                    assertEquals(held, got, "a successor starting at this instant (check " + checks[0]
                            + ", used.idx " + usedIdx + ") resubmits");
                }
            };
            QueueObserver tracker = region.tracker(0, SIZE);
            device.observe(new QueueObserver() {
                @Override
                public void popped(int head) {
                    crashHere.run();
                    tracker.popped(head);
                    popped.add(head);
                    crashHere.run();
                }

                @Override
                public void beforePut(int head) {
                    crashHere.run();
                    tracker.beforePut(head);
                    crashHere.run();
                }

                @Override
                public void afterPut(int head, int usedIdx) {
                    crashHere.run(); // the used element is visible, the region not yet told
                    tracker.afterPut(head, usedIdx);
                    crashHere.run();
                }
            });

            for (int k = 0; k < 6; k++) {
                driver.add(List.of(new DriverQueue.Buffer(0x10000 + k * 512L, 16)),
                        List.of(new DriverQueue.Buffer(0x20000 + k * 512L, 16)), false);
            }
            List<DescriptorChain> held = new ArrayList<>();
            for (int k = 0; k < 4; k++) {
                held.add(device.pop());
            }
            // a batch of two out of order, then the rest with two more popped in between
            complete(device, held.remove(2), held.remove(0));
            held.add(device.pop());
            held.add(device.pop());
            complete(device, held.toArray(new DescriptorChain[0]));
            assertEquals(6, memory.readU16(SplitRing.usedIdx(config.usedGpa())));
            assertTrue(checks[0] >= 3 * 2 * 6, "every step was checked: " + checks[0]);
        }
    }

    private static void complete(SplitVirtqueue device, DescriptorChain... chains) {
        for (DescriptorChain c : chains) {
            device.push(c, 0);
        }
        device.publish();
    }
}
