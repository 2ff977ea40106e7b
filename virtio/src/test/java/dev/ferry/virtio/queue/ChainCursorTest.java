package dev.ferry.virtio.queue;

import dev.ferry.virtio.queue.DriverQueue.Buffer;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

import static dev.ferry.virtio.queue.RingFixture.buf;
import static dev.ferry.virtio.queue.RingFixture.data;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Reading and writing payload bytes across descriptor boundaries, and the dirty log of device writes. */
class ChainCursorTest {
    /** Segment sizes chosen so that headers straddle boundaries. */
    private static final int[] SIZES = {3, 1, 5, 7, 16};

    private static List<Buffer> buffers(int firstSlot) {
        List<Buffer> b = new ArrayList<>();
        for (int i = 0; i < SIZES.length; i++) {
            b.add(buf(data(firstSlot + i) + 100, SIZES[i])); // each in its own page, off the page start
        }
        return b;
    }

    private static byte[] pattern(int n, int seed) {
        byte[] p = new byte[n];
        for (int i = 0; i < n; i++) {
            p[i] = (byte) (seed + 31 * i);
        }
        return p;
    }

    /** Scatters {@code bytes} into the buffers, as the guest would lay out a request. */
    private static void scatter(RingFixture f, List<Buffer> bufs, byte[] bytes) {
        int off = 0;
        for (Buffer b : bufs) {
            f.memory.write(b.gpa(), bytes, off, (int) b.length());
            off += (int) b.length();
        }
    }

    private static byte[] gather(RingFixture f, List<Buffer> bufs) {
        int total = bufs.stream().mapToInt(b -> (int) b.length()).sum();
        byte[] out = new byte[total];
        int off = 0;
        for (Buffer b : bufs) {
            f.memory.read(b.gpa(), out, off, (int) b.length());
            off += (int) b.length();
        }
        return out;
    }

    @Test
    void theReaderSeesTheReadableBytesAsOneStream() {
        try (RingFixture f = RingFixture.plain(16)) {
            List<Buffer> out = buffers(0);
            byte[] request = pattern(32, 7);
            scatter(f, out, request);
            f.driver.add(out, List.of(buf(data(10), 4)), false);
            DescriptorChain c = f.device.pop();

            ChainReader r = c.reader();
            assertEquals(32, r.remaining());
            byte[] got = new byte[32];
            int off = 0;
            for (int chunk : new int[] {2, 0, 4, 9, 1, 16}) {
                assertEquals(chunk, r.read(got, off, chunk));
                off += chunk;
            }
            assertArrayEquals(request, got);
            assertEquals(0, r.read(got, 0, 5), "at the end");
            assertEquals(32, r.position());
        }
    }

    @Test
    void littleEndianFieldsStraddlingSegments() {
        try (RingFixture f = RingFixture.plain(16)) {
            List<Buffer> out = buffers(0);
            byte[] request = pattern(32, 1);
            scatter(f, out, request);
            f.driver.add(out, List.of(), false);
            ChainReader r = f.device.pop().reader();
            assertEquals(request[0] & 0xff, r.readU8());
            assertEquals((request[1] & 0xff) | (request[2] & 0xff) << 8, r.readU16()); // bytes 1-2: segments 0|0
            r.skip(1); // byte 3 is the whole of segment 1
            java.nio.ByteBuffer le = java.nio.ByteBuffer.wrap(request).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            assertEquals(le.getInt(4), r.readU32());                // 4-7: segment 2
            assertEquals(le.getLong(8), r.readU64());               // 8-15: segments 2|3|4
            assertEquals(16, r.remaining());
            VirtqueueError e = assertThrows(VirtqueueError.class, () -> r.readFully(new byte[17]));
            assertEquals("chain head 0 has 16 device-readable bytes left at offset 16, 17 needed", e.reason());
            assertEquals(16, r.remaining(), "a short readFully consumes nothing");
        }
    }

    @Test
    void theWriterFillsTheWritableBytesInOrderAndNothingElse() {
        try (RingFixture f = RingFixture.plain(16)) {
            List<Buffer> in = buffers(20);
            f.driver.add(List.of(buf(data(0), 8)), in, false);
            DescriptorChain c = f.device.pop();
            long digestOutside = digestAround(f, in);

            ChainWriter w = c.writer();
            assertEquals(32, w.capacity());
            byte[] reply = pattern(32, 99);
            assertEquals(10, w.write(reply, 0, 10));
            w.writeU8(reply[10]);
            w.writeFully(reply, 11, 20);
            assertEquals(31, w.written());
            VirtqueueError e = assertThrows(VirtqueueError.class, () -> w.writeFully(new byte[2]));
            assertEquals("chain head 0 has 1 device-writable bytes left at offset 31, 2 needed", e.reason());
            assertEquals(1, w.write(reply, 31, 1));
            assertEquals(0, w.write(reply, 0, 4), "full");
            assertEquals(32, w.written());
            assertArrayEquals(reply, gather(f, in));
            assertEquals(digestOutside, digestAround(f, in), "bytes next to the buffers are untouched");
            f.device.push(c, w.written());
            f.device.publish();
            assertEquals(32, f.driver.pollUsed().length());
        }
    }

    /** Digest of the 100 bytes before and the 100 after each buffer. */
    private static long digestAround(RingFixture f, List<Buffer> bufs) {
        long h = 0;
        byte[] edge = new byte[100];
        for (Buffer b : bufs) {
            f.memory.read(b.gpa() - 100, edge, 0, 100);
            h = h * 31 + java.util.Arrays.hashCode(edge);
            f.memory.read(b.gpa() + b.length(), edge, 0, 100);
            h = h * 31 + java.util.Arrays.hashCode(edge);
        }
        return h;
    }

    @Test
    void transfersHandOverOnePiecePerSegmentAndStopWhenShort() {
        try (RingFixture f = RingFixture.plain(16)) {
            List<Buffer> in = buffers(0);
            List<Buffer> out = buffers(10);
            f.driver.add(out, in, false);
            DescriptorChain c = f.device.pop();

            List<String> pieces = new ArrayList<>();
            long moved = c.reader().transferTo(Long.MAX_VALUE, (gpa, len, done) -> {
                pieces.add(Long.toHexString(gpa) + "+" + len + "@" + done);
                return len;
            });
            assertEquals(32, moved);
            assertEquals(List.of(
                    Long.toHexString(data(10) + 100) + "+3@0", Long.toHexString(data(11) + 100) + "+1@3",
                    Long.toHexString(data(12) + 100) + "+5@4", Long.toHexString(data(13) + 100) + "+7@9",
                    Long.toHexString(data(14) + 100) + "+16@16"), pieces);

            ChainWriter w = c.writer();
            w.writeU8(0);
            // a file that ends after 6 bytes: the transfer stops at the short piece
            long read = w.transferFrom(100, (gpa, len, done) -> {
                int n = (int) Math.min(len, 6 - done);
                f.memory.fill(gpa, n, (byte) 0x5a);
                return n;
            });
            assertEquals(6, read);
            assertEquals(7, w.written());
        }
    }

    @Test
    void deviceWritesThroughAChainReachTheWriteLog() {
        try (RingFixture f = RingFixture.plain(16)) {
            long straddle = data(30) + 4096 - 4;          // a buffer across two pages
            f.driver.add(List.of(buf(data(0), 64)), List.of(buf(data(29), 16), buf(straddle, 8)), false);
            DescriptorChain c = f.device.pop();
            f.startWriteLog();

            c.reader().readFully(new byte[64]);
            assertEquals(Set.of(), f.dirtyPages(), "reading dirties nothing");

            ChainWriter w = c.writer();
            w.writeFully(new byte[24]);
            f.device.push(c, w.written());
            f.device.publish();
            Set<Long> expected = new TreeSet<>(Set.of(data(29), data(30), data(31)));
            expected.addAll(f.usedRingPages());
            assertEquals(expected, f.dirtyPages(), "the written buffers and the used ring, nothing else");
        }
    }

    @Test
    void aPreadStyleTransferIsLoggedThroughDeviceMemory() {
        try (RingFixture f = RingFixture.plain(16)) {
            f.driver.add(List.of(), List.of(buf(data(40), 4096 * 2)), false);
            DescriptorChain c = f.device.pop();
            f.startWriteLog();
            c.writer().transferFrom(4096 * 2, (gpa, len, done) -> {
                f.memory.write(gpa, new byte[len], 0, len);
                return len;
            });
            assertTrue(f.dirtyPages().containsAll(Set.of(data(40), data(41))));
        }
    }
}
