package dev.ferry.virtio.blk;

import dev.ferry.core.device.DeviceConfigException;
import dev.ferry.core.device.DeviceOptions;
import dev.ferry.virtio.Virtio;
import dev.ferry.virtio.queue.DriverQueue;
import dev.ferry.virtio.transport.MmioGuest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static dev.ferry.virtio.blk.DiskFixture.Done;
import static dev.ferry.virtio.blk.DiskFixture.S_IOERR;
import static dev.ferry.virtio.blk.DiskFixture.S_OK;
import static dev.ferry.virtio.blk.DiskFixture.S_UNSUPP;
import static dev.ferry.virtio.blk.DiskFixture.T_IN;
import static dev.ferry.virtio.blk.DiskFixture.T_OUT;
import static dev.ferry.virtio.blk.DiskFixture.T_WRITE_ZEROES;
import static dev.ferry.virtio.blk.DiskFixture.run;
import static dev.ferry.virtio.transport.MmioGuest.buf;
import static dev.ferry.virtio.transport.MmioGuest.data;
import static dev.ferry.virtio.transport.MmioGuest.small;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

/**
 * virtio-blk as a device: what it offers and shows in its config space, a read-only disk, the
 * images and options it refuses (with the path or option named), and the destination rule — an
 * incoming disk writes nothing to the shared image until its VM runs.
 */
@Timeout(60)
class VirtioBlkDeviceTest {
    static final int IMAGE = 1 << 20;

    @TempDir
    Path dir;

    static long bits(int... features) {
        long f = 0;
        for (int b : features) {
            f |= Virtio.bit(b);
        }
        return f;
    }

    @Test
    void configSpaceAndWritebackToggle() throws Exception {
        Path img = DiskFixture.image(dir, "disk.img", IMAGE);
        try (MmioGuest g = DiskFixture.disk(img, Map.of("queue-size", 128), false)) {
            assertEquals(Virtio.ID_BLOCK, g.read(0x008));
            assertEquals(IMAGE / 512, g.read(0x100) | g.read(0x104) << 32, "capacity in 512-byte sectors");
            assertEquals(126, g.read(0x10c), "seg_max = queue size - 2");
            assertEquals(512, g.read(0x114), "blk_size");
            assertEquals(1, g.read(0x122, 2), "num_queues");
            assertEquals(1, g.read(0x120, 1), "writeback by default");
            g.write(0x120, 1, 0);
            assertEquals(0, g.read(0x120, 1), "the driver chose writethrough");
            DriverQueue q = g.bringUp(DiskFixture.FEATURES, 128);
            g.writeBytes(data(0), new byte[512]);
            assertEquals(new Done(S_OK, 1), run(g, q, T_OUT, 1, List.of(buf(data(0), 512)), List.of()));
            g.write(0x120, 1, 1);
            assertEquals(1, g.read(0x120, 1));
            g.write(0x120, 1, 0);
            g.write(0x070, 0);
            assertEquals(1, g.read(0x120, 1), "a reset restores the power-on cache mode (QEMU: original_wce)");
        }
    }

    @Test
    void featuresOfAReadWriteAndAReadOnlyDisk() throws Exception {
        Path img = DiskFixture.image(dir, "disk.img", IMAGE);
        long common = Virtio.bit(Virtio.F_VERSION_1) | Virtio.bit(Virtio.F_INDIRECT_DESC)
                | Virtio.bit(Virtio.F_EVENT_IDX) | bits(VirtioBlk.F_SEG_MAX, VirtioBlk.F_BLK_SIZE, VirtioBlk.F_FLUSH,
                VirtioBlk.F_CONFIG_WCE);
        try (MmioGuest g = DiskFixture.disk(img, Map.of(), false)) {
            assertEquals(common | bits(VirtioBlk.F_DISCARD, VirtioBlk.F_WRITE_ZEROES), g.deviceFeatures());
        }
        try (MmioGuest g = DiskFixture.disk(img, Map.of("read-only", true), false)) {
            assertEquals(common | bits(VirtioBlk.F_RO), g.deviceFeatures());
        }
    }

    @Test
    void readOnlyDiskRefusesWritesAndKeepsTheImage() throws Exception {
        Path img = DiskFixture.image(dir, "disk.img", IMAGE);
        byte[] before = Files.readAllBytes(img);
        try (MmioGuest g = DiskFixture.disk(img, Map.of("read-only", true), false)) {
            DriverQueue q = g.bringUp(DiskFixture.V1 | bits(VirtioBlk.F_RO, VirtioBlk.F_FLUSH), 16);
            byte[] junk = new byte[1024];
            new Random(7).nextBytes(junk);
            g.writeBytes(data(0), junk);
            assertEquals(new Done(S_IOERR, 1), run(g, q, T_OUT, 0, List.of(buf(data(0), 1024)), List.of()));
            g.writeBytes(small(8), DiskFixture.range(0, 4, 0));
            assertEquals(new Done(S_UNSUPP, 1), run(g, q, T_WRITE_ZEROES, 0, List.of(buf(small(8), 16)), List.of()),
                    "never offered on a read-only disk");
            assertEquals(new Done(S_OK, 513), run(g, q, T_IN, 1, List.of(), List.of(buf(data(1), 512))));
            assertArrayEquals(Arrays.copyOfRange(before, 512, 1024), g.readBytes(data(1), 512));
        }
        assertArrayEquals(before, Files.readAllBytes(img));
    }

    // ---- images and options the device refuses ----

    static IOException openFails(Path p) {
        return assertThrows(IOException.class, () -> new VirtioBlk("disk0", BlkOptions.of(p), false, (d, o, r) -> {
        }).close());
    }

    @Test
    void badImagesAreIoExceptionsNamingThePath() throws Exception {
        Path missing = dir.resolve("missing.img");
        assertTrue(openFails(missing).getMessage().contains(missing.toString()));
        Path empty = Files.write(dir.resolve("empty.img"), new byte[0]);
        assertTrue(openFails(empty).getMessage().contains(empty.toString()));
        Path odd = Files.write(dir.resolve("odd.img"), new byte[1000]);
        IOException e = openFails(odd);
        assertTrue(e.getMessage().contains(odd.toString()) && e.getMessage().contains("multiple of 512"), e.getMessage());
        assertTrue(openFails(dir).getMessage().contains(dir.toString()), "a directory is no image");
    }

    @Test
    void unreadableImageIsAnIoExceptionNamingThePath() throws Exception {
        Path img = DiskFixture.image(dir, "locked.img", 4096);
        Files.setPosixFilePermissions(img, PosixFilePermissions.fromString("---------"));
        assumeFalse(Files.isReadable(img), "running with CAP_DAC_OVERRIDE (root): permission bits do not stop it");
        assertTrue(openFails(img).getMessage().contains(img.toString()));
    }

    static DeviceConfigException optionsFail(Map<String, Object> options) {
        return assertThrows(DeviceConfigException.class,
                () -> new VirtioBlkKind().validate(new DeviceOptions("devices[0]", options)));
    }

    @Test
    void optionErrorsNameTheField() throws Exception {
        Path img = DiskFixture.image(dir, "disk.img", 4096);
        Map<String, Object> ok = new HashMap<>(Map.of("image", img.toString()));
        new VirtioBlkKind().validate(new DeviceOptions("devices[0]", ok));

        Map<String, Object> o = new HashMap<>(ok);
        o.put("queue-size", 100);
        String m = optionsFail(o).getMessage();
        assertTrue(m.startsWith("devices[0].queue-size: ") && m.contains("power of two"), m);

        o = new HashMap<>(ok);
        o.put("werror", "bogus");
        m = optionsFail(o).getMessage();
        assertTrue(m.startsWith("devices[0].werror: ") && m.contains("bogus"), m);

        o = new HashMap<>(ok);
        o.put("serial", "a-serial-longer-than-20");
        m = optionsFail(o).getMessage();
        assertTrue(m.startsWith("devices[0].serial: "), m);

        m = optionsFail(Map.of()).getMessage();
        assertTrue(m.startsWith("devices[0].image: "), m);

        Path nowhere = dir.resolve("nowhere.img");
        m = assertThrows(DeviceConfigException.class,
                () -> DiskFixture.disk(nowhere, Map.of(), false).close()).getMessage();
        assertTrue(m.startsWith("devices[0].image: ") && m.contains(nowhere.toString()), m);
    }

    // ---- the destination rule ----

    @Test
    void incomingDiskWritesNothingUntilItsVmRuns() throws Exception {
        Path img = DiskFixture.image(dir, "shared.img", IMAGE);
        byte[] before = Files.readAllBytes(img);
        try (MmioGuest g = DiskFixture.disk(img, Map.of(), true)) {
            DriverQueue q = g.bringUp(DiskFixture.FEATURES, 16);
            byte[] b = new byte[512];
            new Random(8).nextBytes(b);
            g.writeBytes(data(0), b);
            int head = DiskFixture.offer(g, q, T_OUT, 3, List.of(buf(data(0), 512)), List.of());
            g.kick(0);
            @SuppressWarnings("unchecked")
            Map<String, Object> blk = (Map<String, Object>) g.describe().get("virtio-blk");
            assertEquals(Boolean.FALSE, blk.get("active"), "the image is inactive on a destination");
            assertEquals(0L, blk.get("requests"));
            assertArrayEquals(before, Files.readAllBytes(img));

            g.machine.vmStart();
            assertEquals(new Done(S_OK, 1), DiskFixture.await(g, q, head, 0), "served once the VM runs");
            System.arraycopy(b, 0, before, 3 * 512, 512);
            assertArrayEquals(before, Files.readAllBytes(img));
        }
    }

    /** The guard itself: an inactive image refuses every write, and the file stays as it was. */
    @Test
    void inactiveImageRefusesWritesUntilActivated() throws Exception {
        Path img = DiskFixture.image(dir, "shared.img", IMAGE);
        byte[] before = Files.readAllBytes(img);
        try (MmioGuest g = DiskFixture.disk(img, Map.of(), true);
             BlkImage image = BlkImage.open(img, false, false)) {
            g.writeBytes(data(0), new byte[512]);
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> image.write(g.mem, 0, data(0), 512));
            assertTrue(e.getMessage().contains(img.toString()) && e.getMessage().contains("inactive"), e.getMessage());
            assertThrows(IllegalStateException.class, () -> image.writeZeroes(0, 4096));
            assertArrayEquals(before, Files.readAllBytes(img));
            image.activate();
            image.writeZeroes(0, 512);
            Arrays.fill(before, 0, 512, (byte) 0);
            assertArrayEquals(before, Files.readAllBytes(img));
        }
    }
}
