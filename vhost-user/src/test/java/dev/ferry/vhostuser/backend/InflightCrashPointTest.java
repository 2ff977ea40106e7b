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
            int[] pops = {0};
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
                    Recovery theirs = libvhostUserRecovery(found, usedIdx);
                    assertEquals(held, theirs.resubmit(), "libvhost-user starting at this instant (check " + checks[0]
                            + ", used.idx " + usedIdx + ") resubmits");
                    assertEquals(pops[0] & 0xffff, theirs.lastAvailIdx(),
                            "libvhost-user's last_avail_idx (in use + used.idx) counts every chain popped so far");
                    int[] resubmit = found.pendingHeads(0, usedIdx, SIZE);
                    TreeSet<Integer> got = new TreeSet<>();
                    Arrays.stream(resubmit).forEach(got::add);
                    assertEquals(held, got, "a Ferry back-end starting at this instant (check " + checks[0]
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
                    pops[0]++;
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

    /** What a successor's recovery finds: the heads to resubmit and where it takes the avail ring up. */
    record Recovery(TreeSet<Integer> resubmit, int lastAvailIdx) {
    }

    /**
     * libvhost-user's recovery (QEMU 7.2, {@code vu_check_queue_inflights}), written from its
     * rules over the region's bytes as the specification lays them out, not through
     * {@link InflightRegion}: a region of version 0 is taken as new (nothing in flight); when the
     * region's {@code used_idx} differs from the ring's, the last batch head is no longer in
     * flight; the descriptors still marked are resubmitted; the avail ring resumes at their count
     * plus the ring's used index. So a qemu-storage-daemon that took over from a Ferry back-end
     * would recover the same requests.
     */
    static Recovery libvhostUserRecovery(InflightRegion found, int ringUsedIdx) {
        try (dev.ferry.core.sys.Mapping m = dev.ferry.core.sys.Mapping.shared(found.fd(), 0, found.size())) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate((int) found.size()).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < b.capacity(); i++) {
                b.put(i, dev.ferry.core.sys.NativeMemory.getByte(m.address() + i));
            }
            assertEquals(1, b.getShort(8), "version: 0 would make libvhost-user start afresh, forgetting what is in flight");
            assertEquals(SIZE, b.getShort(10), "desc_num");
            int lastBatchHead = Short.toUnsignedInt(b.getShort(12));
            if (Short.toUnsignedInt(b.getShort(14)) != ringUsedIdx) {
                b.put(16 + lastBatchHead * 16, (byte) 0);
            }
            List<long[]> inflight = new ArrayList<>();
            for (int i = 0; i < SIZE; i++) {
                if (b.get(16 + i * 16) == 1) {
                    inflight.add(new long[] {b.getLong(16 + i * 16 + 8), i});
                }
            }
            TreeSet<Integer> heads = new TreeSet<>();
            inflight.forEach(x -> heads.add((int) x[1]));
            return new Recovery(heads, (inflight.size() + ringUsedIdx) & 0xffff);
        }
    }

    private static void complete(SplitVirtqueue device, DescriptorChain... chains) {
        for (DescriptorChain c : chains) {
            device.push(c, 0);
        }
        device.publish();
    }
}
