package dev.ferry.migration.testing;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Walks a byte stream element by element and asserts each one, so a golden-stream test reads
 * like the format: {@code c.u8(0x01, "SECTION_START"); c.be32(1, "section id"); c.str("ram", "idstr");}.
 * Every failure names the element and its stream offset. {@link #assertAtEnd()} proves the whole
 * stream was accounted for. Big-endian, as QEVM is.
 */
public final class StreamCursor {
    private final ByteBuffer buf;

    public StreamCursor(byte[] stream) {
        this.buf = ByteBuffer.wrap(stream);
    }

    public int position() {
        return buf.position();
    }

    public int remaining() {
        return buf.remaining();
    }

    private String at(String what) {
        return what + " at stream offset " + buf.position();
    }

    private void need(int n, String what) {
        assertTrue(buf.remaining() >= n, () -> at(what) + ": needs " + n + " bytes, " + buf.remaining() + " left");
    }

    public int u8(String what) {
        need(1, what);
        return buf.get() & 0xff;
    }

    public void u8(int expected, String what) {
        String where = at(what);
        assertEquals(String.format("0x%02x", expected), String.format("0x%02x", u8(what)), where);
    }

    public int be16(String what) {
        need(2, what);
        return buf.getShort() & 0xffff;
    }

    public void be16(int expected, String what) {
        String where = at(what);
        assertEquals(String.format("0x%04x", expected), String.format("0x%04x", be16(what)), where);
    }

    public int be32(String what) {
        need(4, what);
        return buf.getInt();
    }

    public void be32(int expected, String what) {
        String where = at(what);
        assertEquals(String.format("0x%08x", expected), String.format("0x%08x", be32(what)), where);
    }

    public long be64(String what) {
        need(8, what);
        return buf.getLong();
    }

    public void be64(long expected, String what) {
        String where = at(what);
        assertEquals(String.format("0x%016x", expected), String.format("0x%016x", be64(what)), where);
    }

    public byte[] bytes(int n, String what) {
        need(n, what);
        byte[] b = new byte[n];
        buf.get(b);
        return b;
    }

    public void bytes(byte[] expected, String what) {
        String where = at(what);
        byte[] got = bytes(expected.length, what);
        if (!Arrays.equals(expected, got)) {
            assertArrayEquals(expected, got, where + ": first difference at byte " + Arrays.mismatch(expected, got));
        }
    }

    /** A counted string: u8 length, then that many bytes. */
    public void str(String expected, String what) {
        String where = at(what);
        byte[] e = expected.getBytes(StandardCharsets.UTF_8);
        assertEquals(e.length, u8(what + " length"), where + " length");
        assertEquals(expected, new String(bytes(e.length, what), StandardCharsets.UTF_8), where);
    }

    /** A string of {@code len} raw bytes with no length prefix. */
    public void raw(String expected, String what) {
        bytes(expected.getBytes(StandardCharsets.UTF_8), what);
    }

    public void assertAtEnd() {
        assertEquals(0, buf.remaining(), () -> "stream has " + buf.remaining() + " bytes past offset "
                + buf.position() + " that no assertion accounted for");
    }
}
