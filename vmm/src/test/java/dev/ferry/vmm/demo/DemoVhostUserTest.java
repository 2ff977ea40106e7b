package dev.ferry.vmm.demo;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.vmm.run.QapiJson;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code ferry demo --vhost-user} as a newcomer runs it: two VMM processes whose disk and NIC are
 * served by external vhost-user back-ends (qemu-storage-daemon for the disk when installed, else
 * Ferry's back-end library; Ferry's back-end for the NIC) migrate the guest live, and the report
 * verifies RAM, the guest's progress, the image against every acknowledged write and the NIC's
 * frames and announce (by the guest itself: GUEST_ANNOUNCE, no SEND_RARP).
 */
@Timeout(value = 4, unit = TimeUnit.MINUTES)
class DemoVhostUserTest {
    @Test
    void aGuestWithVhostUserDevicesMigratesVerified() throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream old = System.out;
        int exit;
        try {
            System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
            exit = new CommandLine(new DemoCommand()).execute("--vhost-user", "--engine", "soft", "--ram", "192M",
                    "--working-set", "48M", "--dirty-rate", "20M", "--disk", "32M", "--no-balloon", "--json");
        } finally {
            System.setOut(old);
        }
        String out = buf.toString(StandardCharsets.UTF_8);
        JsonNode r = QapiJson.JSON.readTree(out.substring(out.indexOf('{')));
        assertEquals("completed", r.path("status").asText(), out);
        assertTrue(r.path("verified").asBoolean(), out);
        boolean sawBlk = false;
        boolean sawNet = false;
        for (JsonNode d : r.path("devices")) {
            sawBlk |= d.path("id").asText().endsWith("/vhost-user-blk");
            sawNet |= d.path("id").asText().endsWith("/vhost-user-net");
        }
        assertTrue(sawBlk && sawNet, "the disk and the NIC migrated as vhost-user devices: " + r.path("devices"));
        assertTrue(r.path("disks").path(0).path("image_verified").asBoolean(), r.path("disks").toString());
        assertTrue(r.path("nic").path("verified").asBoolean(), r.path("nic").toString());
        // Ferry's back-end offers GUEST_ANNOUNCE and Ferry's driver takes it: the guest announces
        // itself, and the destination asks for no SEND_RARP.
        String by = r.path("nic").path("announced_by").asText();
        assertTrue(by.contains("from the guest (GUEST_ANNOUNCE)") && !by.contains("RARP"), r.path("nic").toString());
        assertEquals(5, r.path("nic").path("announce_acks").asLong(), r.path("nic").toString());
        assertEquals(0, exit, out);
    }
}
