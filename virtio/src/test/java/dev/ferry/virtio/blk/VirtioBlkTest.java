package dev.ferry.virtio.blk;

import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.SplitRing;
import dev.ferry.virtio.transport.MmioGuest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static dev.ferry.virtio.blk.DiskFixture.Done;
import static dev.ferry.virtio.blk.DiskFixture.S_IOERR;
import static dev.ferry.virtio.blk.DiskFixture.S_OK;
import static dev.ferry.virtio.blk.DiskFixture.S_UNSUPP;
import static dev.ferry.virtio.blk.DiskFixture.T_DISCARD;
import static dev.ferry.virtio.blk.DiskFixture.T_FLUSH;
import static dev.ferry.virtio.blk.DiskFixture.T_GET_ID;
import static dev.ferry.virtio.blk.DiskFixture.T_IN;
import static dev.ferry.virtio.blk.DiskFixture.T_OUT;
import static dev.ferry.virtio.blk.DiskFixture.T_WRITE_ZEROES;
import static dev.ferry.virtio.blk.DiskFixture.run;
import static dev.ferry.virtio.transport.MmioGuest.buf;
import static dev.ferry.virtio.transport.MmioGuest.data;
import static dev.ferry.virtio.transport.MmioGuest.small;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * virtio-blk requests as a driver sends them (blk/description.tex, QEMU virtio-blk.c): each type
 * through the ring, with the image file and guest RAM checked byte for byte afterwards; bad
 * requests complete with IOERR or UNSUPP and change nothing; a chain without its headers breaks
 * the device.
 */
@Timeout(60)
class VirtioBlkTest {
    static final int IMAGE = 1 << 20;
    static final long SECTORS = IMAGE / 512;

    @TempDir
    Path dir;
    Path img;
    byte[] expected;
    MmioGuest g;
    DriverQueue q;

    @BeforeEach
    void setUp() throws Exception {
        img = DiskFixture.image(dir, "disk.img", IMAGE);
        expected = Files.readAllBytes(img);
        g = DiskFixture.disk(img, Map.of("serial", "ferry-serial-0042"), false);
        q = g.bringUp(DiskFixture.FEATURES, 64);
    }

    @AfterEach
    void tearDown() {
        g.close();
    }

    void assertImage() throws Exception {
        byte[] now = Files.readAllBytes(img);
        if (!Arrays.equals(expected, now)) {
            int i = Arrays.mismatch(expected, now);
            throw new AssertionError("image differs from byte " + i + " (sector " + i / 512 + ")");
        }
    }

    static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    @Test
    void inReadsSectorsAndReportsDataPlusStatus() throws Exception {
        Done d = run(g, q, T_IN, 5, List.of(), List.of(buf(data(0), 1024)));
        assertEquals(new Done(S_OK, 1025), d, "used len = data bytes + the status byte");
        assertArrayEquals(Arrays.copyOfRange(expected, 5 * 512, 7 * 512), g.readBytes(data(0), 1024));
    }

    @Test
    void outLandsAtSectorTimes512() throws Exception {
        byte[] b = random(2048, 1);
        g.writeBytes(data(0), b);
        assertEquals(new Done(S_OK, 1), run(g, q, T_OUT, 7, List.of(buf(data(0), 2048)), List.of()));
        System.arraycopy(b, 0, expected, 7 * 512, 2048);
        assertImage();
    }

    @Test
    void flushCompletes() throws Exception {
        assertEquals(new Done(S_OK, 1), run(g, q, T_FLUSH, 0, List.of(), List.of()));
    }

    @Test
    void getIdAnswersTheSerialIn20BytesOrTruncated() throws Exception {
        byte[] id = Arrays.copyOf("ferry-serial-0042".getBytes(StandardCharsets.US_ASCII), 20);
        g.mem.fill(data(0), 32, (byte) 0xee);
        assertEquals(new Done(S_OK, 21), run(g, q, T_GET_ID, 0, List.of(), List.of(buf(data(0), 20))));
        assertArrayEquals(id, g.readBytes(data(0), 20));
        assertEquals(0xee, g.mem.readU8(data(0) + 20));

        g.mem.fill(data(1), 32, (byte) 0xee);
        assertEquals(new Done(S_OK, 9), run(g, q, T_GET_ID, 0, List.of(), List.of(buf(data(1), 8))));
        assertArrayEquals(Arrays.copyOf(id, 8), g.readBytes(data(1), 8));
        assertEquals(0xee, g.mem.readU8(data(1) + 8), "nothing past the driver's buffer");
    }

    @ParameterizedTest
    @CsvSource({"11, 0", "13, 0", "13, 1"})
    void discardAndWriteZeroesZeroTheRange(int type, int flags) throws Exception {
        g.writeBytes(small(8), DiskFixture.range(3, 2, flags));
        assertEquals(new Done(S_OK, 1), run(g, q, type, 0, List.of(buf(small(8), 16)), List.of()));
        Arrays.fill(expected, 3 * 512, 5 * 512, (byte) 0);
        assertImage();
    }

    @ParameterizedTest
    @CsvSource({"11", "13"})
    void moreThanOneRangeIsUnsupported(int type) throws Exception {
        g.writeBytes(small(8), DiskFixture.range(3, 2, 0));
        g.writeBytes(small(8) + 16, DiskFixture.range(9, 1, 0));
        assertEquals(new Done(S_UNSUPP, 1), run(g, q, type, 0, List.of(buf(small(8), 32)), List.of()));
        assertImage();
    }

    @ParameterizedTest
    @CsvSource({"11, 2", "13, 2", "13, -2147483647", "11, 1"})
    void unknownRangeFlagsAreUnsupported(int type, int flags) throws Exception {
        // blk/description.tex: DISCARD with any flag (UNMAP included) and WRITE_ZEROES with a flag
        // other than UNMAP are VIRTIO_BLK_S_UNSUPP, as in QEMU.
        g.writeBytes(small(8), DiskFixture.range(3, 2, flags));
        assertEquals(new Done(S_UNSUPP, 1), run(g, q, type, 0, List.of(buf(small(8), 16)), List.of()));
        assertImage();
    }

    @Test
    void zeroingPastTheEndIsAnError() throws Exception {
        g.writeBytes(small(8), DiskFixture.range(SECTORS - 1, 2, 0));
        assertEquals(new Done(S_IOERR, 1), run(g, q, T_WRITE_ZEROES, 0, List.of(buf(small(8), 16)), List.of()));
        assertImage();
    }

    @Test
    void headerSplitAcrossTwoDescriptors() throws Exception {
        byte[] h = DiskFixture.header(T_OUT, 12);
        g.writeBytes(small(20), Arrays.copyOfRange(h, 0, 8));
        g.writeBytes(small(21), Arrays.copyOfRange(h, 8, 16));
        byte[] b = random(512, 2);
        g.writeBytes(data(0), b);
        g.mem.writeU8(small(1), 0xff);
        int head = q.add(List.of(buf(small(20), 8), buf(small(21), 8), buf(data(0), 512)),
                List.of(buf(small(1), 1)), false);
        g.kick(0);
        assertEquals(new Done(S_OK, 1), DiskFixture.await(g, q, head, 0));
        System.arraycopy(b, 0, expected, 12 * 512, 512);
        assertImage();
    }

    @Test
    void dataInManyUnevenSegments() throws Exception {
        byte[] b = random(2048, 3);
        int[] outLens = {100, 412, 1000, 536};
        List<DriverQueue.Buffer> out = new java.util.ArrayList<>();
        for (int k = 0, at = 0; k < outLens.length; at += outLens[k], k++) {
            g.writeBytes(data(k), Arrays.copyOfRange(b, at, at + outLens[k]));
            out.add(buf(data(k), outLens[k]));
        }
        assertEquals(new Done(S_OK, 1), run(g, q, T_OUT, 20, out, List.of()));
        System.arraycopy(b, 0, expected, 20 * 512, 2048);
        assertImage();

        int[] inLens = {1, 511, 1024, 512};
        List<DriverQueue.Buffer> in = new java.util.ArrayList<>();
        for (int k = 0; k < inLens.length; k++) {
            in.add(buf(data(10 + k), inLens[k]));
        }
        assertEquals(new Done(S_OK, 2049), run(g, q, T_IN, 20, List.of(), in));
        byte[] got = new byte[2048];
        for (int k = 0, at = 0; k < inLens.length; at += inLens[k], k++) {
            System.arraycopy(g.readBytes(data(10 + k), inLens[k]), 0, got, at, inLens[k]);
        }
        assertArrayEquals(b, got);
    }

    @Test
    void unknownTypeIsUnsupported() throws Exception {
        assertEquals(new Done(S_UNSUPP, 1), run(g, q, 99, 0, List.of(), List.of(buf(data(0), 512))));
        assertEquals(new Done(S_UNSUPP, 1), run(g, q, 99, 0, List.of(buf(data(0), 512)), List.of()));
        assertImage();
    }

    @ParameterizedTest
    @CsvSource({"2047, 1024", "2048, 512", "9223372036854775807, 512", "-1, 512"})
    void outOfRangeSectorsAreIoErrorsAndWriteNothing(long sector, int len) throws Exception {
        g.writeBytes(data(0), random(len, 4));
        assertEquals(new Done(S_IOERR, 1), run(g, q, T_OUT, sector, List.of(buf(data(0), len)), List.of()));
        assertEquals(new Done(S_IOERR, 1), run(g, q, T_IN, sector, List.of(), List.of(buf(data(1), len))));
        assertImage();
    }

    @Test
    void dataNotAMultipleOf512IsAnIoErrorAndWritesNothing() throws Exception {
        g.writeBytes(data(0), random(700, 5));
        assertEquals(new Done(S_IOERR, 1), run(g, q, T_OUT, 0, List.of(buf(data(0), 700)), List.of()));
        g.mem.fill(data(1), 700, (byte) 0x5a);
        assertEquals(new Done(S_IOERR, 1), run(g, q, T_IN, 0, List.of(), List.of(buf(data(1), 700))));
        assertImage();
    }

    @ParameterizedTest
    @CsvSource({"8, 1", "15, 64", "16, 0"})
    void chainWithoutItsHeadersNeedsReset(int readable, int writable) throws Exception {
        List<DriverQueue.Buffer> in = writable == 0 ? List.of() : List.of(buf(small(1), writable));
        g.writeBytes(small(0), DiskFixture.header(T_IN, 0));
        q.add(List.of(buf(small(0), readable)), in, false);
        long ram = g.ramDigest();
        g.kick(0);
        g.awaitStatus(Virtio.STATUS_NEEDS_RESET);
        assertTrue(g.transport.brokenReason().contains("missing headers"), g.transport.brokenReason());
        assertEquals(ram, g.ramDigest(), "no status byte, no used element");
        g.awaitInterrupt();
        assertEquals(Virtio.ISR_QUEUE | Virtio.ISR_CONFIG, g.read(0x060));
        assertImage();
    }

    /**
     * Depth 1: the second request is popped when the first completes, on the completion path, not
     * on a kick. A refused chain there must break the device as one refused on a kick does.
     */
    @Test
    void hostileChainPoppedAfterACompletionNeedsReset() throws Exception {
        g.close();
        g = DiskFixture.disk(img, Map.of("depth", 1), false);
        q = g.bringUp(DiskFixture.FEATURES, 64);
        int head = DiskFixture.offer(g, q, T_IN, 0, List.of(), List.of(buf(data(0), 512)));
        int bad = q.add(List.of(buf(small(30), 16)), List.of(buf(small(31), 1)), false);
        g.mem.writeU64(SplitRing.descAddr(MmioGuest.layout(0, 64, DiskFixture.FEATURES).descGpa(), bad),
                MmioGuest.RAM - 4);
        g.kick(0);
        assertEquals(new Done(S_OK, 513), DiskFixture.await(g, q, head, 0));
        g.awaitStatus(Virtio.STATUS_NEEDS_RESET);
        assertTrue(g.transport.brokenReason().contains("not in RAM"), g.transport.brokenReason());
    }

    /**
     * A request in flight when another breaks the device: once NEEDS_RESET is set the device
     * publishes no more used elements and takes no more requests (QEMU drops completions of a
     * broken device), so the write after the bad chain never reaches the image. (One I/O thread:
     * the slow read runs after the fast GET_ID completed, so the bad chain is usually popped while
     * the read is in flight; if the read wins, it is published before the device breaks.)
     */
    @Test
    void nothingIsServedAfterNeedsReset() throws Exception {
        g.close();
        g = DiskFixture.disk(img, Map.of("depth", 2, "io-threads", 1), false);
        q = g.bringUp(DiskFixture.FEATURES, 64);
        int fast = DiskFixture.offer(g, q, 0, T_GET_ID, 0, List.of(), List.of(buf(data(0), 20)));
        int slow = DiskFixture.offer(g, q, 1, T_IN, 0, List.of(), List.of(buf(data(1), IMAGE)));
        q.add(List.of(buf(small(10), 8)), List.of(buf(small(11), 1)), false);
        g.writeBytes(data(40), random(512, 6));
        DiskFixture.offer(g, q, 3, T_OUT, 100, List.of(buf(data(40), 512)), List.of());
        g.kick(0);
        assertEquals(S_OK, DiskFixture.await(g, q, fast, 0).status());
        g.awaitStatus(Virtio.STATUS_NEEDS_RESET);
        for (int round = 0; round < 3; round++) {
            awaitIdle();
            g.settle();
        }
        assertEquals(2L, blk().get("requests"), "the request after the bad chain was never taken");
        assertImage();
        int used = g.mem.readU16(SplitRing.usedIdx(q.config().usedGpa()));
        if (used == 2) {
            assertEquals(slow, g.mem.readU32(SplitRing.usedElem(q.config().usedGpa(), 64, 1)));
        } else {
            assertEquals(1, used, "the read finished after NEEDS_RESET: not published");
        }
    }

    private void awaitIdle() throws InterruptedException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (((Number) blk().get("in-flight")).intValue() != 0) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("requests stay in flight: " + blk());
            }
            Thread.sleep(1);
        }
    }

    @SuppressWarnings("unchecked")
    private Map<String, Object> blk() {
        return (Map<String, Object>) g.describe().get("virtio-blk");
    }
}
