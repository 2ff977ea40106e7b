package dev.ferry.virtio.state;

import dev.ferry.core.machine.RunState;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.blk.DiskFixture;
import dev.ferry.virtio.blk.VirtioBlk;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.queue.QueueConfig;
import dev.ferry.virtio.queue.SplitRing;
import dev.ferry.virtio.transport.MmioGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static dev.ferry.virtio.blk.DiskFixture.Done;
import static dev.ferry.virtio.blk.DiskFixture.S_OK;
import static dev.ferry.virtio.blk.DiskFixture.T_FLUSH;
import static dev.ferry.virtio.blk.DiskFixture.T_IN;
import static dev.ferry.virtio.blk.DiskFixture.T_OUT;
import static dev.ferry.virtio.transport.MmioGuest.buf;
import static dev.ferry.virtio.transport.MmioGuest.data;
import static dev.ferry.virtio.transport.MmioGuest.small;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A virtio-blk device's state saved on one machine and loaded on another with the same guest RAM
 * and the same (shared) image: the destination reads back the source's registers, re-saves the
 * same bytes, and serves on — including a request the source's driver made available but never
 * kicked, and a request parked on the source, which the destination retries.
 */
@Timeout(60)
class VirtioStateTest {
    static final int IMAGE = 1 << 20;
    static final long FEATURES = DiskFixture.FEATURES | Virtio.bit(Virtio.F_EVENT_IDX);
    static final Map<String, Object> TWO_QUEUES = Map.of("queues", 2);

    @TempDir
    Path dir;

    /** Source with two queues (the second at a non-default size), some I/O done, stopped. */
    static MmioGuest source(Path img) throws Exception {
        MmioGuest src = DiskFixture.disk(img, TWO_QUEUES, false);
        if (!src.negotiate(FEATURES | Virtio.bit(VirtioBlk.F_MQ))) {
            throw new AssertionError("features refused");
        }
        DriverQueue q = src.setupQueue(0, 64);
        src.setupQueue(1, 128);
        src.driverOk();
        src.writeBytes(data(0), bytes(1024, 1));
        for (int i = 0; i < 5; i++) {
            assertEquals(S_OK, DiskFixture.run(src, q, T_OUT, 2 * i, List.of(buf(data(0), 1024)), List.of()).status());
            assertEquals(S_OK, DiskFixture.run(src, q, T_IN, 2 * i, List.of(), List.of(buf(data(1), 512))).status());
        }
        assertEquals(S_OK, DiskFixture.run(src, q, T_FLUSH, 0, List.of(), List.of()).status());
        src.writeBytes(data(2), bytes(512, 2));
        DiskFixture.offer(src, q, T_OUT, 50, List.of(buf(data(2), 512)), List.of()); // not kicked
        src.write(0x014, 1);
        src.write(0x030, 1);
        src.machine.vmStop(RunState.FINISH_MIGRATE);
        return src;
    }

    static byte[] bytes(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    static int usedIdx(MmioGuest g) {
        return g.mem.readU16(SplitRing.usedIdx(MmioGuest.layout(0, 64, FEATURES).usedGpa()));
    }

    @Test
    void roundTripGivesTheSameStateAndTheDestinationServesOn() throws Exception {
        Path img = DiskFixture.image(dir, "shared.img", IMAGE);
        try (MmioGuest src = source(img); MmioGuest dst = DiskFixture.disk(img, TWO_QUEUES, true)) {
            byte[] blob = StateBlob.save(src);
            StateBlob.copyRam(src, dst);
            StateBlob.load(dst, blob);

            assertEquals(src.read(0x010), dst.read(0x010), "DeviceFeaturesSel came along (word 1)");
            assertEquals(128, dst.read(0x038), "QueueSel came along (queue 1)");
            assertEquals(src.registerSnapshot(2), dst.registerSnapshot(2));
            assertEquals(src.transport.guestFeatures(), dst.transport.guestFeatures());
            assertEquals(src.describe().get("queues"), dst.describe().get("queues"), "ring indices");
            assertEquals(11, usedIdx(dst));
            dst.write(0x014, 1);
            dst.write(0x030, 1);
            assertArrayEquals(blob, StateBlob.save(dst), "the destination re-saves the same bytes");

            dst.machine.vmStart();
            awaitUsedIdx(dst, 12); // the request made available before the switchover is served
            assertEquals(S_OK, dst.mem.readU8(small(1)));
            byte[] image = Files.readAllBytes(img);
            assertArrayEquals(bytes(512, 2), Arrays.copyOfRange(image, 50 * 512, 51 * 512));

            // The guest's driver goes on from where its rings are (its bookkeeping restarts at idx 12).
            QueueConfig c = MmioGuest.layout(0, 64, FEATURES);
            DriverQueue q = DriverQueue.builder(dst.mem, c).initialIndex(12).build();
            dst.writeBytes(data(3), bytes(512, 3));
            Done d = DiskFixture.run(dst, q, T_OUT, 60, List.of(buf(data(3), 512)), List.of());
            assertEquals(new Done(S_OK, 1), d);
            image = Files.readAllBytes(img);
            assertArrayEquals(bytes(512, 3), Arrays.copyOfRange(image, 60 * 512, 61 * 512));
        }
    }

    /**
     * The source's stream as if the request the driver made available last had been popped and
     * parked there (werror=stop): in last_avail_idx, in the device part, not completed.
     */
    static byte[] parkedAtSource(MmioGuest src, byte[] blob, long[][] readable, long[][] writable) {
        int q0 = StateBlob.queueAt(blob, 0);
        int lastAvail = ByteBuffer.wrap(blob).getShort(q0 + 16) & 0xffff;
        int head = src.mem.readU16(SplitRing.availRing(MmioGuest.layout(0, 64, FEATURES).availGpa(), 64, lastAvail));
        return StateBlob.withDevicePart(StateBlob.putBe16(blob, q0 + 16, lastAvail + 1),
                StateBlob.parkedRequest(0, head, readable, writable));
    }

    static void awaitUsedIdx(MmioGuest g, int idx) throws InterruptedException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (usedIdx(g) != idx && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        assertEquals(idx, usedIdx(g));
    }

    /** The destination retries a parked request when its VM starts, on the ring it came from. */
    @Test
    void parkedRequestIsRetriedOnTheDestination() throws Exception {
        Path img = DiskFixture.image(dir, "shared.img", IMAGE);
        try (MmioGuest src = source(img); MmioGuest dst = DiskFixture.disk(img, TWO_QUEUES, true)) {
            int head = src.mem.readU16(SplitRing.availRing(MmioGuest.layout(0, 64, FEATURES).availGpa(), 64, 11));
            byte[] stream = parkedAtSource(src, StateBlob.save(src), new long[][] {{small(0), 16}, {data(2), 512}},
                    new long[][] {{small(1), 1}});
            StateBlob.copyRam(src, dst);
            StateBlob.load(dst, stream);
            VirtioBlk model = (VirtioBlk) dst.transport.model();
            assertEquals(1, model.parkedRequests());

            dst.machine.vmStart();
            awaitUsedIdx(dst, 12);
            assertEquals(head, dst.mem.readU32(SplitRing.usedElem(MmioGuest.layout(0, 64, FEATURES).usedGpa(), 64, 11)));
            assertEquals(S_OK, dst.mem.readU8(small(1)), "the retried write succeeded");
            assertArrayEquals(bytes(512, 2), Arrays.copyOfRange(Files.readAllBytes(img), 50 * 512, 51 * 512));
            assertEquals(0, model.parkedRequests());
        }
    }

    /** A parked request whose buffers are not guest RAM breaks the device when it would be retried. */
    @Test
    void parkedRequestOutsideRamBreaksTheDeviceAtStart() throws Exception {
        Path img = DiskFixture.image(dir, "shared.img", IMAGE);
        try (MmioGuest src = source(img); MmioGuest dst = DiskFixture.disk(img, TWO_QUEUES, true)) {
            byte[] image = Files.readAllBytes(img);
            byte[] stream = parkedAtSource(src, StateBlob.save(src), new long[][] {{small(0), 16}, {data(2), 512}},
                    new long[][] {{MmioGuest.RAM - 1, 2}});
            StateBlob.copyRam(src, dst);
            StateBlob.load(dst, stream);
            long ram = dst.ramDigest();
            dst.machine.vmStart();
            dst.awaitStatus(Virtio.STATUS_NEEDS_RESET);
            assertTrue(dst.transport.brokenReason().contains("is not in RAM"), dst.transport.brokenReason());
            dst.settle();
            assertEquals(11, usedIdx(dst));
            assertEquals(ram, dst.ramDigest(), "nothing written to guest RAM");
            assertArrayEquals(image, Files.readAllBytes(img), "nothing written to the image");
        }
    }

    @Test
    void vmdescNamesTheVirtioFieldWithTheBytesWritten() throws Exception {
        Path img = DiskFixture.image(dir, "shared.img", IMAGE);
        try (MmioGuest src = source(img)) {
            byte[] blob = StateBlob.save(src);
            Map<String, Object> d = StateBlob.entry(src).describe();
            assertEquals("virtio-blk", d.get("vmsd_name"));
            assertEquals(2, d.get("version"));
            assertEquals(List.of(Map.of("name", "virtio", "type", "virtio", "size", blob.length)), d.get("fields"));
            assertTrue(blob.length > 1024 * 16 + 1024 * 27, "queue tables of all 1024 queues: " + blob.length);
        }
    }
}
