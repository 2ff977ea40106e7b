package dev.ferry.virtio.queue;

import dev.ferry.virtio.queue.DriverQueue.Buffer;
import dev.ferry.virtio.queue.DriverQueue.Used;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static dev.ferry.virtio.queue.RingFixture.buf;
import static dev.ferry.virtio.queue.RingFixture.data;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A driver and a device exchanging requests through one ring in real guest memory. */
class DriverDeviceTest {

    private static List<Segment> segments(List<Buffer> buffers) {
        List<Segment> s = new ArrayList<>();
        for (Buffer b : buffers) {
            s.add(new Segment(b.gpa(), b.length()));
        }
        return s;
    }

    @Test
    void aRequestAndItsReplyCrossTheRing() {
        try (RingFixture f = RingFixture.plain(8)) {
            byte[] request = "read sector 7".getBytes();
            f.memory.write(data(0), request, 0, request.length);
            int head = f.driver.add(List.of(buf(data(0), request.length)), List.of(buf(data(1), 64)), false);

            DescriptorChain c = f.device.pop();
            assertNotNull(c);
            assertEquals(head, c.head());
            byte[] got = new byte[request.length];
            c.reader().readFully(got);
            assertArrayEquals(request, got);
            ChainWriter w = c.writer();
            w.writeFully("sector 7 data".getBytes());
            f.device.push(c, w.written());
            f.device.publish();
            assertTrue(f.device.shouldNotify());

            Used u = f.driver.pollUsed();
            assertEquals(new Used(head, 13), u);
            byte[] reply = new byte[13];
            f.memory.read(data(1), reply, 0, 13);
            assertEquals("sector 7 data", new String(reply));
            assertNull(f.driver.pollUsed());
            assertNull(f.device.pop());
            assertEquals(8, f.driver.freeDescriptors());
        }
    }

    @Test
    void everyChainLengthAndReadableWritableSplitUpToTheQueueSize() {
        int n = 16;
        try (RingFixture f = RingFixture.plain(n)) {
            int requests = 0;
            for (int len = 1; len <= n; len++) {
                for (int readable = 0; readable <= len; readable++) {
                    List<Buffer> out = new ArrayList<>();
                    List<Buffer> in = new ArrayList<>();
                    for (int k = 0; k < len; k++) {
                        Buffer b = buf(data(k) + k, 1 + 37 * k);
                        (k < readable ? out : in).add(b);
                    }
                    int head = f.driver.add(out, in, false);
                    assertEquals(n - len, f.driver.freeDescriptors());
                    DescriptorChain c = f.device.pop();
                    assertEquals(head, c.head());
                    assertEquals(len, c.descriptorCount());
                    assertFalse(c.indirect());
                    assertEquals(segments(out), c.readable());
                    assertEquals(segments(in), c.writable());
                    assertEquals(out.stream().mapToLong(Buffer::length).sum(), c.readableBytes());
                    assertEquals(in.stream().mapToLong(Buffer::length).sum(), c.writableBytes());
                    f.device.push(c, c.writableBytes());
                    f.device.publish();
                    assertEquals(new Used(head, c.writableBytes()), f.driver.pollUsed());
                    assertEquals(n, f.driver.freeDescriptors());
                    requests++;
                }
            }
            assertEquals((n + 1) * (n + 2) / 2 - 1, requests);
            assertEquals(requests, f.device.lastAvailIdx());
            assertEquals(requests, f.device.usedIdx());
            assertEquals(requests, f.usedIdxInRam());
        }
    }

    @Test
    void aChainOfTheFullQueueSizeIsAccepted() {
        int n = SplitRing.MAX_SIZE;
        try (RingFixture f = new RingFixture(n, 0, 0, RingFixture.RAM)) {
            List<Buffer> out = new ArrayList<>();
            for (int k = 0; k < n; k++) {
                out.add(buf(data(0) + (k % 4096), 1));
            }
            int head = f.driver.add(out, List.of(), false);
            DescriptorChain c = f.device.pop();
            assertEquals(head, c.head());
            assertEquals(n, c.descriptorCount());
            assertEquals(n, c.readableBytes());
        }
    }

    @Test
    void theWholeQueueCanBeInFlightAsSingleDescriptorChains() {
        int n = 64;
        try (RingFixture f = RingFixture.plain(n)) {
            for (int i = 0; i < n; i++) {
                f.driver.add(List.of(), List.of(buf(data(i), 512)), false);
            }
            assertEquals(0, f.driver.freeDescriptors());
            List<DescriptorChain> chains = new ArrayList<>();
            for (DescriptorChain c; (c = f.device.pop()) != null; ) {
                chains.add(c);
            }
            assertEquals(n, chains.size());
            assertEquals(n, f.device.inUse());
            // complete them out of order: the used ring carries ids, not positions
            for (int i = n - 1; i >= 0; i--) {
                f.device.push(chains.get(i), i);
            }
            f.device.publish();
            for (int i = n - 1; i >= 0; i--) {
                assertEquals(new Used(chains.get(i).head(), i), f.driver.pollUsed());
            }
            assertEquals(0, f.device.inUse());
            assertEquals(n, f.driver.freeDescriptors());
        }
    }

    @Test
    void indirectChainsOfEveryLengthUpToTheTable() {
        try (RingFixture f = new RingFixture(16, false, true, 0)) {
            for (int len = 1; len <= RingFixture.INDIRECT_ENTRIES; len++) {
                int readable = len / 3;
                List<Buffer> out = new ArrayList<>();
                List<Buffer> in = new ArrayList<>();
                for (int k = 0; k < len; k++) {
                    (k < readable ? out : in).add(buf(data(k), 100 + k));
                }
                int head = f.driver.add(out, in, true);
                assertEquals(15, f.driver.freeDescriptors(), "an indirect chain takes one ring descriptor");
                DescriptorChain c = f.device.pop();
                assertEquals(head, c.head());
                assertTrue(c.indirect());
                assertEquals(len + 1, c.descriptorCount());
                assertEquals(segments(out), c.readable());
                assertEquals(segments(in), c.writable());
                f.device.push(c, 0);
                f.device.publish();
                assertEquals(new Used(head, 0), f.driver.pollUsed());
            }
        }
    }

    @Test
    void directAndIndirectChainsInterleave() {
        try (RingFixture f = new RingFixture(8, true, true, 0)) {
            int a = f.driver.add(List.of(buf(data(0), 16)), List.of(buf(data(1), 1)), true);
            int b = f.driver.add(List.of(buf(data(2), 16), buf(data(3), 8)), List.of(buf(data(4), 1)), false);
            int c = f.driver.add(List.of(buf(data(5), 16)), List.of(buf(data(6), 1)), true);
            assertEquals(8 - 1 - 3 - 1, f.driver.freeDescriptors());
            DescriptorChain ca = f.device.pop();
            DescriptorChain cb = f.device.pop();
            DescriptorChain cc = f.device.pop();
            assertTrue(ca.indirect() && !cb.indirect() && cc.indirect());
            assertEquals(List.of(a, b, c), List.of(ca.head(), cb.head(), cc.head()));
            f.device.push(cb, 1);
            f.device.push(ca, 1);
            f.device.push(cc, 1);
            f.device.publish();
            assertEquals(b, f.driver.pollUsed().id());
            assertEquals(a, f.driver.pollUsed().id());
            assertEquals(c, f.driver.pollUsed().id());
            assertEquals(8, f.driver.freeDescriptors());
        }
    }

    @Test
    void pushedElementsStayInvisibleUntilOnePublish() {
        try (RingFixture f = RingFixture.plain(8)) {
            int[] heads = new int[3];
            for (int i = 0; i < 3; i++) {
                heads[i] = f.driver.add(List.of(), List.of(buf(data(i), 8)), false);
            }
            for (int i = 0; i < 3; i++) {
                f.device.push(f.device.pop(), i + 1);
            }
            assertEquals(3, f.device.pendingUsed());
            assertNull(f.driver.pollUsed(), "nothing is visible before publish");
            assertEquals(0, f.usedIdxInRam());
            f.device.publish();
            assertEquals(3, f.usedIdxInRam());
            assertTrue(f.device.shouldNotify());
            for (int i = 0; i < 3; i++) {
                assertEquals(new Used(heads[i], i + 1), f.driver.pollUsed());
            }
            assertNull(f.driver.pollUsed());
            f.device.publish();
            assertEquals(3, f.usedIdxInRam(), "an empty publish changes nothing");
        }
    }

    /** A guest that has run a long time: indices from 65530 through the wrap, random chains and batches. */
    @Test
    void thousandsOfRequestsThroughTheIndexWrap() {
        for (boolean eventIdx : new boolean[] {false, true}) {
            try (RingFixture f = new RingFixture(32, eventIdx, true, 65530)) {
                SplittableRandom rnd = new SplittableRandom(eventIdx ? 29 : 28);
                long completed = 0;
                int seq = 0;
                List<byte[]> expected = Arrays.asList(new byte[32][]);
                while (completed < 5000) {
                    int batch = 1 + rnd.nextInt(6);
                    for (int i = 0; i < batch && f.driver.freeDescriptors() >= 4; i++) {
                        int len = 1 + rnd.nextInt(4);
                        boolean indirect = rnd.nextInt(3) == 0;
                        List<Buffer> out = new ArrayList<>();
                        byte[] payload = ("request " + seq++).getBytes();
                        f.memory.write(data(seq % 1000), payload, 0, payload.length);
                        out.add(buf(data(seq % 1000), payload.length));
                        List<Buffer> in = new ArrayList<>();
                        for (int k = 1; k < len; k++) {
                            in.add(buf(data(1000 + (seq % 1000)) + 16 * k, 16));
                        }
                        if (in.isEmpty()) {
                            in.add(buf(data(1000 + (seq % 1000)), 16));
                        }
                        int head = f.driver.add(out, in, indirect);
                        expected.set(head, payload);
                    }
                    int served = 0;
                    for (DescriptorChain c; (c = f.device.pop()) != null; ) {
                        byte[] got = new byte[(int) c.readableBytes()];
                        c.reader().readFully(got);
                        assertArrayEquals(expected.get(c.head()), got);
                        f.device.push(c, c.writableBytes());
                        if (rnd.nextInt(3) == 0) {
                            f.device.publish();
                        }
                        served++;
                    }
                    f.device.publish();
                    for (Used u; (u = f.driver.pollUsed()) != null; ) {
                        completed++;
                        served--;
                    }
                    assertEquals(0, served, "every request popped was completed and collected");
                    assertEquals(f.driver.availIdx(), f.device.lastAvailIdx());
                    assertEquals(f.driver.lastUsedIdx(), f.device.usedIdx());
                }
                assertEquals(32, f.driver.freeDescriptors());
                assertTrue(completed >= 5000);
                assertEquals((65530 + completed) & 0xffff, f.device.usedIdx(), "indices wrapped at 65536");
                assertEquals(f.device.usedIdx(), f.usedIdxInRam());
            }
        }
    }
}
