package dev.ferry.migration.stream;

import dev.ferry.core.testing.ByteArraySaveStream;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * {@link SectionWriter} byte for byte against the QEVM v3 framing, with every expected array
 * written out by hand from the format (QEMU's {@code migration/savevm.c}), not from the code.
 */
class SectionWriterGoldenTest {
    private final ByteArraySaveStream out = new ByteArraySaveStream();
    private final SectionWriter w = new SectionWriter(out);

    private static byte[] b(int... v) {
        byte[] r = new byte[v.length];
        for (int i = 0; i < v.length; i++) {
            r[i] = (byte) v[i];
        }
        return r;
    }

    @Test
    void fileHeaderIsMagicQevmThenVersion3() throws IOException {
        w.fileHeader();
        assertArrayEquals(b('Q', 'E', 'V', 'M', 0x00, 0x00, 0x00, 0x03), out.toByteArray());
    }

    @Test
    void configurationIsTypeBe32LengthAndNameWithoutNul() throws IOException {
        w.configuration("ferry");
        assertArrayEquals(b(0x07, 0x00, 0x00, 0x00, 0x05, 'f', 'e', 'r', 'r', 'y'), out.toByteArray());
    }

    @Test
    void startHeaderCarriesIdCountedIdstrInstanceAndVersion() throws IOException {
        w.sectionHeader(Qevm.SECTION_START, 0x01020304, "ram", 0, 4);
        assertArrayEquals(b(0x01, 0x01, 0x02, 0x03, 0x04, 0x03, 'r', 'a', 'm', 0, 0, 0, 0, 0, 0, 0, 4),
                out.toByteArray());
    }

    @Test
    void fullHeaderHasTheStartLayout() throws IOException {
        w.sectionHeader(Qevm.SECTION_FULL, 7, "test-dev", 0x0a0b0c0d, 0x11223344);
        assertArrayEquals(b(0x04, 0, 0, 0, 7, 8, 't', 'e', 's', 't', '-', 'd', 'e', 'v',
                0x0a, 0x0b, 0x0c, 0x0d, 0x11, 0x22, 0x33, 0x44), out.toByteArray());
    }

    @Test
    void partAndEndHeadersCarryOnlyTheSectionId() throws IOException {
        w.sectionHeader(Qevm.SECTION_PART, 1);
        w.sectionHeader(Qevm.SECTION_END, 0x00ff0100);
        assertArrayEquals(b(0x02, 0, 0, 0, 1, 0x03, 0x00, 0xff, 0x01, 0x00), out.toByteArray());
    }

    @Test
    void footerIs7eThenSectionId() throws IOException {
        w.footer(0x12345678);
        assertArrayEquals(b(0x7e, 0x12, 0x34, 0x56, 0x78), out.toByteArray());
    }

    @Test
    void commandIsTypeBe16CommandBe16LengthPayload() throws IOException {
        w.command(Qevm.CMD_OPEN_RETURN_PATH, new byte[0]);
        w.command(Qevm.CMD_PING, b(0, 0, 0, 1));
        assertArrayEquals(b(0x08, 0x00, 0x01, 0x00, 0x00,
                0x08, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 1), out.toByteArray());
    }

    @Test
    void eofIsOneZeroByte() throws IOException {
        w.eof();
        assertArrayEquals(b(0x00), out.toByteArray());
    }

    @Test
    void vmdescIsType6Be32LengthAndTheJsonUnpadded() throws IOException {
        byte[] json = "{\"page_size\": 4096, \"devices\": []}".getBytes(StandardCharsets.US_ASCII);
        w.vmdesc(json);
        byte[] expected = new byte[5 + json.length];
        expected[0] = 0x06;
        expected[4] = (byte) json.length; // 34 = 0x22, no '{' byte in the length
        System.arraycopy(json, 0, expected, 5, json.length);
        assertArrayEquals(expected, out.toByteArray());
    }

    /**
     * analyze-migration.py finds the JSON as the first '{' after the stream's last NUL; a length
     * byte of 0x7b would be found instead, so the writer pads the JSON with spaces (which JSON
     * parsers skip) until no length byte is 0x7b.
     */
    @Test
    void vmdescLengthWithLowByte7bIsPaddedByOneSpace() throws IOException {
        byte[] json = jsonOfLength(0x7b);
        w.vmdesc(json);
        byte[] got = out.toByteArray();
        assertArrayEquals(b(0x06, 0x00, 0x00, 0x00, 0x7c), Arrays.copyOf(got, 5));
        assertArrayEquals(json, Arrays.copyOfRange(got, 5, 5 + 0x7b));
        assertArrayEquals(b(' '), Arrays.copyOfRange(got, 5 + 0x7b, got.length));
        assertEquals(5 + 0x7c, got.length);
        assertEquals(5, analyzerJsonStart(got), "where analyze-migration.py looks for the JSON");
    }

    @Test
    void vmdescLengthWithSecondByte7bIsPaddedPastIt() throws IOException {
        // 0x7b7b: both low bytes are '{'; 0x7b7c .. 0x7bff still have one; 0x7c00 is the first clean length.
        byte[] json = jsonOfLength(0x7b7b);
        w.vmdesc(json);
        byte[] got = out.toByteArray();
        assertArrayEquals(b(0x06, 0x00, 0x00, 0x7c, 0x00), Arrays.copyOf(got, 5));
        assertEquals(5 + 0x7c00, got.length);
        byte[] pad = Arrays.copyOfRange(got, 5 + 0x7b7b, got.length);
        assertEquals(0x7c00 - 0x7b7b, pad.length);
        for (byte p : pad) {
            assertEquals(' ', p);
        }
        assertEquals(5, analyzerJsonStart(got));
    }

    @Test
    void vmdescLengthWith7bOnlyBeforeTheLastNulNeedsNoPaddingButGetsItConsistently() throws IOException {
        // 0x7b00: the analyzer's last NUL is the length's low byte, so it would cope; the writer
        // still pads (it checks every length byte), and the result stays readable.
        byte[] json = jsonOfLength(0x7b00);
        w.vmdesc(json);
        byte[] got = out.toByteArray();
        assertArrayEquals(b(0x06, 0x00, 0x00, 0x7c, 0x00), Arrays.copyOf(got, 5));
        assertEquals(5, analyzerJsonStart(got));
    }

    /** A JSON object of exactly {@code n} bytes with no NUL and only one '{'. */
    private static byte[] jsonOfLength(int n) {
        String prefix = "{\"page_size\": 4096, \"devices\": [], \"x\": \"";
        String suffix = "\"}";
        StringBuilder sb = new StringBuilder(prefix);
        while (sb.length() < n - suffix.length()) {
            sb.append('a');
        }
        sb.append(suffix);
        byte[] r = sb.toString().getBytes(StandardCharsets.US_ASCII);
        assertEquals(n, r.length);
        return r;
    }

    /**
     * Where QEMU's analyze-migration.py ({@code read_migration_debug_json}) takes the JSON to
     * start: the first '{' after the last NUL — after checking that the byte 5 before it is 0x06.
     * Prefixed by the EOF byte, as in a real stream.
     */
    private static int analyzerJsonStart(byte[] vmdesc) {
        byte[] data = new byte[vmdesc.length + 1];
        System.arraycopy(vmdesc, 0, data, 1, vmdesc.length);
        int nul = -1;
        for (int i = data.length - 1; i >= 0; i--) {
            if (data[i] == 0) {
                nul = i;
                break;
            }
        }
        int brace = -1;
        for (int i = Math.max(nul, 0); i < data.length; i++) {
            if (data[i] == '{') {
                brace = i;
                break;
            }
        }
        assertEquals(0x06, data[brace - 5], "the analyzer requires VMDESCRIPTION 5 bytes before the JSON");
        return brace - 1;
    }
}
