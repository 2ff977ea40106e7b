package dev.ferry.core.cpu.guest;

import dev.ferry.core.memory.Gpa;
import dev.ferry.core.memory.GuestMemory;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The binary the build produced: present whenever the {@code guest-program} profile was active
 * (it is when /usr/bin/gcc exists), with a sane size and a header that parses and agrees with
 * {@link GuestLayout}. Header checks on hand-made images run everywhere.
 */
class GuestProgramTest {
    /** The profile's activation condition. */
    private static final boolean GCC = Files.exists(Path.of("/usr/bin/gcc"));

    private static GuestProgram built() {
        assumeTrue(GCC, "/usr/bin/gcc absent: the guest-program profile did not build ferry-guest.bin");
        Optional<GuestProgram> p = GuestProgram.load();
        assertTrue(p.isPresent(), "gcc exists but " + GuestProgram.NOT_BUILT);
        return p.get();
    }

    @Test
    void buildProducedASaneBinary() {
        GuestProgram p = built();
        assertTrue(p.fileSize() > GuestProgram.HEADER_BYTES && p.fileSize() < 64 * 1024,
                "ferry-guest.bin is " + p.fileSize() + " bytes; expected a small program (a few KiB)");
        assertEquals(GuestLayout.IMAGE_GPA, p.loadGpa());
        assertEquals(GuestLayout.STACK_TOP_GPA, p.initialRsp());
        assertTrue(p.imageEndGpa() >= p.loadGpa() + p.fileSize() && p.imageEndGpa() < p.loadGpa() + p.fileSize() + 4096,
                "image end 0x" + Long.toHexString(p.imageEndGpa()));
        // the linker script puts _start right after the 64-byte header: call ferry_guest_main
        assertEquals(GuestLayout.IMAGE_GPA + GuestProgram.HEADER_BYTES, p.entryRip());
        assertEquals((byte) 0xE8, p.image()[GuestProgram.HEADER_BYTES], "entry does not start with a near call");
    }

    @Test
    void builtBinaryHeaderFieldsAreTheLayouts() {
        ByteBuffer h = ByteBuffer.wrap(built().image()).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(GuestProgram.MAGIC, h.getLong(0));
        assertEquals(GuestProgram.VERSION, h.getInt(8));
        assertEquals(64, h.getInt(12));
        assertEquals(GuestLayout.IMAGE_GPA, h.getLong(16));
        assertEquals(GuestLayout.BOOT_PARAMS_GPA, h.getLong(40));
        assertEquals(GuestLayout.HEARTBEAT_PORT, h.getInt(48));
        assertEquals(GuestLayout.STATUS_PORT, h.getInt(52));
        assertEquals(0, h.getLong(56));
        assertEquals("FerryImg", new String(new byte[] {0x46, 0x65, 0x72, 0x72, 0x79, 0x49, 0x6d, 0x67}),
                "magic spells FerryImg read big-endian");
    }

    @Test
    void copyIntoPlacesTheImageAndZeroFillsItsTail() {
        GuestProgram p = built();
        try (GuestMemory memory = GuestMemory.ofSize(4L << 20)) {
            memory.fill(Gpa.of(GuestLayout.IMAGE_GPA), 8192, (byte) 0x5A);
            p.copyInto(memory);
            byte[] back = new byte[p.fileSize()];
            memory.read(Gpa.of(p.loadGpa()), back, 0, back.length);
            assertArrayEquals(p.image(), back);
            for (long a = p.loadGpa() + p.fileSize(); a < p.imageEndGpa(); a++) {
                assertEquals(0, memory.readByte(Gpa.of(a)), "tail byte at 0x" + Long.toHexString(a));
            }
        }
    }

    @Test
    void headerChecksRejectWhatTheVmmCannotRun() {
        long load = GuestLayout.IMAGE_GPA;
        long params = GuestLayout.BOOT_PARAMS_GPA;
        GuestProgram p = GuestProgram.parse(image(GuestProgram.MAGIC, 1, 64, load, load + 64, load + 256, params, 0xF0,
                0xF1));
        assertEquals(load + 64, p.entryRip());
        assertEquals(load + 256, p.imageEndGpa());

        assertRejected("not a ferry-guest image", image(0x1234, 1, 64, load, load + 64, load + 256, params, 0xF0,
                0xF1));
        assertRejected("version 2", image(GuestProgram.MAGIC, 2, 64, load, load + 64, load + 256, params, 0xF0, 0xF1));
        assertRejected("another layout", image(GuestProgram.MAGIC, 1, 64, 0x200000, 0x200040, 0x200100, params, 0xF0,
                0xF1));
        assertRejected("another layout", image(GuestProgram.MAGIC, 1, 64, load, load + 64, load + 256, 0x5000, 0xF0,
                0xF1));
        assertRejected("another layout", image(GuestProgram.MAGIC, 1, 64, load, load + 64, load + 256, params, 0x80,
                0xF1));
        assertRejected("outside the code", image(GuestProgram.MAGIC, 1, 64, load, load + 8, load + 256, params, 0xF0,
                0xF1));
        assertRejected("outside the code", image(GuestProgram.MAGIC, 1, 64, load, load + 128, load + 256, params, 0xF0,
                0xF1));
        assertRejected("image end", image(GuestProgram.MAGIC, 1, 64, load, load + 64, load + 100, params, 0xF0, 0xF1));
        assertRejected("image end", image(GuestProgram.MAGIC, 1, 64, load, load + 64, GuestLayout.IMAGE_LIMIT_GPA + 1,
                params, 0xF0, 0xF1));
        assertRejected("shorter than its 64-byte header", new byte[40]);
    }

    /** A 128-byte image whose header holds the given fields. */
    private static byte[] image(long magic, int version, int headerSize, long load, long entry, long end, long params,
                                int heartbeat, int status) {
        ByteBuffer b = ByteBuffer.allocate(128).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(magic).putInt(version).putInt(headerSize).putLong(load).putLong(entry).putLong(end).putLong(params)
                .putInt(heartbeat).putInt(status).putLong(0);
        return b.array();
    }

    private static void assertRejected(String expected, byte[] image) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GuestProgram.parse(image));
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }
}
