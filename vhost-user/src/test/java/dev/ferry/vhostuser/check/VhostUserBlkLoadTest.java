package dev.ferry.vhostuser.check;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The benchmark's load generator moves real data through qemu-storage-daemon, with and without logging. */
class VhostUserBlkLoadTest {
    @TempDir
    Path dir;

    @Test
    void writesLandInTheImageAndLoggingNamesThePagesRead() throws Exception {
        StorageDaemon.assumeInstalled();
        try (StorageDaemon qsd = StorageDaemon.start(dir, 16)) {
            int size = 64 << 10;
            try (VhostUserBlkLoad load = VhostUserBlkLoad.connect(qsd.socket(), size, 8, false)) {
                load.run(size, i -> (i % 8) * size * 2L, 0, 8, true); // every other 64 KiB block of the first 1 MiB
                assertEquals(0, load.pagesLogged());
            }
            try (RandomAccessFile f = new RandomAccessFile(qsd.image().toFile(), "r")) {
                for (int b = 0; b < 16; b++) {
                    f.seek((long) b * size);
                    int first = f.read();
                    f.seek((long) b * size + size - 1);
                    int last = f.read();
                    if (b % 2 == 0) {
                        // slot s carries bytes 0x5a + s; request i used slot (depth - 1 - i) first, then any free one
                        assertTrue(first == last && first >= 0x5a && first < 0x5a + 8, "block " + b + ": " + first);
                    } else {
                        assertEquals(0, first, "block " + b + " was not written");
                    }
                }
            }
            try (VhostUserBlkLoad load = VhostUserBlkLoad.connect(qsd.socket(), size, 8, true)) {
                load.run(size, i -> i * size, 0, 16, false);
                // 16 reads of 16 pages each into 8 slots: at least the 8 slots' 128 in-buffer pages, plus status and used ring
                assertTrue(load.pagesLogged() >= 8 * 16 + 2, "pages logged " + load.pagesLogged());
            }
        }
    }
}
