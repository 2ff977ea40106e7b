package dev.ferry.vmm.guest;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The initramfs writer against the newc layout the kernel's unpacker (init/initramfs.c) expects. */
class InitramfsTest {
    @Test
    void newcArchiveParsesBackEntryByEntry() {
        byte[] init = "#!static\u0000payload".getBytes(StandardCharsets.ISO_8859_1);
        byte[] cpio = Initramfs.newc(List.of(new Initramfs.Entry("init", 0100755, init),
                new Initramfs.Entry("dev", 040755, new byte[0])));
        assertEquals(0, cpio.length % 4, "the archive ends 4-byte aligned");
        List<String> names = new ArrayList<>();
        int at = 0;
        while (true) {
            String header = new String(cpio, at, 110, StandardCharsets.US_ASCII);
            assertEquals("070701", header.substring(0, 6), "magic at " + at);
            long[] f = new long[13];
            for (int i = 0; i < 13; i++) {
                f[i] = Long.parseLong(header.substring(6 + 8 * i, 14 + 8 * i), 16);
            }
            int nameSize = (int) f[11];
            String name = new String(cpio, at + 110, nameSize - 1, StandardCharsets.US_ASCII);
            assertEquals(0, cpio[at + 110 + nameSize - 1], "the name is NUL-terminated");
            int data = align(at + 110 + nameSize);
            int size = (int) f[6];
            names.add(name + ":" + Long.toOctalString(f[1]) + ":" + size);
            if (name.equals("init")) {
                byte[] got = new byte[size];
                System.arraycopy(cpio, data, got, 0, size);
                assertArrayEquals(init, got);
            }
            at = align(data + size);
            if (name.equals("TRAILER!!!")) {
                break;
            }
        }
        assertEquals(cpio.length, at, "nothing after the trailer");
        assertEquals(List.of("init:100755:" + init.length, "dev:40755:0", "TRAILER!!!:0:0"), names);
    }

    private static int align(int n) {
        return (n + 3) & ~3;
    }
}
