package dev.ferry.vmm.bench;

import dev.ferry.core.memory.Gpa;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The disk benchmark measures what it says: the guest driver's requests go through a real
 * virtio-blk device and move the data they name, and both paths visit the same offsets.
 * (No timing here; the numbers come from {@code ferry bench disk}.)
 */
@Timeout(60)
class DiskBenchmarkPathsTest {
    private static final long MiB = 1 << 20;

    @TempDir
    Path dir;

    @Test
    void sequentialWritesThroughTheRingLandInTheImage() throws Exception {
        Path img = RawImageFile.create(dir, "ring-write", 4 * MiB, true, 7);
        try (RingDisk ring = new RingDisk(img, 1, DiskPattern.MiB1, 2)) {
            ring.driver().run(DiskPattern.sequential1m(4 * MiB), 0, 4, true);
            byte[] slot0 = guestBytes(ring, ring.driver().buffer(0), DiskPattern.MiB1);
            for (int block = 0; block < 4; block++) {
                assertArrayEquals(slot0, imageBytes(img, block * MiB, DiskPattern.MiB1), "1 MiB block " + block);
            }
            Map<String, Object> c = ring.counters();
            assertEquals(4L, c.get("requests"));
            assertEquals(4 * MiB, c.get("bytes-written"));
        }
    }

    @Test
    void randomReadsAtDepth32ReturnTheImagesBlocks() throws Exception {
        Path img = RawImageFile.create(dir, "ring-read", 8 * MiB, true, 9);
        DiskPattern p = DiskPattern.random4k(8 * MiB);
        try (RingDisk ring = new RingDisk(img, 32, DiskPattern.MiB1, 2)) {
            ring.driver().run(p, 0, 3000, false);
            Map<String, Object> c = ring.counters();
            assertEquals(3000L, c.get("requests"));
            assertEquals(3000L * 4096, c.get("bytes-read"));
            assertEquals(Map.of("IN", 3000L), c.get("by-type"));
            assertTrue(ring.driver().interrupts() > 0, "completions came with interrupts");
        }
        try (RingDisk ring = new RingDisk(img, 1, DiskPattern.MiB1, 2)) {
            ring.driver().run(p, 12345, 1, false);
            assertArrayEquals(imageBytes(img, p.offset(12345), 4096), guestBytes(ring, ring.driver().buffer(0), 4096));
        }
    }

    @Test
    void patternsStayInsideTheImageAlignedAndRepeatable() {
        DiskPattern r = DiskPattern.random4k(256 * MiB);
        DiskPattern s = DiskPattern.sequential1m(256 * MiB);
        Set<Long> distinct = new HashSet<>();
        for (long i = 0; i < 10_000; i++) {
            long o = r.offset(i);
            assertTrue(o >= 0 && o + 4096 <= 256 * MiB && o % 4096 == 0, "random offset " + o);
            assertEquals(o, r.offset(i));
            distinct.add(o);
        }
        assertTrue(distinct.size() > 9000, "random offsets spread: " + distinct.size() + " distinct of 10000");
        assertEquals(0, s.offset(0));
        assertEquals(255 * MiB, s.offset(255));
        assertEquals(0, s.offset(256), "sequential wraps at the image's end");
    }

    @Test
    void hostBaselineUsesAtMostTheDevicesThreads() throws Exception {
        Path img = RawImageFile.create(dir, "host", 4 * MiB, true, 11);
        try (HostDisk one = new HostDisk(img, 1, 2, DiskPattern.MiB1);
             HostDisk many = new HostDisk(img, 32, 2, DiskPattern.MiB1)) {
            assertEquals(1, one.threads());
            assertEquals(2, many.threads());
            many.run(DiskPattern.random4k(4 * MiB), 0, 1000, false);
            many.run(DiskPattern.sequential1m(4 * MiB), 0, 8, true);
        }
    }

    private static byte[] guestBytes(RingDisk ring, long gpa, int length) {
        byte[] b = new byte[length];
        ring.memory().read(new Gpa(gpa), b, 0, length);
        return b;
    }

    private static byte[] imageBytes(Path img, long offset, int length) throws Exception {
        ByteBuffer b = ByteBuffer.allocate(length);
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ)) {
            while (b.hasRemaining()) {
                ch.read(b, offset + b.position());
            }
        }
        return b.array();
    }
}
