package dev.ferry.migration.stream;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.core.machine.RunState;
import dev.ferry.migration.testing.InMemoryMigration;
import dev.ferry.migration.testing.StreamCursor;
import dev.ferry.migration.testing.TestDevice;
import dev.ferry.migration.testing.TestVm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * The complete stream the real {@code SourceMigration} writes for a tiny running VM — 16 KiB of
 * "pc.ram" (page 1 holds a known pattern, pages 0, 2, 3 are zero), idle vCPUs, one test device —
 * accounted for byte by byte, element by element, to the last byte of the vmdesc.
 *
 * <p>Section ids are positions in the registry's save order: the device (priority DEVICE) is
 * saved before RAM (priority RAM), so "test-dev" is section 0 and "ram" section 1.
 */
@Timeout(30)
class WholeStreamLayoutTest {
    private static final int RAM_ID = 1;
    private static final int DEV_ID = 0;
    /** Registered by the machine itself, after the device (priority: saved last). */
    private static final int GLOBAL_ID = 2;

    private static byte[] pattern() {
        byte[] p = new byte[4096];
        for (int i = 0; i < p.length; i++) {
            p[i] = (byte) (i * 7 + 3);
        }
        return p;
    }

    @Test
    void everyByteOfATinyVmsStreamIsWhereTheFormatSays() throws Exception {
        byte[] stream;
        TestDevice dev = TestDevice.sample();
        try (TestVm vm = TestVm.builder("src").ram(4 * 4096).running().device(dev).build()) {
            vm.writePage(1, pattern());
            stream = InMemoryMigration.save(vm.machine());
            assertEquals(RunState.POSTMIGRATE, vm.machine().runState());
            assertFalse(vm.cpus().running(), "the source's vCPUs stay stopped after a completed migration");
        }

        StreamCursor c = new StreamCursor(stream);
        // File header and configuration
        c.be32(0x5145564d, "magic QEVM");
        c.be32(3, "stream version");
        c.u8(0x07, "CONFIGURATION");
        c.be32(5, "machine type length");
        c.raw("ferry", "machine type");

        // Setup: SECTION_START ram, MEM_SIZE with the one block, EOS
        c.u8(0x01, "SECTION_START");
        c.be32(RAM_ID, "section id");
        c.str("ram", "idstr");
        c.be32(0, "instance id");
        c.be32(4, "ram section version");
        c.be64(0x4000 | 0x04, "MEM_SIZE record: total RAM | MEM_SIZE");
        c.str("pc.ram", "block idstr");
        c.be64(0x4000, "block length");
        c.be64(0x10, "EOS");
        c.u8(0x7e, "SECTION_FOOTER");
        c.be32(RAM_ID, "footer section id");

        // First iteration: every page is dirty; zero pages go as ZERO records
        c.u8(0x02, "SECTION_PART");
        c.be32(RAM_ID, "section id");
        c.be64(0x0000 | 0x02, "page 0: offset | ZERO");
        c.str("pc.ram", "block idstr (first record of the stream names its block)");
        c.u8(0x00, "fill byte");
        c.be64(0x1000 | 0x08 | 0x20, "page 1: offset | PAGE | CONTINUE");
        c.bytes(pattern(), "page 1 contents");
        c.be64(0x2000 | 0x02 | 0x20, "page 2: offset | ZERO | CONTINUE");
        c.u8(0x00, "fill byte");
        c.be64(0x3000 | 0x02 | 0x20, "page 3: offset | ZERO | CONTINUE");
        c.u8(0x00, "fill byte");
        c.be64(0x10, "EOS");
        c.u8(0x7e, "SECTION_FOOTER");
        c.be32(RAM_ID, "footer section id");

        // Switchover: nothing was dirtied again, so the END section is just EOS
        c.u8(0x03, "SECTION_END");
        c.be32(RAM_ID, "section id");
        c.be64(0x10, "EOS");
        c.u8(0x7e, "SECTION_FOOTER");
        c.be32(RAM_ID, "footer section id");

        // The device's state
        c.u8(0x04, "SECTION_FULL");
        c.be32(DEV_ID, "section id");
        c.str("test-dev", "idstr");
        c.be32(0, "instance id");
        c.be32(1, "test-dev version");
        c.be32(0x12345678, "field id (uint32)");
        c.be64(0x0123456789abcdefL, "field counter (uint64)");
        c.bytes(new byte[] {0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, "field mac (buffer of 6)");
        c.u8(0x01, "field enabled (bool)");
        c.u8(0x05, "SUBSECTION");
        c.str("test-dev/extra", "subsection name");
        c.be32(1, "subsection version");
        c.be16(0xbeef, "field extra (uint16)");
        c.u8(0x7e, "SECTION_FOOTER");
        c.be32(DEV_ID, "footer section id");

        // QEMU's globalstate: the run state the migration stopped the VM in, sent last
        c.u8(0x04, "SECTION_FULL");
        c.be32(GLOBAL_ID, "section id");
        c.str("globalstate", "idstr");
        c.be32(0, "instance id");
        c.be32(1, "globalstate version");
        c.be32(8, "field size (strlen(\"running\") + 1)");
        byte[] runstate = java.util.Arrays.copyOf("running".getBytes(java.nio.charset.StandardCharsets.US_ASCII), 100);
        c.bytes(runstate, "field runstate (buffer of 100, NUL-padded)");
        c.u8(0x7e, "SECTION_FOOTER");
        c.be32(GLOBAL_ID, "footer section id");

        c.u8(0x00, "EOF");

        // The vmdesc: type, length, then exactly that many bytes of JSON
        c.u8(0x06, "VMDESCRIPTION");
        int len = c.be32("vmdesc length");
        for (int i = 0; i < 4; i++) {
            assertFalse(((len >>> (8 * i)) & 0xff) == '{', "a vmdesc length byte is '{' (analyze-migration.py)");
        }
        byte[] json = c.bytes(len, "vmdesc JSON");
        c.assertAtEnd();

        ObjectMapper mapper = new ObjectMapper();
        JsonNode expected = mapper.readTree("""
                {"page_size": 4096,
                 "devices": [
                   {"name": "test-dev", "instance_id": 0, "vmsd_name": "test-dev", "version": 1,
                    "fields": [
                      {"name": "id", "type": "uint32", "size": 4},
                      {"name": "counter", "type": "uint64", "size": 8},
                      {"name": "mac", "type": "buffer", "size": 6},
                      {"name": "enabled", "type": "bool", "size": 1}],
                    "subsections": [
                      {"vmsd_name": "test-dev/extra", "version": 1,
                       "fields": [{"name": "extra", "type": "uint16", "size": 2}]}]},
                   {"name": "globalstate", "instance_id": 0, "vmsd_name": "globalstate", "version": 1,
                    "fields": [
                      {"name": "size", "type": "uint32", "size": 4},
                      {"name": "runstate", "type": "buffer", "size": 100}]}]}
                """);
        String text = new String(json, StandardCharsets.UTF_8);
        assertFalse(text.indexOf('\0') >= 0, "the vmdesc must not contain NUL (analyze-migration.py)");
        assertEquals(expected, mapper.readTree(text), text);
        assertEquals(4096, mapper.readTree(text).get("page_size").asInt());
    }
}
