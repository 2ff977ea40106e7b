package dev.ferry.vmm.analyze;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.vmm.Ferry;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code ferry analyze} through the real command line, on a small stream written byte by byte. */
@Timeout(20)
class AnalyzeCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String VMDESC = "{\"page_size\": 4096, \"devices\": [{\"name\": \"dev\", \"instance_id\": 0, "
            + "\"vmsd_name\": \"dev\", \"version\": 1, \"fields\": [{\"name\": \"id\", \"type\": \"uint32\", \"size\": 4}]}]}";

    @TempDir
    Path dir;

    private record Run(int exit, String out, String err) {
    }

    private static Run ferry(String... args) {
        CommandLine cl = new CommandLine(new Ferry()).setCaseInsensitiveEnumValuesAllowed(true);
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int exit = cl.execute(args);
        return new Run(exit, out.toString(), err.toString());
    }

    /**
     * QEVM v3: configuration "ferry"; "ram" START with MEM_SIZE (pc.ram, 2 pages) and END with a
     * ZERO page 0 and a PAGE page 1; device "dev" FULL with id 0x12345678; EOF; vmdesc.
     */
    private static byte[] stream(boolean withVmdesc) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        DataOutputStream o = new DataOutputStream(bytes);
        o.writeInt(0x5145564d);
        o.writeInt(3);
        o.writeByte(0x07);
        o.writeInt(5);
        o.writeBytes("ferry");
        o.writeByte(0x01);
        o.writeInt(1);
        o.writeByte(3);
        o.writeBytes("ram");
        o.writeInt(0);
        o.writeInt(4);
        o.writeLong(8192 | 0x04);
        o.writeByte(6);
        o.writeBytes("pc.ram");
        o.writeLong(8192);
        o.writeLong(0x10);
        o.writeByte(0x7e);
        o.writeInt(1);
        o.writeByte(0x03);
        o.writeInt(1);
        o.writeLong(0x02);
        o.writeByte(6);
        o.writeBytes("pc.ram");
        o.writeByte(0);
        o.writeLong(4096 | 0x08 | 0x20);
        byte[] page = new byte[4096];
        Arrays.fill(page, (byte) 0xab);
        o.write(page);
        o.writeLong(0x10);
        o.writeByte(0x7e);
        o.writeInt(1);
        o.writeByte(0x04);
        o.writeInt(2);
        o.writeByte(3);
        o.writeBytes("dev");
        o.writeInt(0);
        o.writeInt(1);
        o.writeInt(0x12345678);
        o.writeByte(0x7e);
        o.writeInt(2);
        o.writeByte(0x00);
        if (withVmdesc) {
            byte[] json = VMDESC.getBytes(StandardCharsets.US_ASCII);
            assertTrue(json.length != '{' && json.length < 256, "the length byte must not look like '{'");
            o.writeByte(0x06);
            o.writeInt(json.length);
            o.write(json);
        }
        return bytes.toByteArray();
    }

    private Path file(byte[] content) throws IOException {
        Path f = dir.resolve("vm.qevm");
        Files.write(f, content);
        return f;
    }

    @Test
    void defaultReportShowsSectionsRamTotalsAndDeviceFields() throws Exception {
        Path f = file(stream(true));
        Run r = ferry("analyze", f.toString());
        assertEquals(0, r.exit, r.err);
        assertEquals("", r.err);
        assertTrue(r.out.contains("configuration  ferry"), r.out);
        assertTrue(r.out.matches("(?s).*\\n\\s+1\\s+ram\\s+0\\s+4\\s+1\\s+0\\s+1\\s+0\\s+\\d+\\n.*"), r.out);
        assertTrue(r.out.matches("(?s).*\\n\\s+pc\\.ram\\s+8192\\s+1\\s+1\\s+2\\n.*"), r.out);
        assertTrue(r.out.contains("RAM 8192 bytes (8.0 KiB); zero pages 1 (query-migrate \"duplicate\"); "
                + "normal pages 1 (query-migrate \"normal\")"), r.out);
        assertTrue(r.out.contains("  dev (instance 0, section 2, FULL, vmsd dev v1, 4 bytes at offset "), r.out);
        assertTrue(r.out.contains("    id = 0x12345678"), r.out);
    }

    @Test
    void jsonCarriesTheSameContent() throws Exception {
        Run r = ferry("analyze", file(stream(true)).toString(), "--json");
        assertEquals(0, r.exit, r.err);
        JsonNode j = JSON.readTree(r.out);
        assertEquals(8192, j.get("ram").get("total").asLong());
        assertEquals(1, j.get("ram").get("duplicate").asLong());
        assertEquals(1, j.get("ram").get("normal").asLong());
        assertEquals("pc.ram", j.get("ram").get("blocks").get(0).get("name").asText());
        assertEquals("ferry", j.get("configuration").get("machine_type").asText());
        assertEquals(0x12345678, j.get("devices").get(0).get("state").get("id").asInt());
        assertEquals(2, j.get("sections").size());
    }

    @Test
    void dumpDescPrintsTheVmdesc() throws Exception {
        Run r = ferry("analyze", file(stream(true)).toString(), "--dump", "desc");
        assertEquals(0, r.exit, r.err);
        assertEquals(JSON.readTree(VMDESC), JSON.readTree(r.out));
        assertTrue(r.out.contains("\n"), "pretty-printed");

        Run none = ferry("analyze", file(stream(false)).toString(), "--dump", "desc");
        assertEquals(1, none.exit);
        assertTrue(none.err.endsWith("vm.qevm: the stream has no vmdesc (VMDESCRIPTION after EOF)\n"), none.err);
    }

    @Test
    void dumpRamPrintsRunsOfZeroAndNormalPages() throws Exception {
        Path f = file(stream(true));
        Run r = ferry("analyze", f.toString(), "--dump", "ram");
        assertEquals(0, r.exit, r.err);
        assertTrue(r.out.contains("0x000000000000-0x000000000fff          1 pages  zero"), r.out);
        assertTrue(r.out.contains("0x000000001000-0x000000001fff          1 pages  normal"), r.out);

        JsonNode j = JSON.readTree(ferry("analyze", f.toString(), "--dump", "RAM", "--json").out);
        JsonNode runs = j.get("blocks").get(0).get("runs");
        assertEquals("zero", runs.get(0).get("kind").asText());
        assertEquals("0x1000", runs.get(1).get("offset").asText());
        assertEquals(2, j.get("distinct").asLong());
    }

    @Test
    void malformedInputExitsOneWithOneLine() throws Exception {
        Path f = file("hello, world".getBytes(StandardCharsets.US_ASCII));
        Run r = ferry("analyze", f.toString());
        assertEquals(1, r.exit);
        assertEquals("ferry analyze: " + f + ": not a migration stream: magic 0x68656c6c, expected QEVM\n", r.err);
        assertEquals("", r.out);

        byte[] s = stream(true);
        Path cut = file(Arrays.copyOf(s, 100));
        r = ferry("analyze", cut.toString());
        assertEquals(1, r.exit);
        assertTrue(r.err.startsWith("ferry analyze: " + cut + ": truncated at offset "), r.err);
        assertEquals(1, r.err.lines().count(), r.err);

        Path missing = dir.resolve("missing.qevm");
        r = ferry("analyze", missing.toString());
        assertEquals(1, r.exit);
        assertEquals("ferry analyze: " + missing + ": no such file\n", r.err);
    }

    @Test
    void anUnknownDumpIsAUsageError() throws Exception {
        Run r = ferry("analyze", file(stream(true)).toString(), "--dump", "pages");
        assertEquals(2, r.exit);
        assertTrue(r.err.contains("expected state, desc or ram, not 'pages'"), r.err);
    }
}
