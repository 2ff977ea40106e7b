package dev.ferry.vhostuser.backend;

import dev.ferry.virtio.blk.BlkOptions;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.EnumSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Ferry's back-end with QEMU 7.2 as the front-end: SeaBIOS negotiates to DRIVER_OK over
 * vhost-user and boots a boot sector read through the back-end; the boot code writes a sector
 * back and then loops writing a counter sector — also across QEMU's own migration of the guest
 * between two QEMU processes, each with its own Ferry back-end on the same image.
 */
class QemuFrontendTest {
    /**
     * The boot sector (16-bit real mode, loaded at 0x7c00), assembled once with GNU as:
     * <pre>
     *   cli; ds = es = ss = 0; sp = 0x7c00; sti; [drive] = dl
     *   print "FERRY-BOOT\n" to COM1 (out 0x3f8)
     *   fill 0x8000..0x81ff with 0x5a, 0x8200..0x83ff with 0
     *   int 13h AH=3 AL=1 CHS 0/0/2 ES:BX=0x8000    ; write LBA 1 = 512 x 0x5a
     *   jc fail; print "FERRY-WROTE\n"
     *   again: inc dword [0x8200]; int 13h AH=3 AL=1 CHS 0/0/3 ES:BX=0x8200   ; LBA 2 = the counter
     *          jc fail; int 15h AH=86h wait 20 ms; jmp again
     *   fail: print "FERRY-FAIL\n"; hlt loop
     * </pre>
     */
    static final byte[] BOOT_CODE = {
        (byte) 0xfa, 0x31, (byte) 0xc0, (byte) 0x8e, (byte) 0xd8, (byte) 0x8e, (byte) 0xc0, (byte) 0x8e, (byte) 0xd0,
        (byte) 0xbc, 0x00, 0x7c, (byte) 0xfb, (byte) 0x88, 0x16, (byte) 0x9e, 0x7c, (byte) 0xbe, 0x79, 0x7c,
        (byte) 0xe8, 0x56, 0x00, (byte) 0xbf, 0x00, (byte) 0x80, (byte) 0xb9, 0x00, 0x02, (byte) 0xb0, 0x5a,
        (byte) 0xf3, (byte) 0xaa, (byte) 0xb9, 0x00, 0x02, 0x30, (byte) 0xc0, (byte) 0xf3, (byte) 0xaa, (byte) 0xb8,
        0x01, 0x03, (byte) 0xb9, 0x02, 0x00, 0x30, (byte) 0xf6, (byte) 0x8a, 0x16, (byte) 0x9e, 0x7c, (byte) 0xbb,
        0x00, (byte) 0x80, (byte) 0xcd, 0x13, 0x72, 0x29, (byte) 0xbe, (byte) 0x85, 0x7c, (byte) 0xe8, 0x2c, 0x00,
        0x66, (byte) 0xff, 0x06, 0x00, (byte) 0x82, (byte) 0xb8, 0x01, 0x03, (byte) 0xb9, 0x03, 0x00, 0x30,
        (byte) 0xf6, (byte) 0x8a, 0x16, (byte) 0x9e, 0x7c, (byte) 0xbb, 0x00, (byte) 0x82, (byte) 0xcd, 0x13, 0x72,
        0x0b, (byte) 0xb4, (byte) 0x86, 0x31, (byte) 0xc9, (byte) 0xba, 0x20, 0x4e, (byte) 0xcd, 0x15, (byte) 0xeb,
        (byte) 0xdd, (byte) 0xbe, (byte) 0x92, 0x7c, (byte) 0xe8, 0x03, 0x00, (byte) 0xf4, (byte) 0xeb, (byte) 0xfd,
        (byte) 0xac, (byte) 0x84, (byte) 0xc0, 0x74, 0x06, (byte) 0xba, (byte) 0xf8, 0x03, (byte) 0xee, (byte) 0xeb,
        (byte) 0xf5, (byte) 0xc3,
        'F', 'E', 'R', 'R', 'Y', '-', 'B', 'O', 'O', 'T', '\n', 0,
        'F', 'E', 'R', 'R', 'Y', '-', 'W', 'R', 'O', 'T', 'E', '\n', 0,
        'F', 'E', 'R', 'R', 'Y', '-', 'F', 'A', 'I', 'L', '\n', 0,
        0, // drive
    };

    @TempDir
    Path dir;

    @BeforeAll
    static void qemu() {
        Assumptions.assumeTrue(QemuGuest.installed(),
                "qemu-system-x86_64 not installed: apt-get install qemu-system-x86");
    }

    private Path bootImage() throws Exception {
        byte[] img = new byte[1 << 20];
        System.arraycopy(BOOT_CODE, 0, img, 0, BOOT_CODE.length);
        img[510] = 0x55;
        img[511] = (byte) 0xaa;
        Path p = dir.resolve("boot.img");
        Files.write(p, img);
        return p;
    }

    private static byte[] sector(Path image, int lba) throws Exception {
        byte[] all = Files.readAllBytes(image);
        return Arrays.copyOfRange(all, lba * 512, lba * 512 + 512);
    }

    private static long counter(Path image) throws Exception {
        return Integer.toUnsignedLong(ByteBuffer.wrap(sector(image, 2)).order(ByteOrder.LITTLE_ENDIAN).getInt());
    }

    @Test
    void seaBiosBootsThroughTheBackEndAndWritesASector() throws Exception {
        Path image = bootImage();
        Path sock = dir.resolve("vub.sock");
        try (VhostUserBackend b = VhostUserBackend.serveBlk(BlkOptions.of(image), BackendOptions.server(sock));
             QemuGuest q = new QemuGuest(dir, "boot", sock)) {
            q.awaitSerial("FERRY-BOOT", 20);
            q.awaitSerial("FERRY-WROTE", 10);
            byte[] want = new byte[512];
            Arrays.fill(want, (byte) 0x5a);
            assertTrue(Arrays.equals(want, sector(image, 1)), "the boot code's sector reached the image");
            assertTrue(b.stats().status() == 0 || (b.stats().status() & 4) != 0, "DRIVER_OK, if STATUS was negotiated");
            assertTrue(b.stats().kicks() > 0 && b.stats().refused() == 0,
                    "served without refusals: " + b.stats() + " last refusal " + b.stats().lastRefusal());
        }
    }

    /** Boots the guest on {@code src}, lets it write, migrates it to {@code stream}; returns the counter then. */
    private long migrateSource(Path image, VhostUserBackend src, Path stream) throws Exception {
        try (QemuGuest q = new QemuGuest(dir, "src", src.socket())) {
            q.awaitSerial("FERRY-WROTE", 30);
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (counter(image) < 3) {
                assertTrue(System.nanoTime() < deadline, "the counter loop does not run");
                Thread.sleep(20);
            }
            String r = q.qmp("{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat > " + stream + "\"}}");
            assertTrue(r.contains("\"return\""), r);
            deadline = System.nanoTime() + 20_000_000_000L;
            while (true) {
                String st = q.qmp("{\"execute\":\"query-migrate\"}");
                if (st.contains("\"completed\"")) {
                    break;
                }
                assertTrue(!st.contains("\"failed\"") && System.nanoTime() < deadline, st);
                Thread.sleep(50);
            }
            assertTrue(src.stats().logBases() >= 1, "the source back-end got SET_LOG_BASE: " + src.stats());
            assertTrue(src.stats().logAllSeen(), "the source back-end saw LOG_ALL");
            assertTrue(src.stats().loggedWrites() > 0, "the source back-end logged its writes: " + src.stats());
            assertTrue(src.stats().baseReturned(0) > 0, "the source stopped its ring with GET_VRING_BASE");
            return counter(image);
        }
    }

    @Test
    void qemuMigratesTheGuestBetweenTwoFerryBackEnds() throws Exception {
        Path image = bootImage();
        Path stream = dir.resolve("migration.bin");
        try (VhostUserBackend src = VhostUserBackend.serveBlk(BlkOptions.of(image),
                     BackendOptions.server(dir.resolve("src.sock")));
             VhostUserBackend dst = VhostUserBackend.serveBlk(BlkOptions.of(image),
                     BackendOptions.server(dir.resolve("dst.sock")))) {
            long before = migrateSource(image, src, stream);
            try (QemuGuest d = new QemuGuest(dir, "dst", dst.socket(), "-incoming", "exec:cat " + stream)) {
                long deadline = System.nanoTime() + 20_000_000_000L;
                while (counter(image) < before + 3) {
                    assertTrue(d.isAlive() && System.nanoTime() < deadline,
                            "the migrated guest does not keep writing: counter " + counter(image) + " (was " + before
                                    + "), destination back-end " + dst.stats() + ", last refusal " + dst.stats().lastRefusal());
                    Thread.sleep(20);
                }
                assertEquals(src.stats().baseReturned(0), dst.stats().baseSet(0),
                        "the destination resumed the ring at the source's vring base");
                assertTrue(!d.serialText().contains("FERRY-FAIL"), "no disk error in the guest");
                assertEquals(0, dst.stats().refused(), "last refusal: " + dst.stats().lastRefusal());
            }
        }
    }

    /** The same migration with a source back-end that lies in GET_VRING_BASE: the guest's next request is skipped. */
    @Test
    void aWrongVringBaseOnTheSourceStallsTheMigratedGuest() throws Exception {
        Path image = bootImage();
        Path stream = dir.resolve("migration.bin");
        try (VhostUserBackend src = VhostUserBackend.serveBlk(BlkOptions.of(image),
                     BackendOptions.server(dir.resolve("src.sock")).withFaults(EnumSet.of(BackendFaults.WRONG_VRING_BASE)));
             VhostUserBackend dst = VhostUserBackend.serveBlk(BlkOptions.of(image),
                     BackendOptions.server(dir.resolve("dst.sock")))) {
            long before = migrateSource(image, src, stream);
            try (QemuGuest d = new QemuGuest(dir, "dst", dst.socket(), "-incoming", "exec:cat " + stream)) {
                long deadline = System.nanoTime() + 20_000_000_000L;
                while (dst.stats().baseSet(0) < 0) {
                    assertTrue(d.isAlive() && System.nanoTime() < deadline, "the destination never started its ring");
                    Thread.sleep(20);
                }
                assertEquals(src.stats().baseReturned(0) + 1, dst.stats().baseSet(0), "QEMU carried the lie over");
                Thread.sleep(3_000); // the healthy guest writes ~100 counter sectors in this time
                assertTrue(counter(image) <= before + 1, "the guest's request at the true base was skipped: counter "
                        + counter(image) + " (was " + before + ")");
            }
        }
    }

    /**
     * The back-end process is killed (SIGKILL) while the guest writes; a new one starts on the
     * same socket; QEMU (reconnect=1) reconnects, hands over the inflight region and the ring's
     * used index, and the guest's disk writes go on.
     */
    @Test
    void qemuReconnectsToARestartedBackEndAndTheGuestGoesOn() throws Exception {
        Path image = bootImage();
        Path sock = dir.resolve("rc.sock");
        Process first = BackendMain.start(dir, "backend1", sock, image);
        Process second = null;
        try (QemuGuest q = QemuGuest.reconnecting(dir, "rc", sock)) {
            q.awaitSerial("FERRY-WROTE", 30);
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (counter(image) < 3) {
                assertTrue(System.nanoTime() < deadline, "the counter loop does not run");
                Thread.sleep(20);
            }
            first.destroyForcibly().waitFor();
            long atKill = counter(image);
            second = BackendMain.start(dir, "backend2", sock, image);
            deadline = System.nanoTime() + 20_000_000_000L;
            while (counter(image) < atKill + 3) {
                assertTrue(q.isAlive() && System.nanoTime() < deadline, "the guest's writes did not resume: counter "
                        + counter(image) + " (" + atKill + " at the kill); QEMU: "
                        + Files.readString(dir.resolve("rc.log")) + " back-end: " + Files.readString(dir.resolve("backend2.log")));
                Thread.sleep(20);
            }
            assertTrue(!q.serialText().contains("FERRY-FAIL"), "no disk error in the guest");
        } finally {
            first.destroyForcibly();
            if (second != null) {
                second.destroyForcibly().waitFor();
            }
        }
    }
}
