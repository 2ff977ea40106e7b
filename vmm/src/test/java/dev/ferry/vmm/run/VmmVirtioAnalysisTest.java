package dev.ferry.vmm.run;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.migration.analyze.DeviceState;
import dev.ferry.migration.analyze.FieldValue;
import dev.ferry.migration.analyze.StreamAnalysis;
import dev.ferry.migration.analyze.StreamAnalyzer;
import dev.ferry.migration.analyze.VirtioStateDecoder;
import dev.ferry.virtio.guest.BlkDriverArea;
import dev.ferry.vmm.Ferry;
import dev.ferry.vmm.run.LocalVmms.Vm;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.RandomAccessFile;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import static dev.ferry.vmm.run.LocalVmms.args;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code ferry analyze} on a stream Ferry itself wrote: a soft guest doing I/O on a virtio-blk
 * disk is migrated to a {@code file:} URI, and the disk's "virtio" field — written by Ferry's
 * VirtioState — decodes into the state the guest's driver set up: status ACKNOWLEDGE | DRIVER |
 * FEATURES_OK | DRIVER_OK, one queue of the driver's size (128 of at most 256) with its
 * last_avail_idx, VERSION_1 taken, the subsections QEMU would send. Then every truncation and random corruption of those real bytes
 * decodes to a note and raw bytes, never an exception.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class VmmVirtioAnalysisTest {
    private static final String SECTION = "virtio-mmio@d0000000/virtio-blk";
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;
    private LocalVmms vms;

    @BeforeEach
    void setUp() throws Exception {
        vms = new LocalVmms(dir);
        Path image = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(16L << 20);
        }
        vms.devices = "[{\"id\": \"disk0\", \"kind\": \"virtio-blk\", \"image\": \"" + image + "\"}]";
    }

    @AfterEach
    void tearDown() {
        vms.close();
    }

    /** Runs the guest until its disk driver has done I/O, then saves the VM to a file. */
    private Path saveRunningDiskGuest() throws Exception {
        Vm src = vms.source("src");
        long deadline = System.nanoTime() + LocalVmms.WAIT.toNanos();
        while (src.run("x-ferry-guest").path("disks").path(0).path("completed").asLong() < 100) {
            assertTrue(System.nanoTime() < deadline, "the guest's disk I/O does not progress");
            Thread.sleep(10);
        }
        Path file = dir.resolve("vm.qevm");
        src.run("migrate", args("uri", "file:" + file));
        JsonNode info = src.awaitMigrationEnd();
        assertEquals("completed", info.path("status").asText(), info.toString());
        return file;
    }

    private static List<String> names(FieldValue.Struct s) {
        return s.subsections().stream().map(FieldValue.Subsection::name).toList();
    }

    @Test
    void theDisksVirtioStateDecodesAsTheDriverSetItUp() throws Exception {
        Path file = saveRunningDiskGuest();
        StreamAnalysis a = StreamAnalyzer.analyze(file);
        DeviceState disk = a.device(SECTION, 0).orElseThrow();
        assertEquals("virtio-blk", disk.vmsdName());
        FieldValue.Struct v = (FieldValue.Struct) disk.state().get("virtio");
        assertNull(v.get("note"), () -> String.valueOf(v.get("note")));

        FieldValue.Flags status = (FieldValue.Flags) v.get("status");
        assertEquals(15, status.value(), "ACK|DRIVER|FEATURES_OK|DRIVER_OK");
        assertEquals(List.of("ACKNOWLEDGE", "DRIVER", "DRIVER_OK", "FEATURES_OK"), status.names());
        List<FieldValue> queues = ((FieldValue.Array) v.get("queues")).elements();
        assertEquals(1, queues.size());
        FieldValue.Struct q = (FieldValue.Struct) queues.get(0);
        // The guest's driver sizes the ring below the device's maximum (256): so the stream also
        // carries virtio/ringsize, with the default size QEMU would check on load.
        assertEquals(new FieldValue.Unsigned(BlkDriverArea.QUEUE_SIZE, 4), q.get("num"));
        FieldValue.Struct ringsize = (FieldValue.Struct) ((FieldValue.Array) v.subsection("virtio/ringsize").state()
                .get("vq")).elements().get(0);
        assertEquals(new FieldValue.Unsigned(256, 4), ringsize.get("num_default"));
        assertTrue(q.get("last_avail_idx") instanceof FieldValue.Unsigned, String.valueOf(q));
        assertTrue(((FieldValue.Unsigned) q.get("desc")).value() != 0, "the driver placed the ring: " + q);
        assertEquals(new FieldValue.Array(List.of()), ((FieldValue.Struct) v.get("device")).get("parked_requests"),
                "I/O drains at stop: nothing parked");
        assertEquals(List.of("virtio/64bit_features", "virtio/virtqueues", "virtio/ringsize", "virtio/extra_state",
                "virtio/started"), names(v));
        FieldValue.Flags features = (FieldValue.Flags) v.subsection("virtio/64bit_features").state()
                .get("guest_features");
        assertTrue(features.has("VERSION_1"), features.toString());
        FieldValue.Struct mmio = v.subsection("virtio/extra_state").state().subsection("virtio_mmio/state").state();
        assertEquals(features.value(), ((FieldValue.Flags) mmio.get("guest_features")).value());
        FieldValue.Struct vq0 = (FieldValue.Struct) ((FieldValue.Array) mmio.get("vqs")).elements().get(0);
        assertEquals(new FieldValue.Bool(true), vq0.get("enabled"));
        assertEquals(q.get("desc"), vq0.get("desc"));

        // The command line shows the same, as text and as JSON.
        String text = ferry("analyze", file.toString());
        assertTrue(text.contains("\n      status = 0x0f (ACKNOWLEDGE|DRIVER|DRIVER_OK|FEATURES_OK)\n"), text);
        assertTrue(text.contains("\n      subsection virtio/extra_state (version 1):\n"
                + "        subsection virtio_mmio/state (version 1):\n"), text);
        JsonNode json = JSON.readTree(ferry("analyze", "--json", file.toString()));
        JsonNode state = null;
        for (JsonNode d : json.get("devices")) {
            state = d.path("name").asText().equals(SECTION) ? d.get("state").get("virtio") : state;
        }
        assertNotNull(state, json.toString());
        assertEquals(15, state.get("status").get("value").asInt());
        assertEquals(BlkDriverArea.QUEUE_SIZE, state.get("queues").get(0).get("num").asInt());
        assertTrue(state.get("virtio/64bit_features").get("guest_features").get("flags").toString()
                .contains("\"VERSION_1\""), state.toString());
    }

    @Test
    void everyTruncationAndCorruptionOfTheRealBytesFallsBackToRaw() throws Exception {
        Path file = saveRunningDiskGuest();
        DeviceState disk = StreamAnalyzer.analyze(file).device(SECTION, 0).orElseThrow();
        byte[] stream = Files.readAllBytes(file);
        // SECTION_FULL header: u8 type | be32 id | u8 len | idstr | be32 instance | be32 version
        int start = (int) disk.offset() + 1 + 4 + 1 + SECTION.getBytes(StandardCharsets.US_ASCII).length + 4 + 4;
        byte[] field = Arrays.copyOfRange(stream, start, start + (int) disk.bytes());
        assertEquals(disk.state().get("virtio"), VirtioStateDecoder.decode(field, "virtio-blk"),
                "the field's bytes, cut from the file, decode as the analyzer decoded them");

        int whole = 0;
        for (int len = 0; len < field.length; len++) {
            FieldValue.Struct v = VirtioStateDecoder.decode(Arrays.copyOf(field, len), "virtio-blk");
            if (v.get("note") == null) {
                whole++; // ends between two optional subsections
                continue;
            }
            FieldValue.Bytes rest = (FieldValue.Bytes) v.get("undecoded");
            assertTrue(rest.size() <= len, len + ": " + rest.size());
        }
        assertTrue(whole <= names((FieldValue.Struct) disk.state().get("virtio")).size(),
                whole + " prefixes decode whole");

        SplittableRandom r = new SplittableRandom(11);
        for (int round = 0; round < 2000; round++) {
            byte[] c = field.clone();
            for (int i = 0, n = 1 + r.nextInt(6); i < n; i++) {
                c[r.nextInt(r.nextBoolean() ? 200 : c.length)] = (byte) r.nextInt(256);
            }
            FieldValue.Struct v = VirtioStateDecoder.decode(c, "virtio-blk");
            assertTrue(v.get("note") == null || v.get("undecoded") instanceof FieldValue.Bytes);
        }
    }

    private static String ferry(String... args) {
        CommandLine cl = new CommandLine(new Ferry()).setCaseInsensitiveEnumValuesAllowed(true);
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        assertEquals(0, cl.execute(args), err::toString);
        return out.toString();
    }
}
