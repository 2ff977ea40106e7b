package dev.ferry.migration.hostile;

import dev.ferry.migration.testing.InMemoryMigration.Incoming;
import dev.ferry.migration.testing.StreamBytes;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

import static dev.ferry.migration.hostile.HostileStreams.assertRefused;
import static dev.ferry.migration.hostile.HostileStreams.load;
import static dev.ferry.migration.hostile.HostileStreams.prologue;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Names the stream carries (idstrs, RAM block names) reach a refusal's error-desc — and so
 * query-migrate, QMP events and the log — only escaped: control characters (a terminal's escape
 * sequences, CR/LF that forge a log line) and bytes that are not printable ASCII appear as
 * {@code \xNN}, a backslash as {@code \\}, and a name longer than what a reader needs is cut.
 */
@Timeout(10)
class HostileTextTest {
    /** ESC [2J (clear screen), CR LF, a forged log line, invalid UTF-8, a backslash. */
    private static final byte[] NASTY = concat("dev\u001b[2J\r\nWARN forged".getBytes(StandardCharsets.US_ASCII),
            new byte[] {(byte) 0xff, (byte) 0xfe, (byte) 0xc3, '\\', 0});
    private static final String NASTY_ESCAPED = "dev\\x1b[2J\\x0d\\x0aWARN forged\\xff\\xfe\\xc3\\\\\\x00";

    private static byte[] concat(byte[] a, byte[] b) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        o.writeBytes(a);
        o.writeBytes(b);
        return o.toByteArray();
    }

    private static void assertPrintable(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            assertTrue(c >= 0x20 && c < 0x7f, () -> "character 0x" + Integer.toHexString(c) + " in: " + s);
        }
    }

    @Test
    void anUnknownIdstrIsEscapedInTheRefusal() throws Exception {
        byte[] s = prologue().u8(0x04).be32(0).u8(NASTY.length).bytes(NASTY).be32(0).be32(1).footer(0).toByteArray();
        Incoming r = load(s);
        assertRefused(r, "unknown section '" + NASTY_ESCAPED + "' instance 0: this VM has no such device");
        assertPrintable(r.errorDesc());
    }

    @Test
    void a255ByteIdstrIsCut() throws Exception {
        byte[] name = new byte[255];
        for (int i = 0; i < name.length; i++) {
            name[i] = (byte) (i % 2 == 0 ? 0x07 : 'a'); // BEL, a, BEL, a, ...
        }
        Incoming r = load(prologue().u8(0x04).be32(0).u8(255).bytes(name).be32(0).be32(1).footer(0).toByteArray());
        assertRefused(r, "unknown section '" + "\\x07a".repeat(32) + "... (255 bytes)' instance 0");
        assertPrintable(r.errorDesc());
    }

    @Test
    void anUnknownRamBlockNameIsEscapedInTheRefusal() throws Exception {
        StreamBytes s = prologue().start(1, "ram", 0, 4).memSize(16 << 10).u8(NASTY.length).bytes(NASTY)
                .be64(16 << 10);
        Incoming r = load(s.toByteArray());
        assertRefused(r, "ram: the stream has RAM block '" + NASTY_ESCAPED + "', which this VM lacks");
        assertPrintable(r.errorDesc());
    }

    @Test
    void printableNamesAreShownAsTheyAre() throws Exception {
        Incoming r = load(prologue().full(0, "virtio-mmio@d0000000/virtio-blk", 0, 1).footer(0).toByteArray());
        assertRefused(r, "unknown section 'virtio-mmio@d0000000/virtio-blk' instance 0");
        assertEquals(-1, r.errorDesc().indexOf('\\'), r.errorDesc());
    }
}
