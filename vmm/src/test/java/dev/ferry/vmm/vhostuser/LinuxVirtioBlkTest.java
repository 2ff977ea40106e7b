package dev.ferry.vmm.vhostuser;

import dev.ferry.virtio.blk.BlkOptions;
import dev.ferry.vhostuser.backend.BackendOptions;
import dev.ferry.vhostuser.backend.VhostUserBackend;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Linux's virtio_blk on Ferry's vhost-user-blk back-end under QEMU 7.2 (see {@link LinuxGuestTest}).
 */
class LinuxVirtioBlkTest extends LinuxGuestTest {
    // The disk layout linux-virtio-init.c uses.
    private static final int MIB = 1 << 20;
    private static final int DISK = 16 * MIB;
    /** What the back-end grows the disk to while the guest waits. */
    private static final int GROWN = 20 * MIB;
    private static final int HOST_AT = 4 * MIB;
    private static final int HOST_LEN = 512 * 1024;
    private static final int WRITE_AT = MIB;
    private static final int WRITE_LEN = 256 * 1024;
    private static final int SECTORS_AT = 8 * MIB;
    private static final int SECTOR_STRIDE = 4608;
    private static final int SECTOR_COUNT = 8;
    private static final int DISCARD_AT = 12 * MIB;
    private static final int DISCARD_LEN = MIB;
    private static final int ZERO_AT = 14 * MIB;
    private static final int ZERO_LEN = 64 * 1024;

    /** Byte {@code x} of the disk as the guest writes it (pattern G) or as the host prepares it (H). */
    static byte pattern(long x, boolean host) {
        int mul = host ? 0x85ebca6b : 0x9e3779b1;
        return (byte) ((((int) x * mul) >>> 24) ^ (int) (x >>> 9) ^ (host ? 0x3c : 0));
    }

    private static void fillHost(byte[] disk, int at, int len) {
        for (int i = at; i < at + len; i++) {
            disk[i] = pattern(i, true);
        }
    }

    /** The offsets in {@code [at, at+len)} whose byte differs from the pattern (or zero); at most a few. */
    private static List<Integer> differ(byte[] disk, int at, int len, Boolean host) {
        List<Integer> out = new ArrayList<>();
        for (int i = at; i < at + len && out.size() < 8; i++) {
            byte want = host == null ? 0 : pattern(i, host);
            if (disk[i] != want) {
                out.add(i);
            }
        }
        return out;
    }

    private static long fnv1a(byte[] b, int at, int len) {
        long h = 0xcbf29ce484222325L;
        for (int i = at; i < at + len; i++) {
            h = (h ^ (b[i] & 0xff)) * 0x100000001b3L;
        }
        return h;
    }

    @Test
    void linuxVirtioBlkReadsWritesFlushesAndDiscardsThroughTheBackEnd() throws Exception {
        byte[] disk = new byte[DISK];
        fillHost(disk, HOST_AT, HOST_LEN);
        fillHost(disk, DISCARD_AT, DISCARD_LEN);
        fillHost(disk, ZERO_AT, ZERO_LEN);
        Path image = dir.resolve("disk.img");
        Files.write(image, disk);
        Path sock = dir.resolve("blk.sock");
        try (VhostUserBackend b = VhostUserBackend.serveBlk(BlkOptions.of(image), BackendOptions.server(sock));
             LinuxQemu q = qemu("blk", "ferry.mode=blk ferry.resize=1", "-chardev", "socket,id=c0,path=" + sock,
                     "-device", "vhost-user-blk-pci,chardev=c0")) {
            // The disk grows under the running guest: Ferry's back-end sends CONFIG_CHANGE_MSG on
            // the request channel QEMU gave it, QEMU reads the config again and raises the config
            // interrupt, and Linux's virtio_blk takes the new capacity.
            q.awaitSerial("FERRY-BLK-RESIZE-WAIT", 180);
            assertEquals(String.valueOf(DISK / 512), fields(q.line("FERRY-BLK-RESIZE-WAIT")).get("sectors"));
            ((dev.ferry.virtio.blk.VirtioBlk) b.model()).grow(GROWN);
            q.awaitSerial("FERRY-DONE", 120);
            assertEquals(1L, b.stats().configChanges(), "the back-end told QEMU: " + b.stats());
            assertEquals(String.valueOf(GROWN / 512), fields(q.line("FERRY-BLK-RESIZED")).get("sectors"),
                    "Linux sees the grown disk");
            assertEquals("0", fields(q.line("FERRY-BLK-BEYOND")).get("mismatches"),
                    "the guest wrote and read back past the old end");
            String features = q.line("FERRY-FEATURES");
            System.out.printf("virtio_blk acked %s (bit 0 first); back-end %s%n", features, b.stats());
            assertTrue(acked(features, F_VERSION_1) && acked(features, BLK_F_FLUSH), "VERSION_1 and FLUSH acked: " + features);

            Map<String, String> read = fields(q.line("FERRY-BLK-READ"));
            assertEquals("0", read.get("mismatches"), "the guest read the host's pattern: " + read);
            assertEquals(String.format("%016x", fnv1a(disk, HOST_AT, HOST_LEN)), read.get("fnv"),
                    "the bytes the guest read hash as the host's");
            assertEquals("0", fields(q.line("FERRY-BLK-WRITE")).get("readback-mismatches"), "the guest read its writes back");
            assertEquals("ok", q.line("FERRY-BLK-FLUSH"));

            byte[] after = Files.readAllBytes(image);
            assertEquals(List.of(), differ(after, WRITE_AT, WRITE_LEN, false), "the guest's 256 KiB write is on the image");
            for (int k = 0; k < SECTOR_COUNT; k++) {
                int at = SECTORS_AT + k * SECTOR_STRIDE;
                assertEquals(List.of(), differ(after, at, 512, false), "the guest's sector at " + at + " is on the image");
                assertEquals(List.of(), differ(after, at + 512, SECTOR_STRIDE - 512, null), "nothing written past it");
            }
            assertEquals(List.of(), differ(after, HOST_AT, HOST_LEN, true), "the region the guest only read is unchanged");
            assertEquals(List.of(), differ(after, 0, WRITE_AT, null), "nothing written before the guest's first write");

            assertTrue(acked(features, BLK_F_DISCARD), "Ferry offers DISCARD and Linux takes it: " + features);
            assertEquals("ok", q.line("FERRY-BLK-DISCARD"));
            assertEquals(List.of(), differ(after, DISCARD_AT, DISCARD_LEN, null), "Ferry zeroes a discarded range");
            Map<String, String> zero = fields(q.line("FERRY-BLK-ZEROOUT"));
            assertEquals("0", zero.get("nonzero"), "the guest reads zeroes after BLKZEROOUT");
            assertTrue(!acked(features, BLK_F_WRITE_ZEROES) || q.line("FERRY-BLK-ZEROOUT").startsWith("write-zeroes"),
                    "with WRITE_ZEROES acked the kernel zeroes through it");
            assertEquals(List.of(), differ(after, ZERO_AT, ZERO_LEN, null), "the zeroed range is zero on the image");
            assertEquals(List.of(), differ(after, ZERO_AT + ZERO_LEN, DISK - ZERO_AT - ZERO_LEN, null),
                    "nothing written after it");
            assertEquals(GROWN, after.length, "the image grew");
            assertEquals(List.of(), differ(after, DISK, 64 * 1024, false), "the guest's write past the old end is on the image");
            assertEquals(List.of(), differ(after, DISK + 64 * 1024, GROWN - DISK - 64 * 1024, null),
                    "the rest of the grown part reads as zeroes");
            assertEquals(0, b.stats().refused(), "no request refused: " + b.stats().lastRefusal());
            assertTrue(q.awaitExit(60), "the guest powered off");
        }
    }
}
